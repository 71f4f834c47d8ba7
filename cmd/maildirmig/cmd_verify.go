package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/internal/escape"
	"github.com/maildirmig/maildirmig/migrate"
)

func verifyCommand(u *console, f *flags) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "prove every migrated message is in the Maildir, byte for byte",
		ArgsUsage: userArgsUsage,
		Description: "For every user (or every USER named) a previous mbox or Mailbox run migrated, re-reads\n" +
			"the migrated part of the source, recomputes what was stored for each message, and checks the\n" +
			"Maildir file the last pass recorded for it (as the user): each message has a file of its own.\n" +
			"Prints one line per user and a summary. A message missing, one stored in more than one file,\n" +
			"and, before the switch, a file of maildirmig's whose source message is gone are failures;\n" +
			"flags and keywords that differ from the source are warned about. A source changed since the\n" +
			"last pass fails: run a pass first. Migrated mbox folders are verified the same way, from their\n" +
			"sources beneath ~USER/mail (--folders). A user whose spool\n" +
			"or ~/Mailbox holds mail that no run migrated is named in a warning; when no user at all was\n" +
			"migrated, verify fails.\n" +
			"Exit status: " + exitStatusLine(exitOK, exitFatal, exitUsage, exitUsersFailed, exitInterrupted) + ".",
		Flags: f.system(f.maildirName, f.minUID, f.noRoot, f.folders, f.noFolders, f.stallTimeout),
		Action: func(c *cli.Context) error {
			cfg := batchConfig(c, migrate.SourceSpool)
			if err := checkFolders(cfg); err != nil {
				return err
			}
			cfg.StallTimeout = c.Duration("stall-timeout")
			failed, checked, never := 0, 0, 0
			var messages, found, deletedAll int64
			err := migrate.Verify(c.Context, cfg, func(v migrate.UserVerify) {
				if !v.State && v.Err == nil {
					if len(v.Unmigrated) > 0 {
						never++
						u.Warningf("user %s: never migrated: %s holds mail", v.User, strings.Join(v.Unmigrated, " and "))
					}
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
						u.Errorf("user %s: folder %s: %v", v.User, f.Source, f.Err)
					case verifyFailed(fr):
						bad = true
						u.Errorf("user %s: folder %s: %d of %d messages verified; %s", v.User, f.Source, fr.Found, fr.Messages, describeVerify(fr))
					}
					warnFlags(u, v.User, "folder "+f.Source+": ", f.Result.Flags)
				}
				folders := ""
				if n := len(v.Folders); n > 0 {
					folders = fmt.Sprintf(" (%d folder%s)", n, plural(n))
				}
				switch {
				case v.Err != nil:
					failed++
					u.Errorf("user %s: %v", v.User, v.Err)
				case verifyFailed(r) || bad:
					failed++
					u.Errorf("user %s: %d of %d messages verified in %s%s; %s", v.User, r.Found, r.Messages, v.Dst, folders, describeVerify(r))
				case u.Quiet:
				case r.Messages == 0 && deleted == 0:
					// Not "0 of 0 verified in" a Maildir that may not even exist.
					u.Printf("%s: nothing migrated\n", v.User)
				default:
					gone := ""
					if deleted > 0 {
						gone = fmt.Sprintf("; %d deleted since", deleted)
					}
					u.Printf("%s: %d of %d messages verified in %s%s%s\n", escape.Line(v.User), r.Found, r.Messages, escape.Line(v.Dst), folders, gone)
				}
				warnFlags(u, v.User, "", v.Result.Flags)
				messages += r.Messages
				found += r.Found
				deletedAll += int64(deleted)
			})
			if err != nil {
				if c.Context.Err() != nil {
					return exitCode(exitInterrupted, nil)
				}
				return exitCode(exitFatal, err)
			}
			if checked == 0 {
				u.Hintf("verify proves what mbox or Mailbox migrated, from their state in %s: give the same --root and --state-dir as the migration", hostOf(c).State())
				return exitCode(exitFatal, errors.New("nothing verified: no selected user was migrated"))
			}
			if !u.Quiet {
				u.Printf("%s\n", verifySummary(checked, failed, never, found, messages, deletedAll))
			}
			if failed > 0 {
				u.Errorf("%d of %d users failed verification", failed, checked)
				return exitCode(exitUsersFailed, nil)
			}
			return nil
		},
	}
}

// verifySummary is verify's last lines: what was proved, and what could not be.
func verifySummary(checked, failed, never int, found, messages, deleted int64) string {
	s := fmt.Sprintf("%d user%s verified: %d of %d messages in the Maildirs", checked, plural(checked), found, messages)
	if deleted > 0 {
		s += fmt.Sprintf(", %d deleted since", deleted)
	}
	s += fmt.Sprintf("; %d failed", failed)
	if never > 0 {
		s += fmt.Sprintf("\n%d user%s with mail never migrated", never, plural(never))
	}
	return s
}

// verifyFailed says whether r proves a message missing, changed, stored twice, or a file whose
// source message is gone.
func verifyFailed(r migrate.VerifyResult) bool {
	return len(r.Missing) > 0 || len(r.Bad) > 0 || len(r.Duplicate) > 0 || len(r.Orphans) > 0
}

// warnFlags warns, once per user and source, about messages whose flags or keywords in the
// Maildir are not the source's.
func warnFlags(u *console, user, what string, flags []string) {
	if n := len(flags); n > 0 {
		more := ""
		if n > 1 {
			more = fmt.Sprintf(" and %d more", n-1)
		}
		u.Warningf("user %s: %sflags or keywords differ from the source: %s%s", user, what, flags[0], more)
	}
}

func describeVerify(r migrate.VerifyResult) string {
	var parts []string
	// some names the first of list and counts the others.
	some := func(what string, list []string) {
		if len(list) > 0 {
			p := what + ": " + list[0]
			if len(list) > 1 {
				p += " and " + strconv.Itoa(len(list)-1) + " more"
			}
			parts = append(parts, p)
		}
	}
	some("missing", r.Missing)
	if len(r.Deleted) > 0 {
		parts = append(parts, strconv.Itoa(len(r.Deleted))+" deleted by the user since")
	}
	some("different content", r.Bad)
	some("stored more than once", r.Duplicate)
	some("source message gone", r.Orphans)
	return strings.Join(parts, "; ")
}
