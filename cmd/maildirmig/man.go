package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig"
	"github.com/maildirmig/maildirmig/host"
	"github.com/maildirmig/maildirmig/internal/audit"
)

// auditFields are the fields of e in the order its lines carry them.
func auditFields(e audit.EventSpec) []string {
	f := slices.Clone(e.Fields)
	audit.FieldOrder(f)
	return f
}

// manCommand prints the man page, generated from the command definitions so that it never
// drifts from --help: maildirmig man > /usr/local/share/man/man8/maildirmig.8
func manCommand(u *console) *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the manual page (roff)",
		Hidden: true,
		Action: func(c *cli.Context) error {
			u.Printf("%s", manPage(c.App))
			return nil
		},
	}
}

// manFiles are the FILES section: path and what it is.
var manFiles = [][2]string{
	{"/var/spool/mail/USER, /var/mail/USER", "the mbox spool that maildirmig mbox migrates (Postfix mail_spool_directory)"},
	{"~USER/Mailbox", "the mbox that maildirmig Mailbox migrates"},
	{"~USER/mail", "mbox folders (Dovecot mbox:~/mail), migrated to Maildir++ folders ~USER/Maildir/.NAME"},
	{"~USER/Maildir", "the destination: cur/, new/, tmp/, dovecot-uidlist, dovecot-keywords"},
	{"/etc/skel/Maildir", "the Maildir that useradd copies into new homes (maildirmig skel)"},
	{host.DefaultStateDir, "per-user migration state (root only): what was migrated, so that a re-run continues"},
	{host.DefaultAuditLog, "the audit log (JSON Lines, append-only, mode 0600)"},
	{"/etc/passwd", "the users (through NSS, or --passwd FILE)"},
	{"/usr/lib/systemd/system/maildirmig-check.service, maildirmig-check.timer", "the nightly check, as a systemd timer"},
	{"/etc/cron.d/maildirmig", "the nightly check, for systems without systemd (commented out)"},
	{"/etc/logrotate.d/maildirmig", "monthly rotation of the audit log"},
}

// manExamples are the EXAMPLES section: a comment and a command line.
var manExamples = [][2]string{
	{"Before the night: what Postfix and Dovecot must still change.", "maildirmig preflight"},
	{"What the migration would do, user by user, and the free space.", "maildirmig mbox \\-\\-dry\\-run"},
	{"Migrate every user's spool, then prove every message arrived.", "maildirmig mbox && maildirmig verify"},
	{"Migrate two users only.", "maildirmig mbox \\-\\-user alice \\-\\-user bob"},
	{"Convert one mbox file into a Maildir.", "maildirmig convert \\-\\-from old.mbox ~/Maildir"},
	{"Before Dovecot stops on the night: record what every user sees.", "maildirmig record /root/before.jsonl"},
	{"Once Dovecot serves the Maildirs: record again, and compare before clients come back.", "maildirmig record /root/after.jsonl && maildirmig compare /root/before.jsonl /root/after.jsonl"},
	{"Give new and existing users an empty Maildir.", "maildirmig skel \\-\\-existing"},
	{"Nightly check for node_exporter's textfile collector: the report replaces the last one whole (never redirect stdout into the .prom file, which the collector would read half-written).", "maildirmig check \\-q \\-\\-format prometheus \\-\\-output /var/lib/prometheus/node\\-exporter/maildirmig.prom"},
	{"Every user who failed in the audit log.", "jq \\-r 'select(.event == \"user\\-failed\") | [.time, .user, .err] | @tsv' /var/log/maildirmig/audit.jsonl"},
}

