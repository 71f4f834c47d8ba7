package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/migrate"
)

func init() {
	// The per-user worker is this same program started again as the user (see package
	// migrate); it must take over before the command line is parsed, in main and in the test
	// binary alike.
	if migrate.IsWorker() {
		os.Exit(migrate.WorkerMain())
	}
	commandFactories = append(commandFactories, mboxCommand("mbox"), mboxCommand("Mailbox"), usersCommand, verifyCommand)
}

// Flags of the batch commands.
var (
	afterFlag         = &cli.StringFlag{Name: "after", Value: "keep", Usage: "then, under the lock, `keep|rename|truncate` each source whose messages are all verified in the Maildir"}
	forceFlag         = &cli.BoolFlag{Name: "force", Usage: "migrate a user whose already migrated part of the source changed again from the start: messages already in the Maildir are recognised by content and date wherever they now are in the source and not written twice; messages deleted from the Maildir come back"}
	stallTimeoutFlag  = &cli.DurationFlag{Name: "stall-timeout", Value: migrate.DefaultStallTimeout, Usage: "kill a user's worker that reads and writes nothing for `DURATION` (stopped, blocked, on a hung home) and fail that user; waiting for a lock is allowed on top"}
	lockTimeoutFlag   = &cli.DurationFlag{Name: "lock-timeout", Value: 30 * time.Second, Usage: "give up on a user whose spool stays locked for `DURATION` (exit 75 when that is the only failure)"}
	auditMessagesFlag = &cli.BoolFlag{Name: "audit-messages", Usage: "log one audit line per message (offset, size, sha256, file name)"}
	minUIDFlag        = &cli.IntFlag{Name: "min-uid", Value: -1, Usage: "select users from `UID` up (default: UID_MIN from login.defs); root is always included"}
	noRootFlag        = &cli.BoolFlag{Name: "no-root", Usage: "leave root's mail alone"}
	foldersFlag       = &cli.StringFlag{Name: "folders", Value: migrate.DefaultFolderRoot, Usage: "migrate the mbox folders beneath ~USER/`DIR` to Maildir++ folders (Dovecot's mbox:~/mail); they are kept whatever --after says"}
	noFoldersFlag     = &cli.BoolFlag{Name: "no-folders", Usage: "migrate the INBOX only, not the folders"}
)

// batchConfig reads the flags the batch commands share.
func batchConfig(c *cli.Context, source migrate.Source) migrate.Config {
	return migrate.Config{
		Source:    source,
		Root:      c.String("root"),
		Passwd:    c.String("passwd"),
		SpoolDir:  c.String("spool-dir"),
		StateDir:  c.String("state-dir"),
		AuditLog:  c.String("audit-log"),
		Users:     c.StringSlice("user"),
		MinUID:    c.Int("min-uid"),
		NoRoot:    c.Bool("no-root"),
		Maildir:   c.String("maildir"),
		Jobs:      c.Int("jobs"),
		Folders:   c.String("folders"),
		NoFolders: c.Bool("no-folders"),
	}
}

// checkFolders refuses a --folders that is not a path beneath the home.
func checkFolders(cfg migrate.Config) error {
	if err := migrate.CheckFolderRoot(cfg.Folders); err != nil {
		return usagef("--folders %q: want a clean path relative to the home, such as mail", cfg.Folders)
	}
	return nil
}

