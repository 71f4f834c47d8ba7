package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/dovecotview"
)

func compareCommand(u *console, f *flags) *cli.Command {
	return &cli.Command{
		Name:      "compare",
		Usage:     "compare two recordings: would any client download mail again?",
		ArgsUsage: "BEFORE AFTER",
		Description: "Compares the recording made before the switch (BEFORE) with the one made after it (AFTER),\n" +
			"user by user, and prints what differs: mailboxes gone or new, UIDVALIDITY, UIDNEXT, message\n" +
			"counts, subscriptions, and per message the UID, flags and keywords, received date, size, POP3\n" +
			"UIDL and, when both were recorded with --hash, the content. Messages that arrived in between\n" +
			"(UIDs from the old UIDNEXT up), a UIDNEXT that went up and a \\Noselect parent folder that\n" +
			"comes or goes are printed as notes and do not matter. The last line says whether any client\n" +
			"would download mail again, and why: a changed UIDVALIDITY, UID or POP3 UIDL, or missing\n" +
			"messages. The settings that differ between the recordings (mail_location, the namespace\n" +
			"separator, pop3_uidl_format) are printed first. Only the first few differences of each kind\n" +
			"in a mailbox are listed, unless --all.\n" +
			"Exit status: " + compareExitStatusLine() + ";\n" +
			"1 when some users differ and others could not be compared.",
		Flags: []cli.Flag{f.all, f.quiet},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("compare takes two recordings, BEFORE and AFTER; got %d argument%s", c.NArg(), plural(c.NArg()))
			}
			return runCompare(u, c.Args().Get(0), c.Args().Get(1), c.Bool("all"))
		},
	}
}

func runCompare(u *console, beforePath, afterPath string, all bool) error {
	before, err := dovecotview.Open(beforePath)
	if err != nil {
		return exitCode(exitUsersFailed, consoleError{err})
	}
	after, err := dovecotview.Open(afterPath)
	if err != nil {
		return exitCode(exitUsersFailed, consoleError{err})
	}
	if !u.Quiet {
		for _, n := range dovecotview.CompareHeaders(before.Header, after.Header) {
			u.Printf("settings: %s\n", n)
		}
	}
	names := append([]string(nil), before.Users()...)
	for _, n := range after.Users() {
		if !before.Has(n) {
			names = append(names, n)
		}
	}
	var s dovecotview.Summary
	for _, name := range names {
		ub, err := readUser(before, name)
		if err != nil {
			return exitCode(exitUsersFailed, consoleError{err})
		}
		ua, err := readUser(after, name)
		if err != nil {
			return exitCode(exitUsersFailed, consoleError{err})
		}
		d := dovecotview.Compare(before.Header, after.Header, ub, ua)
		s.Add(d)
		switch {
		case d.Uncompared != "":
			u.Errorf("user %s: could not be compared: %s", name, d.Uncompared)
		case u.Quiet:
		case len(d.Differences) == 0:
			u.Printf("%s: no difference\n", name)
		default:
			for _, line := range d.Lines(all) {
				u.Printf("%s\n", line)
			}
		}
	}
	if !u.Quiet {
		u.Printf("%s\n", s.String())
	}
	switch {
	case s.Differ > 0:
		return exitCode(exitDiffers, nil)
	case s.Uncompared > 0:
		return exitCode(exitUsersFailed, fmt.Errorf("%d of %d users could not be compared", s.Uncompared, s.Users))
	}
	return nil
}

// readUser reads a user from f, or nil when f does not hold them.
func readUser(f *dovecotview.File, name string) (*dovecotview.User, error) {
	if !f.Has(name) {
		return nil, nil
	}
	return f.User(name)
}
