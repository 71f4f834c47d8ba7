package main

import (
	"fmt"
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
			"since counts as missing, and one stored in more than one file as a failure. Migrated mbox folders are verified the same way, from their sources\n" +
			"beneath ~USER/mail (--folders). Exit status: 0 all present, 1 fatal, 3 some users failed.",
		Flags: systemFlags(maildirNameFlag, minUIDFlag, noRootFlag, foldersFlag, noFoldersFlag, stallTimeoutFlag),
		Action: func(c *cli.Context) error {
			cfg := batchConfig(c, migrate.SourceSpool)
			if err := checkFolders(cfg); err != nil {
				return err
			}
			if cfg.StallTimeout = c.Duration("stall-timeout"); cfg.StallTimeout <= 0 {
				return usagef("--stall-timeout %v: want a positive duration", cfg.StallTimeout)
			}
			failed, checked := 0, 0
			err := migrate.Verify(c.Context, cfg, func(v migrate.UserVerify) {
				if !v.State && v.Err == nil {
					return
				}
				checked++
				r := v.Result
				bad := false
				deleted := len(r.Deleted)
				for _, f := range v.Folders {
					r.Messages += f.Result.Messages
					r.Found += f.Result.Found
					deleted += len(f.Result.Deleted)
					switch fr := f.Result; {
					case f.Err != nil:
						bad = true
						u.errorf("user %s: folder %s: %v", v.User, f.Source, f.Err)
					case len(fr.Missing) > 0 || len(fr.Bad) > 0 || len(fr.Duplicate) > 0:
						bad = true
						u.errorf("user %s: folder %s: %d of %d messages verified; %s", v.User, f.Source, fr.Found, fr.Messages, describeVerify(fr))
					}
				}
				folders := ""
				if n := len(v.Folders); n > 0 {
					folders = fmt.Sprintf(" (%d folder%s)", n, plural(n))
				}
				switch {
				case v.Err != nil:
					failed++
					u.errorf("user %s: %v", v.User, v.Err)
				case len(r.Missing) > 0 || len(r.Bad) > 0 || len(r.Duplicate) > 0 || bad:
					failed++
					u.errorf("user %s: %d of %d messages verified in %s%s; %s", v.User, r.Found, r.Messages, v.Dst, folders, describeVerify(r))
				case !u.quiet:
					gone := ""
					if deleted > 0 {
						gone = fmt.Sprintf("; %d deleted by the user since", deleted)
					}
					u.printf("%s: %d of %d messages verified in %s%s%s\n", v.User, r.Found, r.Messages, v.Dst, folders, gone)
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
	if len(r.Deleted) > 0 {
		if s != "" {
			s += "; "
		}
		s += strconv.Itoa(len(r.Deleted)) + " deleted by the user since"
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
	if len(r.Duplicate) > 0 {
		if s != "" {
			s += "; "
		}
		s += "stored more than once: " + r.Duplicate[0]
		if len(r.Duplicate) > 1 {
			s += " and " + strconv.Itoa(len(r.Duplicate)-1) + " more"
		}
	}
	return s
}
