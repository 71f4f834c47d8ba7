package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/check"
	"github.com/maildirmig/maildirmig/migrate"
	"github.com/maildirmig/maildirmig/preflight"
)

// preflightUsageError makes a usage error "could not check" (3), as check does, and still
// writes the JSON object when JSON was asked for, so that monitoring reads a status.
func preflightUsageError(u *ui, ue *usageError) {
	ue.code = int(check.Unknown)
	if flagValue(u.args, "format", preflightFormats[0]) == "json" {
		_ = preflight.WriteJSONError(u.stdout, errors.New(ue.msg))
	}
}

func preflightCommand(u *ui, f *flags) *cli.Command {
	return &cli.Command{
		Name:  "preflight",
		Usage: "before the night: what Postfix and Dovecot must still change, and what maildirmig will do",
		Description: "Reads the live configuration with postconf -h (home_mailbox, mailbox_command,\n" +
			"mailbox_transport, mail_spool_directory, mailbox_delivery_lock) and doveconf -h (mail_location,\n" +
			"the inbox namespace's separator, pop3_uidl_format) and prints, most urgent first, what must\n" +
			"still change, with the exact postconf -e and Dovecot lines: a mailbox_command such as procmail\n" +
			"that would keep delivering to mbox, the folder directory Dovecot uses (so that --folders\n" +
			"matches), a POP3 UIDL format whose UIDLs would not survive the move. It says whether Postfix\n" +
			"and Dovecot are running, compares the free space of each home filesystem with the spools to\n" +
			"migrate (as users does), names the users whose home is missing or would be refused, and ends\n" +
			"with the night's maildirmig command lines. It changes nothing.\n" +
			"Exit status (Nagios plugin convention, as check): 0 ready, 1 warnings (settings still to\n" +
			"switch), 2 critical (mail would be lost, go astray or be downloaded again), 3 could not check\n" +
			"(a usage error too).",
		Flags: []cli.Flag{
			f.root, f.passwd, f.spoolDir, f.stateDir, f.user, f.quiet, f.maildirName,
			f.minUID, f.noRoot, f.folders, f.noFolders,
			&cli.BoolFlag{Name: "mailbox", Usage: "the night migrates ~USER/Mailbox instead of the spool"},
			f.postfixConfig, f.dovecotConfig,
			f.preflightFormat,
		},
		Action: func(c *cli.Context) error {
			format := c.String("format")
			source := migrate.SourceSpool
			if c.Bool("mailbox") {
				source = migrate.SourceMailbox
			}
			cfg := preflight.Config{
				Migrate:     batchConfig(c, source),
				PostfixDir:  c.String("postfix-config"),
				DovecotConf: c.String("dovecot-config"),
			}
			if err := checkFolders(cfg.Migrate); err != nil {
				return err
			}
			return runPreflight(c.Context, u, cfg, format)
		},
	}
}

// runPreflight prints the report; its error carries the Nagios exit code.
func runPreflight(ctx context.Context, u *ui, cfg preflight.Config, format string) error {
	r, err := preflight.Run(ctx, cfg)
	if err != nil {
		if format == "json" {
			preflight.WriteJSONError(u.stdout, err)
		}
		return exitCode(int(check.Unknown), consoleError{err})
	}
	if format == "json" {
		err = preflight.WriteJSON(u.stdout, r)
	} else {
		err = preflight.WriteText(u.stdout, r, u.quiet)
	}
	if err != nil {
		return exitCode(int(check.Unknown), fmt.Errorf("writing the report: %w", err))
	}
	if s := r.Status(); s != check.OK {
		return exitCode(int(s), nil)
	}
	return nil
}