func mboxCommand(name string) func(*ui) *cli.Command {
	source, what := migrate.SourceSpool, "every user's spool (/var/spool/mail/USER)"
	if name == "Mailbox" {
		source, what = migrate.SourceMailbox, "every user's ~USER/Mailbox"
	}
	return func(u *ui) *cli.Command {
		return &cli.Command{
			Name:  name,
			Usage: "migrate " + what + " to ~USER/Maildir",
			Description: "Migrates, as each user (never as root inside a home), " + what + " into\n" +
				"~USER/Maildir, --jobs users at a time. Each source is dotlocked and fcntl-locked as Postfix and\n" +
				"Dovecot do, and refused when it is a symlink, a hard link or someone else's file. A re-run\n" +
				"migrates only what was appended since and never brings back a message the user deleted.\n" +
				"The mbox folders beneath ~USER/mail (--folders) become Maildir++ folders (~USER/Maildir/.NAME),\n" +
				"with their subscriptions, locked as Dovecot locks them; --after applies to the INBOX only, the\n" +
				"folders stay as they are. Every step is appended to the audit log. --dry-run prints the plan instead.\n" +
				"Exit status: 0 done, 1 fatal, 2 usage, 3 some users failed, 75 only lock timeouts, 130 interrupted.",
			Flags: systemFlags(maildirNameFlag, keepHeadersFlag, unescapeFlag, fsyncFlag, afterFlag, forceFlag,
				lockTimeoutFlag, stallTimeoutFlag, auditMessagesFlag, minUIDFlag, noRootFlag, foldersFlag, noFoldersFlag),
			Action: func(c *cli.Context) error {
				cfg := batchConfig(c, source)
				if err := checkFolders(cfg); err != nil {
					return err
				}
				var err error
				if cfg.Convert.Unescape, err = parseUnescape(c.String("unescape")); err != nil {
					return err
				}
				if cfg.Convert.Maildir.Fsync, err = parseFsync(c.String("fsync")); err != nil {
					return err
				}
				switch cfg.After = c.String("after"); cfg.After {
				case migrate.AfterKeep, migrate.AfterRename, migrate.AfterTruncate:
				default:
					return usagef("--after %q: want keep, rename or truncate", cfg.After)
				}
				if cfg.Jobs < 1 {
					return usagef("--jobs %d: want 1 or more", cfg.Jobs)
				}
				cfg.Convert.KeepHeaders = c.Bool("keep-headers")
				cfg.Force = c.Bool("force")
				cfg.LockTimeout = c.Duration("lock-timeout")
				if cfg.StallTimeout = c.Duration("stall-timeout"); cfg.StallTimeout <= 0 {
					return usagef("--stall-timeout %v: want a positive duration", cfg.StallTimeout)
				}
				cfg.AuditMessages = c.Bool("audit-messages")
				cfg.Argv = os.Args
				cfg.Version = version()
				if c.Bool("dry-run") {
					return runPlan(c.Context, u, cfg)
				}
				return runBatch(c.Context, u, cfg, c.String("progress"))
			},
		}
	}
}

// runBatch migrates and reports: one line per user on stdout (unless a progress bar is drawn
// or -q), one error line per failed user, and a summary.
func runBatch(ctx context.Context, u *ui, cfg migrate.Config, progress string) error {
	show := u.showProgress(progress)
	var total int64
	if show {
		// The bar needs the total; the plan's sizes give it without reading the spools.
		if plan, err := migrate.Plan(ctx, cfg); err == nil {
			for _, e := range plan {
				if e.Action == migrate.ActionMigrate {
					total += e.Todo()
				}
			}
			m := newMeter(u, true, total, len(plan))
			defer m.Close()
			cfg.Progress = m.Add
			cfg.UserDone = func(r migrate.UserResult) { m.UserDone(0) }
		}
	}
	var mu sync.Mutex
	userDone := cfg.UserDone
	cfg.UserDone = func(r migrate.UserResult) {
		if userDone != nil {
			userDone(r)
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Err != nil && errors.Is(r.Err, context.Canceled) && ctx.Err() != nil:
			// The interrupt's own line says it for every user.
		case r.Err != nil:
			u.errorf("user %s: %v", r.User, r.Err)
		case !show && !u.quiet && r.Outcome != migrate.OutcomeNoMailbox:
			u.printf("%s\n", userLine(r))
		}
	}
	cfg.Notice = func(user string, e migrate.Event) {
		if e.Kind == migrate.EventRenumbered || e.Kind == migrate.EventKeywordsDropped {
			mu.Lock()
			defer mu.Unlock()
			u.warningf("user %s: %s", user, e.Detail)
		}
	}
	cfg.Warn = func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		u.warningf("%s", msg)
	}
	sum, err := migrate.Run(ctx, cfg)
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		u.errorf("interrupted after %d users; locks released; %s; run again to finish", sum.Users, leftovers(sum.Killed))
		return exitCode(exitInterrupted, nil)
	}
	if err != nil {
		return exitCode(exitFatal, err)
	}
	if !u.quiet {
		u.printf("%s\n", summaryLine(sum))
	}
	if sum.Failed == 0 {
		return nil
	}
	u.errorf("%d of %d users failed", sum.Failed, sum.Users)
	if sum.Failed == sum.LockTimeouts {
		u.hintf("their spools stayed locked (is a POP3 client or the MTA busy?); run again later")
		return exitCode(exitTempFail, nil)
	}
	return exitCode(exitUsersFailed, nil)
}

