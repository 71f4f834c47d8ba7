package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/internal/escape"
	"github.com/maildirmig/maildirmig/internal/ui"
	"github.com/maildirmig/maildirmig/migrate"
)

func rollbackCommand(u *console, f *flags) *cli.Command {
	return &cli.Command{
		Name:      "rollback",
		Usage:     "write each migrated user's Maildir back into the mbox it came from",
		ArgsUsage: userArgsUsage,
		Description: "The way back: for every user (or every USER named) whose state says they were migrated,\n" +
			"writes the Maildir back into the source the migration read (the spool, or ~USER/Mailbox) and\n" +
			"each Maildir++ folder into its mbox beneath ~USER/mail, so that Dovecot set back to mbox shows\n" +
			"what it showed from the Maildir: messages in UID order with their UIDs, UIDVALIDITY and UIDNEXT,\n" +
			"flags, keywords, received dates, every byte, folders and subscriptions, so POP3 UIDLs too. The\n" +
			"Maildir is only read. Mail that reached a source after the last pass is kept, after the\n" +
			"Maildir's messages. Each new mbox is written beside the old one, read back and compared with\n" +
			"the Maildir, then exchanged with it under the locks a migration takes; the mbox files of\n" +
			"folders gone from the Maildir are moved out of ~USER/mail, never removed. A source whose\n" +
			"migrated part changed since the last pass is refused. A second rollback writes nothing, and a\n" +
			"later mbox pass migrates again with the same UIDs. Users never migrated are named and left.\n" +
			"Exit status: " + exitStatusLine(exitOK, exitFatal, exitUsage, exitUsersFailed) + ",\n" +
			exitStatusLine(exitTempFail, exitInterrupted) + ".",
		Flags: f.system(f.maildirName, f.lockTimeout, f.stallTimeout, f.minUID, f.noRoot, f.folders, f.noFolders),
		Action: func(c *cli.Context) error {
			cfg := batchConfig(c, migrate.SourceSpool)
			if err := checkFolders(cfg); err != nil {
				return err
			}
			cfg.LockTimeout = c.Duration("lock-timeout")
			cfg.StallTimeout = c.Duration("stall-timeout")
			cfg.DryRun = c.Bool("dry-run")
			cfg.Argv = os.Args
			cfg.Version = version()
			return runRollback(c.Context, u, cfg, c.String("progress"))
		},
	}
}

// runRollback rolls back and reports as runBatch does: a line per user, an error line per
// failed user, a summary.
func runRollback(ctx context.Context, u *console, cfg migrate.Config, progress string) error {
	m := u.Progress(u.ShowProgress(progress), 0, 0)
	defer m.Close()
	reportUsers(ctx, u, m, &cfg, func(r migrate.UserResult) string {
		if r.Outcome == migrate.OutcomeNeverMigrated {
			return escape.Line(r.User) + ": never migrated, left as it is"
		}
		return rollbackLine(r, cfg.DryRun)
	})
	sum, err := migrate.Rollback(ctx, cfg)
	m.Close()
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		u.Errorf("interrupted after %d users; locks released; every mbox is the old one or the new one; run again to finish", sum.Users)
		return exitCode(exitInterrupted, nil)
	}
	if err != nil {
		return exitCode(exitFatal, err)
	}
	if !u.Quiet {
		u.Printf("%d users: %d rolled back, %d up to date, %d never migrated, %d failed\n", sum.Users, sum.Migrated, sum.UpToDate, sum.NoMailbox, sum.Failed)
	}
	return usersFailed(u, sum, "is Dovecot or the MTA still running?")
}

// rollbackLine says what a rollback did for one user: its messages, what was kept, the UIDNEXT
// written, its folders.
func rollbackLine(r migrate.UserResult, dry bool) string {
	t := r.Total()
	folders := ""
	if n := len(r.Folders); n > 0 {
		folders = fmt.Sprintf(" (%d folder%s)", n, plural(n))
	}
	if dry {
		return fmt.Sprintf("%s: would write %d messages%s back, UIDNEXT %d", escape.Line(r.User), t.Messages, folders, r.Stats.NextUID)
	}
	if r.Outcome == migrate.OutcomeUpToDate {
		return fmt.Sprintf("%s: up to date: the mbox already is the Maildir%s", escape.Line(r.User), folders)
	}
	s := fmt.Sprintf("%s: %d messages%s written back, %s, UIDNEXT %d", escape.Line(r.User), t.Messages, folders, ui.Size(t.Bytes), r.Stats.NextUID)
	if t.Existed > 0 {
		s += fmt.Sprintf("; %s that arrived since kept", ui.Size(t.Existed))
	}
	if r.FoldersRemoved > 0 {
		s += fmt.Sprintf("; %d gone folder%s moved aside", r.FoldersRemoved, plural(r.FoldersRemoved))
	}
	return s
}