// manPage renders the manual in roff, section 8. Hyphenation is off (.nh, and the HY register
// that groff's man macros set it again from at each paragraph) and every hyphen is a \-, so
// paths and options are never broken or turned into dashes.
func manPage(app *cli.App) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w(".TH MAILDIRMIG 8 \"\" \"maildirmig\" \"System Administration\"\n.nr HY 0\n.nh\n.ad l\n")
	w(".SH NAME\nmaildirmig \\- %s\n", roff(app.Usage))
	w(".SH SYNOPSIS\n")
	for _, c := range docCommands(app) {
		w(".B maildirmig %s\n[\\fIoptions\\fR]", roff(c.name))
		if c.args != "" {
			w(" %s", roffArgs(c.args))
		}
		w("\n.br\n")
	}
	w(".SH DESCRIPTION\n")
	w("%s\n", roffText("maildirmig moves the mail of every user on a Postfix/Dovecot server from mbox files "+
		"(/var/spool/mail/USER, or ~USER/Mailbox) into ~USER/Maildir, gives new users a Maildir from /etc/skel, "+
		"and checks from cron that every Maildir stays healthy. It runs as root, and does each user's work in a "+
		"process running as that user, so no file in a home is ever created, followed or changed by root."))
	w(".PP\n%s\n", roffText("Messages keep their flags, keywords, received date, IMAP UID and UIDVALIDITY "+
		"(so IMAP clients and POP3 clients that leave mail on the server see the same mailbox), in mbox order. "+
		"Each spool is locked as Postfix and Dovecot lock it. Each pass makes the Maildir mirror the source as "+
		"it is then (new mail written, expunged mail removed, flags and UIDs followed), so a first pass can run "+
		"days before the switch and a short one on the night; once Dovecot uses the Maildir, a pass only adds. An "+
		"interrupted run is finished exactly by the next one."))
	w(".SH COMMANDS\n")
	for _, c := range docCommands(app) {
		w(".SS \"%s\"\n", roff("maildirmig "+c.name+" [options]"+strings.TrimRight(" "+c.args, " ")))
		w("%s.\n", roffText(strings.ToUpper(c.usage[:1])+c.usage[1:]))
		if c.description != "" {
			w(".PP\n%s\n", roffText(strings.ReplaceAll(c.description, "\n", " ")))
		}
		if c.args != "" {
			w(".PP\nArguments: %s\n", roffArgs(c.args))
		}
		for _, f := range c.flags {
			w(".TP\n%s\n%s\n", roffFlagHead(f), roffText(flagText(f)))
		}
	}
	w(".SH OPTIONS\nEvery command takes \\fB\\-\\-help\\fR. maildirmig itself takes:\n")
	for _, f := range docGlobalFlags() {
		w(".TP\n%s\n%s\n", roffFlagHead(f), roffText(flagText(f)))
	}
	w(".SH \"EXIT STATUS\"\nThe migration commands (mbox, Mailbox, convert, verify, skel, users) and record:\n")
	for _, s := range exitCodes {
		w(".TP\n.B %d\n%s\n", s.code, roffText(s.meaning))
	}
	w(".PP\ncheck and preflight follow the Nagios plugin convention, so that monitoring can run them:\n")
	for _, s := range checkExitCodes {
		w(".TP\n.B %d\n%s\n", s.code, roffText(s.meaning))
	}
	w(".PP\ncompare exits as diff does:\n")
	for _, s := range compareExitCodes {
		w(".TP\n.B %d\n%s\n", s.code, roffText(s.meaning))
	}
	w(".PP\n%s\n", roffText("When some users differ and others could not be compared, compare exits 1."))
	w(".SH FILES\n")
	for _, f := range manFiles {
		w(".TP\n.I %s\n%s\n", roff(f[0]), roffText(f[1]))
	}
	w(".SH \"AUDIT LOG\"\n%s\n", roffText("The audit log is JSON Lines: one object per line and event, appended and "+
		"never rewritten, opened for each run and closed at its end (so logrotate needs no copytruncate). Every "+
		"object has time (RFC 3339), run (the run's id), event, and the fields the event needs: user, uid, src, dst, "+
		"messages, bytes, skipped, sha256, err. A run that cannot write to the log stops."))
	w(".PP\nEvents:\n")
	for _, e := range audit.Events {
		w(".TP\n.B %s\n%s\n", roff(e.Name), roffText(e.Meaning+". Fields: "+strings.Join(auditFields(e), ", ")+"."))
	}
	w("%s", manAuditExamples(maildirmig.README))
	w(".SH EXAMPLES\n")
	for _, e := range manExamples {
		w("%s\n.PP\n.RS\n.EX\n%s\n.EE\n.RE\n.PP\n", roffText(e[0]), e[1])
	}
	w("%s", manReadme(maildirmig.README))
	w(".SH \"SEE ALSO\"\n.BR postconf (5),\n.BR postconf (1),\n.BR local (8),\n.BR doveconf (1),\n.BR doveadm (1),\n" +
		".BR mbox (5),\n.BR procmail (1),\n.BR useradd (8),\n.BR cron (8),\n.BR systemd.timer (5),\n.BR logrotate (8),\n.BR jq (1)\n")
	return b.String()
}

// flagText is the paragraph under an option: its usage, then its values and default.
func flagText(f docFlag) string {
	s := f.usage
	if f.def != "" && !strings.Contains(s, "default") {
		s += " (default: " + f.def + ")"
	}
	return s
}

func roffFlagHead(f docFlag) string {
	var parts []string
	for _, n := range f.names {
		parts = append(parts, "\\fB"+roff(flagSpelling(n))+"\\fR")
	}
	s := strings.Join(parts, ", ")
	if f.placeholder != "" {
		s += " \\fI" + roff(f.placeholder) + "\\fR"
	}
	return s
}

func roffArgs(args string) string { return "\\fI" + roff(args) + "\\fR" }

// roff escapes s for use inside a roff line: backslashes and hyphens.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, "-", `\-`)
}

// roffText escapes a paragraph: as roff, and a line may not start with a control character.
func roffText(s string) string {
	s = roff(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
