package main

import (
	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/migrate"
)

func usersCommand(u *console, f *flags) *cli.Command {
	return &cli.Command{
		Name:      "users",
		Usage:     "print the migration plan: who has mail, how much, where it goes",
		ArgsUsage: userArgsUsage,
		Description: "Lists the users (or the USERs named) mbox (or, with --mailbox, Mailbox) would migrate: uid, bytes and messages\n" +
			"the INBOX source still has to migrate (messages are counted for sources up to 64 MiB), source,\n" +
			"destination, and the free space of each destination filesystem against what it will receive,\n" +
			"folders included. Users whose source is unsafe, changed since the last run, or would not fit\n" +
			"are marked refuse, with the reason on the line below. Below each user, one line per mbox\n" +
			"folder found beneath ~USER/mail (--folders) with its bytes and Maildir++ folder (its messages\n" +
			"are not counted: only the user's worker reads a folder), and one per entry there that would\n" +
			"not be migrated. Nothing is locked or written.",
		Flags: f.system(f.maildirName, f.force, f.minUID, f.noRoot, f.folders, f.noFolders,
			&cli.BoolFlag{Name: "mailbox", Usage: "plan for ~USER/Mailbox instead of the spool"}),
		Action: func(c *cli.Context) error {
			source := migrate.SourceSpool
			if c.Bool("mailbox") {
				source = migrate.SourceMailbox
			}
			cfg := batchConfig(c, source)
			if err := checkFolders(cfg); err != nil {
				return err
			}
			cfg.Force = c.Bool("force")
			return runPlan(c.Context, u, cfg)
		},
	}
}
