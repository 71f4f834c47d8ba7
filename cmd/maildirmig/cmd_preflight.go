package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/check"
	"github.com/maildirmig/maildirmig/migrate"
	"github.com/maildirmig/maildirmig/preflight"
	"github.com/maildirmig/maildirmig/users"
)

// preflightUsageError makes a usage error "could not check" (3), as check does, and still
// writes the JSON object when JSON was asked for, so that monitoring reads a status.
func preflightUsageError(u *console, ue *usageError) {
	ue.code = int(check.Unknown)
	if flagValue(u.args, "format", preflightFormats[0]) == formatJSON {
		_ = preflight.WriteJSONError(u.Out(), errors.New(ue.msg))
	}
}

func preflightCommand(u *console, f *flags) *cli.Command {
	return &cli.Command{
		Name:      "preflight",
		Usage:     "before the night: what Postfix and Dovecot must still change, and what maildirmig will do",
		ArgsUsage: userArgsUsage,
		Description: "Reads the live configuration with postconf -h (home_mailbox, mailbox_command,\n" +
			"mailbox_transport, mail_spool_directory, mailbox_delivery_lock) and doveconf -h (mail_location,\n" +
			"the inbox namespace's separator, pop3_uidl_format) and prints, most urgent first, what must\n" +
			"still change, with the exact postconf -e and Dovecot lines: a mailbox_command such as procmail\n" +
			"that would keep delivering to mbox, the folder directory Dovecot uses (so that --folders\n" +
			"matches), a POP3 UIDL format whose UIDLs would not survive the move. It says whether Postfix\n" +
			"and Dovecot are running, SELinux's mode (and whether restorecon is there to relabel the\n" +
			"Maildirs), compares the free space of each home filesystem with the spools to\n" +
			"migrate (as users does), names the users whose home is missing or would be refused, and ends\n" +
			"with the night's maildirmig command lines, for the USERs named and with the options given\n" +
			"(none once the switch is done). It changes nothing.\n" +
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
				Given:       givenOptions(c, nightOptions...),
				SELinux:     &selinuxHost,
				Takes: func(command, option string) bool {
					if cmd := c.App.Command(command); cmd != nil {
						for _, fl := range cmd.Flags {
							if slices.Contains(fl.Names(), option) {
								return true
							}
						}
					}
					return false
				},
			}
			if err := checkFolders(cfg.Migrate); err != nil {
				return err
			}
			return runPreflight(c.Context, u, cfg, format)
		},
	}
}

// nightOptions are the options of preflight that say which users and places the night is
// about: the night's commands carry those given.
var nightOptions = []string{"root", "passwd", "spool-dir", "state-dir", "maildir", "min-uid", "no-root", "folders", "no-folders"}

// givenOptions returns those of names that were set on the command line, with their values.
func givenOptions(c *cli.Context, names ...string) []preflight.Option {
	var out []preflight.Option
	for _, name := range names {
		if !c.IsSet(name) {
			continue
		}
		o := preflight.Option{Name: name}
		for _, fl := range c.Command.Flags {
			if !slices.Contains(fl.Names(), name) {
				continue
			}
			switch fl.(type) {
			case *cli.BoolFlag:
			case *cli.IntFlag:
				o.Value = strconv.Itoa(c.Int(name))
			default:
				o.Value = c.String(name)
			}
		}
		out = append(out, o)
	}
	return out
}

// runPreflight prints the report; its error carries the Nagios exit code.
func runPreflight(ctx context.Context, u *console, cfg preflight.Config, format string) error {
	r, err := preflight.Run(ctx, cfg)
	if errors.Is(err, users.ErrNoSuchUser) {
		// A usage error: strict reports it, and its hook writes the JSON object.
		return err
	}
	if err != nil {
		if format == formatJSON {
			preflight.WriteJSONError(u.Out(), err)
		}
		return exitCode(int(check.Unknown), consoleError{err})
	}
	if format == formatJSON {
		err = preflight.WriteJSON(u.Out(), r)
	} else {
		err = preflight.WriteText(u.Out(), r, u.Quiet)
	}
	if err != nil {
		return exitCode(int(check.Unknown), fmt.Errorf("writing the report: %w", err))
	}
	if s := r.Status(); s != check.OK {
		return exitCode(int(s), nil)
	}
	return nil
}
