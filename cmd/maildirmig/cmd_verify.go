package main

import (
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/migrate"
)

func verifyCommand(u *ui) *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "prove every migrated message is in the Maildir, byte for byte",
		Description: "For every user a previous mbox or Mailbox run migrated, re-reads the migrated part of the\n" +
			"source, recomputes what was stored for each message, and finds the Maildir file with that\n" +
			"position and content (as the user). Prints one line per user; a message the user deleted\n" +
			"since counts as missing. Exit status: 0 all present, 1 fatal, 3 some users failed.",
		Flags: systemFlags(maildirNameFlag, minUIDFlag, noRootFlag),
		Action: func(c *cli.Context) error {
			cfg := batchConfig(c, migrate.SourceSpool)
			failed, checked := 0, 0
			err := migrate.Verify(c.Context, cfg, func(v migrate.UserVerify) {
				if !v.State && v.Err == nil {
					return
				}
				checked++
				r := v.Result
				switch {
				case v.Err != nil:
					failed++
					u.errorf("user %s: %v", v.User, v.Err)
				case len(r.Missing) > 0 || len(r.Bad) > 0:
					failed++
					u.errorf("user %s: %d of %d messages verified in %s; %s", v.User, r.Found, r.Messages, v.Dst, describeVerify(r))
				case !u.quiet:
					u.printf("%s: %d of %d messages verified in %s\n", v.User, r.Found, r.Messages, v.Dst)
				}
			})
			if err != nil {
				if c.Context.Err() != nil {
					return exitCode(exitInterrupted, nil)
				}
				return exitCode(exitFatal, err)
			}
			if failed > 0 {
				u.errorf("%d of %d users failed verification", failed, checked)
				return exitCode(exitUsersFailed, nil)
			}
			return nil
		},
	}
}

func describeVerify(r migrate.VerifyResult) string {
	s := ""
	if len(r.Missing) > 0 {
		s = "missing: " + r.Missing[0]
		if len(r.Missing) > 1 {
			s += " and " + strconv.Itoa(len(r.Missing)-1) + " more"
		}
	}
	if len(r.Bad) > 0 {
		if s != "" {
			s += "; "
		}
		s += "different content: " + r.Bad[0]
		if len(r.Bad) > 1 {
			s += " and " + strconv.Itoa(len(r.Bad)-1) + " more"
		}
	}
	return s
}
