package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/dovecotview"
	"github.com/maildirmig/maildirmig/users"
)

func recordCommand(u *console, f *flags) *cli.Command {
	return &cli.Command{
		Name:      "record",
		Usage:     "record what Dovecot shows each user (IMAP and POP3), before and after the switch",
		ArgsUsage: "FILE [USER...]",
		Description: "Records into FILE what Dovecot shows every user (or the USERs named): each mailbox with its\n" +
			"UIDVALIDITY, UIDNEXT and message count, the subscriptions, and each message's UID, flags and\n" +
			"keywords, received date, size and POP3 UIDL; with --hash, a SHA-256 of every message too, which\n" +
			"reads every byte (a message above 1 GiB fails its user). It reads through doveadm as root, with\n" +
			"Dovecot's configuration (--dovecot-config), without passwords, and asks Dovecot's own POP3\n" +
			"server (doveadm exec pop3) for the UIDLs, so they are what clients get whatever\n" +
			"pop3_uidl_format says. A doveadm command that prints nothing for --stall-timeout is killed\n" +
			"and fails its user. Dovecot must be running: doveadm finds users through its auth service.\n" +
			"Reading a mailbox is what a client's login does (Dovecot may update its indexes).\n" +
			"FILE is JSON Lines (one line per user, mailbox and\n" +
			"message), mode 0600, written in full or not at all; an existing FILE is never replaced without\n" +
			"--force. Users Dovecot does not know (root, system accounts) are recorded as such, and are\n" +
			"an error only when named. --root and --passwd say where the user list comes from. Record on\n" +
			"the night before Dovecot stops, again once it serves the Maildirs, then compare the two.\n" +
			"Exit status: " + exitStatusLine(exitOK, exitFatal, exitUsage, exitUsersFailed, exitInterrupted) + ".",
		Flags: []cli.Flag{f.root, f.passwd, f.user, f.minUID, f.noRoot, f.jobs, f.progress, f.quiet,
			f.dovecotConfig, f.hash, f.replace, f.doveadmStall},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("record needs the FILE to write the recording to")
			}
			path := c.Args().First()
			named := append(c.StringSlice("user"), c.Args().Tail()...)
			list, err := users.List(users.Options{Host: hostOf(c),
				MinUID: c.Int("min-uid"), NoRoot: c.Bool("no-root"), Names: named})
			if err != nil {
				return err
			}
			var names []string
			for _, pw := range list {
				names = append(names, pw.Name)
			}
			rec := &dovecotview.Recorder{Config: c.String("dovecot-config"), Hash: c.Bool("hash"), StallTimeout: c.Duration("stall-timeout")}
			return runRecord(c, u, rec, path, names, len(named) > 0)
		},
	}
}

// runRecord records names into path; named says the users were named, so that one Dovecot
// does not know is an error rather than a user without mail.
func runRecord(c *cli.Context, u *console, rec *dovecotview.Recorder, path string, names []string, named bool) error {
	ctx := c.Context
	w, err := dovecotview.Create(path, c.Bool("force"))
	if errors.Is(err, fs.ErrExist) {
		return &exitError{code: exitFatal, err: fmt.Errorf("%s exists: a recording is never replaced without --force", path),
			hint: "give another FILE; keep the recording taken before the switch"}
	}
	if err != nil {
		return exitCode(exitFatal, consoleError{err})
	}
	defer w.Abort()
	h, err := rec.Settings(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return exitCode(exitInterrupted, nil)
		}
		return exitCode(exitFatal, consoleError{err})
	}
	h.Time, h.Maildirmig = time.Now(), version()
	h.Host, _ = os.Hostname()
	if err := w.WriteHeader(h); err != nil {
		return exitCode(exitFatal, consoleError{err})
	}

	m := u.Progress(u.ShowProgress(c.String("progress")), 0, len(names))
	defer m.Close()
	rec.Started = m.UserStart
	var mu sync.Mutex
	failed, unknown, messages := 0, 0, 0
	err = rec.Record(ctx, names, c.Int("jobs"), w, func(r *dovecotview.User) {
		m.UserDone(r.Name)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Error != "":
			failed++
			u.Errorf("user %s: %s", r.Name, r.Error)
		case r.Unknown != "" && named:
			failed++
			u.Errorf("user %s: Dovecot does not serve this user: %s", r.Name, r.Unknown)
		case r.Unknown != "":
			unknown++
			if !u.Quiet {
				u.Printf("%s: not a Dovecot user: %s\n", r.Name, r.Unknown)
			}
		default:
			n, uidls := 0, 0
			for _, mb := range r.Mailboxes {
				n += len(mb.Messages)
				for _, msg := range mb.Messages {
					if msg.UIDL != "" {
						uidls++
					}
				}
			}
			messages += n
			if r.POP3Error != "" {
				failed++
				u.Errorf("user %s: POP3 UIDLs could not be listed: %s", r.Name, r.POP3Error)
			}
			if !u.Quiet {
				u.Printf("%s: %s, %s, %s\n", r.Name, countOf(len(r.Mailboxes), "mailbox", "mailboxes"),
					countOf(n, "message", "messages"), countOf(uidls, "POP3 UIDL", "POP3 UIDLs"))
			}
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return exitCode(exitInterrupted, nil)
		}
		return exitCode(exitFatal, consoleError{err})
	}
	if err := w.Commit(time.Now()); err != nil {
		return exitCode(exitFatal, consoleError{err})
	}
	m.Close()
	if !u.Quiet {
		s := fmt.Sprintf("recorded %s, %s, in %s", countOf(len(names), "user", "users"), countOf(messages, "message", "messages"), path)
		if unknown > 0 {
			s += fmt.Sprintf(" (%d not Dovecot users)", unknown)
		}
		u.Printf("%s\n", s)
	}
	if failed > 0 {
		return exitCode(exitUsersFailed, fmt.Errorf("%d of %d users could not be recorded in full; %s holds what could be", failed, len(names), path))
	}
	return nil
}

// countOf writes n with the noun in its singular (one) or plural (many) form.
func countOf(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