// leftovers says what an interrupted run left in tmp/: nothing, unless a worker had to be killed
// before it removed its pending batch.
func leftovers(killed []string) string {
	switch len(killed) {
	case 0:
		return "partial files removed"
	case 1:
		return "the worker of " + killed[0] + " was killed before it removed its partial files from tmp/, the next run removes them"
	}
	return "the workers of " + strings.Join(killed, ", ") + " were killed before they removed their partial files from tmp/, the next run removes them"
}

func userLine(r migrate.UserResult) string {
	if r.Outcome == migrate.OutcomeUpToDate {
		if n := migratedFolders(r); n > 0 {
			return fmt.Sprintf("%s: up to date (%d folder%s)", r.User, n, plural(n))
		}
		return fmt.Sprintf("%s: up to date", r.User)
	}
	t := r.Total()
	folders := ""
	if n := migratedFolders(r); n > 0 {
		folders = fmt.Sprintf(" (%d folder%s)", n, plural(n))
	}
	s := fmt.Sprintf("%s: %d messages%s, %d written, %d already in the Maildir, %d skipped, %d bytes in %.2fs",
		r.User, t.Messages-t.Skipped, folders, t.Written, t.Existed, t.Skipped, t.Bytes, r.Elapsed.Seconds())
	if r.After != "" {
		s += "; source " + r.After
	}
	if t.Renumbered {
		s += "; some UIDs renumbered: this user's clients will download those messages again"
	}
	return s
}

// migratedFolders counts the folders that are in the Maildir now (not those skipped).
func migratedFolders(r migrate.UserResult) int {
	n := 0
	for _, f := range r.Folders {
		if f.Outcome == migrate.OutcomeMigrated || f.Outcome == migrate.OutcomeUpToDate {
			n++
		}
	}
	return n
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func summaryLine(s migrate.Summary) string {
	parts := []string{fmt.Sprintf("%d users: %d migrated, %d up to date, %d without a mailbox, %d failed", s.Users, s.Migrated, s.UpToDate, s.NoMailbox, s.Failed)}
	parts = append(parts, fmt.Sprintf("%d messages written, %d already there, %d bytes in %.2fs", s.Written, s.Existed, s.Bytes, s.Elapsed.Seconds()))
	return strings.Join(parts, "; ")
}

// runPlan prints what a run would do.
func runPlan(ctx context.Context, u *ui, cfg migrate.Config) error {
	plan, err := migrate.Plan(ctx, cfg)
	if err != nil {
		return exitCode(exitFatal, err)
	}
	printPlan(u, plan)
	return nil
}

func printPlan(u *ui, plan []migrate.PlanEntry) {
	u.printf("%-16s %6s %12s %8s  %-10s %s -> %s\n", "USER", "UID", "BYTES", "MESSAGES", "ACTION", "SOURCE", "MAILDIR")
	var todo, bytes int64
	free := map[string]int64{}
	need := map[string]int64{}
	var filesystems []string     // in plan order
	where := map[string]string{} // a filesystem's first home, to name it by
	for _, e := range plan {
		size, msgs := "-", "-"
		if e.Size >= 0 || e.FolderBytes > 0 {
			size = fmt.Sprint(e.Todo())
		}
		if e.Messages >= 0 {
			msgs = fmt.Sprint(e.Messages)
		}
		action := e.Action
		if e.Reason != "" {
			action += ": " + e.Reason
		}
		u.printf("%-16s %6d %12s %8s  %-10s %s -> %s\n", e.User, e.UID, size, msgs, action, e.Src, e.Dst)
		for _, f := range e.Folders {
			u.printf("%-16s %6s %12d %8s  %-10s %s -> %s\n", "", "", f.Size, "-", "folder", f.String(), f.Maildir)
		}
		for _, f := range e.SkippedFolders {
			u.printf("%-16s %6s %12s %8s  %-10s %s: %s\n", "", "", "-", "-", "no folder", f.Source, f.Reason)
		}
		if e.Action == migrate.ActionMigrate {
			todo++
			bytes += e.Todo()
			if _, ok := need[e.FS]; !ok {
				filesystems = append(filesystems, e.FS)
				where[e.FS] = filepath.Dir(e.Dst)
			}
			need[e.FS] += e.Todo()
			free[e.FS] = e.Free
		}
	}
	u.printf("%d users, %d to migrate, %d bytes", len(plan), todo, bytes)
	for _, fs := range filesystems {
		if free[fs] >= 0 {
			u.printf("; filesystem of %s: %d bytes needed, %d free", where[fs], need[fs], free[fs])
		}
	}
	u.printf("\n")
}
