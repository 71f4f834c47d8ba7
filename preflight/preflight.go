// Package preflight reads the live Postfix and Dovecot configuration and the users' homes and
// spools, before the night of the switch, and reports what must still change and what
// maildirmig will do. It changes nothing.
//
// The settings come from the real tools, postconf -h and doveconf -h, run through
// Config.Command, so that what is reported is what the daemons use (defaults, includes and
// overrides resolved), and tests drive private instances through -c.
package preflight

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/maildirmig/maildirmig/check"
	"github.com/maildirmig/maildirmig/dovecotview"
	"github.com/maildirmig/maildirmig/internal/selinux"
	"github.com/maildirmig/maildirmig/migrate"
)

// Command runs name with args and returns its standard output. An error must say what failed,
// with the tool's standard error when it printed one.
type Command func(ctx context.Context, name string, args ...string) ([]byte, error)

// Config is what preflight looks at.
type Config struct {
	// Migrate selects the users, the spool, the state and the folders exactly as the
	// migration will: its Plan is reused for sources, sizes and free space.
	Migrate migrate.Config
	// PostfixDir is the Postfix configuration directory (postconf -c); "" = Postfix's own.
	PostfixDir string
	// DovecotConf is the Dovecot configuration file (doveconf -c); "" = Dovecot's own.
	DovecotConf string
	// Command runs postconf, postfix and doveconf; nil runs them with os/exec.
	Command Command
	// Given are the options preflight was given that say which users and places the night is
	// about (a name without its dashes, and its value; "" for a switch).
	// The night's commands carry each to the commands that take it (Takes), with the user
	// names of Migrate.Users, so that they act on what preflight looked at. Takes nil: only
	// the migration and verify take options.
	Given []Option
	Takes func(command, option string) bool
	// SELinux is where SELinux's mode is read; nil: this host's (selinux.System).
	SELinux *selinux.Host
}

// Option is one command-line option: its name without dashes, and its value ("" for a switch).
type Option struct{ Name, Value string }

// Severity of a finding: check's, so that exit codes follow the same Nagios convention.
type Severity = check.Severity

// Finding is one thing preflight found: a setting to switch, a risk, or a fact the night's
// commands depend on.
type Finding struct {
	Severity Severity `json:"severity"`
	Topic    string   `json:"topic"`             // postfix, dovecot, pop3, daemons, spool, folders, space, home, users
	Setting  string   `json:"setting,omitempty"` // the setting concerned, as postconf or doveconf names it
	Value    string   `json:"value,omitempty"`   // its current value
	User     string   `json:"user,omitempty"`
	Message  string   `json:"message"`
	Fix      []string `json:"fix,omitempty"` // exact lines to run or to write
}

// Report is the outcome of Run.
type Report struct {
	Postfix  map[string]string `json:"postfix"`
	Dovecot  map[string]string `json:"dovecot"`
	Findings []Finding         `json:"findings"`
	// Commands are the maildirmig command lines the night needs, given what was found.
	Commands []string `json:"commands"`
	// SELinux is SELinux's state on this host.
	SELinux selinux.Status `json:"selinux"`
	// Users, Migrate, Bytes: from the migration plan.
	Users   int   `json:"users"`
	Migrate int   `json:"migrate"`
	Bytes   int64 `json:"bytes"`
}

// Status is the worst severity found: what preflight exits with.
func (r *Report) Status() Severity {
	s := check.OK
	for _, f := range r.Findings {
		s = check.Worse(s, f.Severity)
	}
	return s
}

// PostfixSettings and DovecotSettings are the settings preflight reads.
var (
	PostfixSettings = []string{"home_mailbox", "mailbox_command", "mailbox_transport", "mail_spool_directory", "mailbox_delivery_lock"}
	DovecotSettings = []string{"mail_location", "pop3_uidl_format", "base_dir"}
	// Dovecot24Settings are read where doveconf knows no mail_location: Dovecot 2.4 split it.
	Dovecot24Settings = []string{"mail_driver", "mail_path", "mail_inbox_path", "pop3_uidl_format", "base_dir"}
)

// Run reads the configuration and the plan and returns the report. Its error is for what
// stops the whole preflight (postconf or doveconf cannot be run, the user list cannot be
// read): the caller reports it as "could not check".
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Command == nil {
		cfg.Command = execCommand
	}
	r := &Report{Postfix: map[string]string{}, Dovecot: map[string]string{}}
	pc := confArgs(cfg.PostfixDir)
	out, err := cfg.Command(ctx, "postconf", append(append(pc, "-h"), PostfixSettings...)...)
	if err != nil {
		return nil, fmt.Errorf("preflight: postconf: %w", err)
	}
	if err := assign(r.Postfix, PostfixSettings, out); err != nil {
		return nil, fmt.Errorf("preflight: postconf: %w", err)
	}
	dc := confArgs(cfg.DovecotConf)
	out, err = cfg.Command(ctx, "doveconf", append(append(dc, "-h"), DovecotSettings...)...)
	settings := DovecotSettings
	if err != nil {
		out24, err24 := cfg.Command(ctx, "doveconf", append(append(dc, "-h"), Dovecot24Settings...)...)
		if err24 != nil {
			return nil, fmt.Errorf("preflight: doveconf: %w", err)
		}
		out, settings = out24, Dovecot24Settings
	}
	if err := assign(r.Dovecot, settings, out); err != nil {
		return nil, fmt.Errorf("preflight: doveconf: %w", err)
	}
	out, err = cfg.Command(ctx, "doveconf", append(dc, "namespace")...)
	if err != nil {
		return nil, fmt.Errorf("preflight: doveconf: %w", err)
	}
	ns := inboxNamespace(string(out))
	if ns.found {
		r.Dovecot["namespace/"+ns.name+"/separator"] = ns.separator
	}

	m := cfg.Migrate
	if m.Maildir == "" {
		m.Maildir = "Maildir"
	}
	if m.Folders == "" {
		m.Folders = migrate.DefaultFolderRoot
	}
	r.postfix(cfg, m)
	loc := r.dovecot(cfg, m, ns)
	r.daemons(ctx, cfg)
	r.selinux(cfg)
	if err := r.plan(ctx, cfg, m, loc); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Report) add(f Finding) { r.Findings = append(r.Findings, f) }

// postconfEdit is the postconf -e line that sets name to value.
func postconfEdit(dir, name, value string) string {
	c := "postconf"
	if dir != "" {
		c += " -c " + shellQuote(dir)
	}
	return c + " -e " + shellQuote(name+" = "+value)
}

func (r *Report) postfix(cfg Config, m migrate.Config) {
	want := m.Maildir + "/"
	home := r.Postfix["home_mailbox"]
	switch {
	case home == want:
		r.add(Finding{Severity: check.OK, Topic: "postfix", Setting: "home_mailbox", Value: home,
			Message: "Postfix delivers to ~/" + want})
	case strings.TrimSuffix(home, "/") == m.Maildir:
		r.add(Finding{Severity: check.Critical, Topic: "postfix", Setting: "home_mailbox", Value: home,
			Message: "home_mailbox lacks the final slash: Postfix would append to a file ~/" + home + " in mbox format",
			Fix:     []string{postconfEdit(cfg.PostfixDir, "home_mailbox", want)}})
	case home == "":
		r.add(Finding{Severity: check.Warning, Topic: "postfix", Setting: "home_mailbox",
			Message: "Postfix delivers to the spool (" + r.Postfix["mail_spool_directory"] + "/USER): switch it to ~/" + want + " on the night",
			Fix:     []string{postconfEdit(cfg.PostfixDir, "home_mailbox", want)}})
	default:
		r.add(Finding{Severity: check.Warning, Topic: "postfix", Setting: "home_mailbox", Value: home,
			Message: "Postfix delivers to ~/" + home + ": switch it to ~/" + want + " on the night",
			Fix:     []string{postconfEdit(cfg.PostfixDir, "home_mailbox", want)}})
	}

	// local(8) uses mailbox_transport, then mailbox_command, before home_mailbox: either one
	// set decides where mail goes whatever home_mailbox says.
	if t := r.Postfix["mailbox_transport"]; t != "" {
		if strings.HasPrefix(t, "lmtp:") && strings.Contains(t, "dovecot") || t == "dovecot" {
			r.add(Finding{Severity: check.OK, Topic: "postfix", Setting: "mailbox_transport", Value: t,
				Message: "Postfix hands mail to Dovecot, which delivers where mail_location says"})
		} else {
			r.add(Finding{Severity: check.Warning, Topic: "postfix", Setting: "mailbox_transport", Value: t,
				Message: "mail goes to transport " + t + " instead of home_mailbox: make sure it delivers to ~/" + want})
		}
	}
	cmd := r.Postfix["mailbox_command"]
	base := ""
	if f := strings.Fields(cmd); len(f) > 0 {
		base = filepath.Base(f[0])
	}
	switch {
	case cmd == "":
	case base == "dovecot-lda" || base == "deliver":
		r.add(Finding{Severity: check.OK, Topic: "postfix", Setting: "mailbox_command", Value: cmd,
			Message: "Dovecot's LDA delivers, where mail_location says: switching Dovecot switches delivery"})
	case base == "procmail":
		r.add(Finding{Severity: check.Critical, Topic: "postfix", Setting: "mailbox_command", Value: cmd,
			Message: "procmail delivers instead of home_mailbox, to $DEFAULT (the spool unless a procmailrc says otherwise), and would keep delivering to mbox after the switch: remove it, or set DEFAULT=$HOME/" + want + " in /etc/procmailrc and check each ~/.procmailrc",
			Fix:     []string{postconfEdit(cfg.PostfixDir, "mailbox_command", "")}})
	default:
		r.add(Finding{Severity: check.Critical, Topic: "postfix", Setting: "mailbox_command", Value: cmd,
			Message: base + " delivers instead of home_mailbox: unless it writes to ~/" + want + ", mail keeps going to mbox after the switch",
			Fix:     []string{postconfEdit(cfg.PostfixDir, "mailbox_command", "")}})
	}

	if lock := r.Postfix["mailbox_delivery_lock"]; lock != "" {
		r.add(Finding{Severity: check.OK, Topic: "postfix", Setting: "mailbox_delivery_lock", Value: lock,
			Message: "maildirmig locks each spool the same way while it reads it (" + lock + ")"})
	}
	if m.Source == migrate.SourceSpool {
		spool := r.Postfix["mail_spool_directory"]
		if otherSpoolDir(m, spool) {
			r.add(Finding{Severity: check.Warning, Topic: "spool", Setting: "mail_spool_directory", Value: spool,
				Message: "Postfix delivers into " + spool + " but maildirmig would read " + m.Spool() + ": pass --spool-dir " + spool})
		}
	}
}

// selinux reports SELinux's mode and whether the Maildirs can get the policy's labels.
func (r *Report) selinux(cfg Config) {
	h := selinux.System
	if cfg.SELinux != nil {
		h = *cfg.SELinux
	}
	st, err := h.Detect()
	if err != nil {
		r.add(Finding{Severity: check.Unknown, Topic: "selinux", Message: "SELinux's mode cannot be told: " + strings.TrimPrefix(err.Error(), "selinux: ")})
		return
	}
	r.SELinux = st
	f := Finding{Severity: check.OK, Topic: "selinux", Setting: "mode", Value: string(st.Mode)}
	switch {
	case !st.Enabled() && (st.Boot == selinux.Enforcing || st.Boot == selinux.Permissive):
		f.Message = "SELinux is disabled, and /etc/selinux/config makes it " + string(st.Boot) + " from the next boot, which relabels every file"
	case !st.Enabled():
		f.Message = "SELinux is disabled: no labels to set"
	case selinux.Restorecon() != "":
		f.Message = "SELinux is " + string(st.Mode) + ": maildirmig has each user's Maildir relabelled as the policy says once it is migrated (restorecon -RF, as the user)"
	default:
		f.Severity = check.Warning
		if st.Mode == selinux.Enforcing {
			f.Severity = check.Critical
		}
		f.Message = "SELinux is " + string(st.Mode) + " and restorecon is not installed: the Maildirs would keep the label of their homes, and Dovecot would be denied them; install policycoreutils"
		f.Fix = []string{"dnf install policycoreutils"}
	}
	r.add(f)
}

// location is what mail_location says.
type location struct {
	driver  string // mbox, maildir, ...; "" when mail_location is empty
	root    string // the folder root: "~/mail"
	inbox   string // INBOX=
	folders string // the folder root relative to the home, "" when it is not beneath it
}

func parseLocation(s string) location {
	var l location
	if s == "" {
		return l
	}
	drv, rest, ok := strings.Cut(s, ":")
	if !ok {
		return location{driver: s}
	}
	l.driver = drv
	parts := strings.Split(rest, ":")
	l.root = parts[0]
	for _, p := range parts[1:] {
		if v, ok := strings.CutPrefix(p, "INBOX="); ok {
			l.inbox = v
		}
	}
	l.folders = inHome(l.root)
	return l
}

// inHome returns path relative to the home when it is written beneath it (~/, %h/ or
// %{home}/), else "".
func inHome(path string) string {
	for _, pre := range []string{"~/", "%h/", "%{home}/"} {
		if v, ok := strings.CutPrefix(path, pre); ok {
			return filepath.Clean(v)
		}
	}
	return ""
}

// location24 is the location Dovecot 2.4's mail_driver, mail_path and mail_inbox_path say.
func location24(driver, path, inbox string) location {
	return location{driver: driver, root: path, inbox: inbox, folders: inHome(path)}
}

func (r *Report) dovecot(cfg Config, m migrate.Config, ns namespace) location {
	cur := r.Dovecot["mail_location"]
	loc := parseLocation(cur)
	fix := []string{"mail_location = maildir:~/" + m.Maildir}
	setting := "mail_location"
	if _, v24 := r.Dovecot["mail_driver"]; v24 {
		loc = location24(r.Dovecot["mail_driver"], r.Dovecot["mail_path"], r.Dovecot["mail_inbox_path"])
		cur = "mail_driver = " + loc.driver + ", mail_path = " + loc.root
		if loc.inbox != "" {
			cur += ", mail_inbox_path = " + loc.inbox
		}
		fix = []string{"mail_driver = maildir", "mail_path = ~/" + m.Maildir}
		if loc.inbox != "" {
			fix = append(fix, "# and remove mail_inbox_path: a Maildir's INBOX is mail_path itself")
		}
		setting = "mail_driver"
	}
	where := "in " + orDefault(cfg.DovecotConf, "/etc/dovecot/conf.d/10-mail.conf")
	switch {
	case loc.driver == "maildir" && (loc.root == "~/"+m.Maildir || loc.root == "%h/"+m.Maildir):
		r.add(Finding{Severity: check.OK, Topic: "dovecot", Setting: setting, Value: cur,
			Message: "Dovecot reads ~/" + m.Maildir})
	case loc.driver == "":
		r.add(Finding{Severity: check.Warning, Topic: "dovecot", Setting: setting,
			Message: setting + " is empty: Dovecot guesses the format at each login, and finds ~/" + m.Maildir + " only once it exists; set it explicitly " + where,
			Fix:     fix})
	default:
		r.add(Finding{Severity: check.Warning, Topic: "dovecot", Setting: setting, Value: cur,
			Message: "Dovecot reads " + cur + ": switch it " + where + " on the night",
			Fix:     fix})
	}
	if loc.driver == "mbox" || loc.driver == "" {
		switch {
		case loc.driver == "mbox" && loc.folders == "":
			r.add(Finding{Severity: check.Warning, Topic: "folders", Value: loc.root,
				Message: "Dovecot keeps mbox folders in " + loc.root + ", not beneath the home: maildirmig migrates folders beneath the home only"})
		case loc.driver == "mbox" && loc.folders != m.Folders:
			r.add(Finding{Severity: check.Warning, Topic: "folders", Value: loc.root,
				Message: "Dovecot keeps mbox folders in " + loc.root + " but maildirmig would look in ~/" + m.Folders + ": pass --folders " + loc.folders,
				Fix:     []string{"--folders " + loc.folders}})
		case loc.driver == "mbox":
			r.add(Finding{Severity: check.OK, Topic: "folders", Value: loc.root,
				Message: "maildirmig migrates the mbox folders in " + loc.root + " to Maildir++ folders"})
		}
		// Dovecot's default separator is the storage's: "/" for mbox, "." for Maildir++. Unset,
		// every client would see nested folders renamed.
		if loc.driver == "mbox" && ns.separator == "" {
			name := ns.name
			if !ns.found {
				name = "inbox"
			}
			r.add(Finding{Severity: check.Warning, Topic: "dovecot", Setting: "namespace/" + name + "/separator",
				Message: "no namespace separator is set: with mbox clients see \"/\", with Maildir++ they would see \".\" and lose track of nested folders; keep \"/\"",
				Fix:     []string{"namespace " + name + " {", "  separator = /", "}"}})
		}
	}

	uidl := r.Dovecot["pop3_uidl_format"]
	if bad := unstableUIDL(uidl); bad != "" {
		r.add(Finding{Severity: check.Critical, Topic: "pop3", Setting: "pop3_uidl_format", Value: uidl,
			Message: "POP3 UIDLs built with " + bad + " change when the mail moves to Maildir: every POP3 client that leaves mail on the server downloads it all again; maildirmig keeps UIDVALIDITY (%v) and UID (%u) only"})
	} else if uidl != "" {
		r.add(Finding{Severity: check.OK, Topic: "pop3", Setting: "pop3_uidl_format", Value: uidl,
			Message: "POP3 UIDLs survive: maildirmig keeps each message's UID and UIDVALIDITY in dovecot-uidlist"})
	}
	return loc
}

// uidlVar matches one % variable of Dovecot's template syntax: 2.3's %[modifiers][width]letter
// or %{name}, and 2.4's %{name | filter}.
var uidlVar = regexp.MustCompile(`%[-0-9.LUXRHNMDTE]*(\{[a-z_.]+[^}]*\}|[a-zA-Z%])`)

// unstableUIDL returns the variables of format that do not survive the move from mbox to
// Maildir, "" when all do: only the UID and UIDVALIDITY are carried over; %m is a hash of the
// mbox headers, %f the Maildir file name, %g a GUID each format makes up itself.
func unstableUIDL(format string) string {
	var bad []string
	for _, m := range uidlVar.FindAllStringSubmatch(format, -1) {
		name := m[1]
		if strings.HasPrefix(name, "{") {
			// Dovecot 2.4 writes %{uid | hex(8)}: the variable is the first word.
			name = "{" + strings.Fields(strings.Trim(name, "{}"))[0] + "}"
		}
		switch name {
		case "u", "v", "%", "{uid}", "{uidvalidity}":
		default:
			bad = append(bad, m[0])
		}
	}
	return strings.Join(bad, ", ")
}

func (r *Report) daemons(ctx context.Context, cfg Config) {
	// Before the switch, the runbook holds Postfix's local delivery and stops Dovecot for the
	// night; after it, running is what they should be doing.
	switching := false
	for _, f := range r.Findings {
		switch f.Setting {
		case "home_mailbox", "mail_location", "mail_driver":
			switching = switching || f.Severity != check.OK
		}
	}
	_, err := cfg.Command(ctx, "postfix", append(confArgs(cfg.PostfixDir), "status")...)
	f := running("postfix", err == nil)
	if err == nil && switching {
		f.Message += ": hold its local delivery for the night, so that mail waits in the queue"
		f.Fix = []string{postconfEdit(cfg.PostfixDir, "defer_transports", "local") + "; postfix reload"}
	}
	r.add(f)
	up := dovecotview.MasterRunning(r.Dovecot["base_dir"])
	f = running("dovecot", up)
	if up && switching {
		f.Message += ": stop it for the night, so that no client changes a mailbox while it moves"
		f.Fix = []string{"systemctl stop dovecot"}
	}
	r.add(f)
}

func running(name string, yes bool) Finding {
	f := Finding{Severity: check.OK, Topic: "daemons", Setting: name, Value: "stopped", Message: name + " is not running"}
	if yes {
		f.Value = "running"
		f.Message = name + " is running"
	}
	return f
}

func (r *Report) plan(ctx context.Context, cfg Config, m migrate.Config, loc location) error {
	plan, err := migrate.Plan(ctx, m)
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	r.Users = len(plan)
	need := map[string]int64{}
	free := map[string]int64{}
	where := map[string]string{}
	var filesystems []string
	for _, e := range plan {
		herr := migrate.CheckHome(e.Home, e.UID)
		hasMail := e.Size > 0 || e.FolderBytes > 0
		switch {
		case herr != nil && hasMail:
			r.add(Finding{Severity: check.Critical, Topic: "home", User: e.User,
				Message: "user " + e.User + " has mail but maildirmig would refuse the home: " + trimPrefix(herr)})
		case herr != nil:
			r.add(Finding{Severity: check.Warning, Topic: "home", User: e.User,
				Message: "user " + e.User + ": " + trimPrefix(herr) + " (no mail to migrate; Dovecot cannot create a Maildir there either)"})
		}
		switch e.Action {
		case migrate.ActionRefuse:
			r.add(Finding{Severity: check.Critical, Topic: "users", User: e.User,
				Message: "user " + e.User + " would be refused: " + trimPrefixString(e.Reason)})
		case migrate.ActionMigrate:
			r.Migrate++
			r.Bytes += e.Todo()
		}
		if hasMail && e.Free >= 0 {
			if _, ok := need[e.FS]; !ok {
				filesystems = append(filesystems, e.FS)
				where[e.FS] = e.Home
			}
			need[e.FS] += e.Todo()
			free[e.FS] = e.Free
		}
	}
	for _, fs := range filesystems {
		f := Finding{Severity: check.OK, Topic: "space", Value: where[fs],
			Message: fmt.Sprintf("filesystem of %s: %d bytes to migrate, %d free", where[fs], need[fs], free[fs])}
		if need[fs] > free[fs] {
			f.Severity = check.Critical
			f.Message += ": not enough"
		} else if need[fs] > free[fs]/10*9 {
			f.Severity = check.Warning
			f.Message += ": less than a tenth would be left"
		}
		r.add(f)
	}
	if m.Source == migrate.SourceSpool && (r.Postfix["home_mailbox"] == "Mailbox" || strings.HasSuffix(loc.inbox, "/Mailbox")) {
		r.add(Finding{Severity: check.Warning, Topic: "users", Value: "~/Mailbox",
			Message: "mail is delivered to ~/Mailbox, not to the spool: the night's command is maildirmig Mailbox (check it with preflight --mailbox)"})
	}
	opts := append([]Option(nil), cfg.Given...)
	if loc.driver == "mbox" && loc.folders != "" && loc.folders != migrate.DefaultFolderRoot {
		opts = setOption(opts, "folders", loc.folders)
	}
	if m.Source == migrate.SourceSpool {
		if s := r.Postfix["mail_spool_directory"]; otherSpoolDir(m, s) {
			opts = setOption(opts, "spool-dir", s)
		}
	}
	run := "mbox"
	if m.Source == migrate.SourceMailbox {
		run = "Mailbox"
	}
	line := func(command string, extra ...Option) string {
		parts := []string{"maildirmig", command}
		for _, o := range append(opts, extra...) {
			if !slices.Contains(extra, o) && !takes(cfg, command, run, o.Name) {
				continue
			}
			parts = append(parts, "--"+o.Name)
			if o.Value != "" {
				parts = append(parts, shellQuote(o.Value))
			}
		}
		for _, u := range m.Users {
			parts = append(parts, shellQuote(u))
		}
		return strings.Join(parts, " ")
	}
	if r.switched() {
		// After the switch the night is over; mail a spool still holds has no reader left.
		if r.Migrate > 0 {
			r.add(Finding{Severity: check.Warning, Topic: "users", Value: strconv.Itoa(r.Migrate),
				Message: fmt.Sprintf("the switch is done, but %d users have mail (%d bytes) that no run migrated, which no client sees: migrate it now", r.Migrate, r.Bytes),
				Fix:     []string{line(run)}})
		}
		r.Commands = []string{}
		return nil
	}
	r.Commands = []string{line(run, Option{Name: "dry-run"}), line(run, Option{Name: "audit-messages"}), line("verify"),
		line("skel", Option{Name: "existing"}), line("check")}
	return nil
}

// switched reports whether Postfix and Dovecot both use the Maildir already.
func (r *Report) switched() bool {
	n := 0
	for _, f := range r.Findings {
		switch f.Setting {
		case "home_mailbox", "mail_location", "mail_driver":
			if f.Severity != check.OK {
				return false
			}
			n++
		}
	}
	return n == 2
}

// takes reports whether the night's command takes the option: as cfg.Takes says, or without
// it, the options go to the migration (run) and verify only.
func takes(cfg Config, command, run, option string) bool {
	if cfg.Takes != nil {
		return cfg.Takes(command, option)
	}
	return command == run || command == "verify"
}

// setOption sets the option name in opts to value, in its place when it was given.
func setOption(opts []Option, name, value string) []Option {
	for i := range opts {
		if opts[i].Name == name {
			opts[i].Value = value
			return opts
		}
	}
	return append(opts, Option{Name: name, Value: value})
}

// inboxNamespace finds the namespace with inbox = yes in doveconf's output.
type namespace struct {
	found           bool
	name, separator string
}

func inboxNamespace(conf string) namespace {
	var cur namespace
	depth := 0
	for _, line := range strings.Split(conf, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasSuffix(line, "{"):
			depth++
			if f := strings.Fields(line); depth == 1 && len(f) == 3 && f[0] == "namespace" {
				cur = namespace{name: f[1]}
			}
		case line == "}":
			depth--
			if depth == 0 && cur.found {
				return cur
			}
		case depth == 1:
			k, v, _ := strings.Cut(line, "=")
			switch strings.TrimSpace(k) {
			case "inbox":
				cur.found = strings.TrimSpace(v) == "yes"
			case "separator":
				cur.separator = strings.TrimSpace(v)
			}
		}
	}
	return namespace{}
}

// assign stores the lines of out, one per name, as postconf -h and doveconf -h print them.
func assign(m map[string]string, names []string, out []byte) error {
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(names) {
		return fmt.Errorf("%d lines for %d settings: %q", len(lines), len(names), out)
	}
	for i, n := range names {
		m[n] = strings.TrimSpace(lines[i])
	}
	return nil
}

// confArgs is the -c option of postconf and doveconf, or none for their own configuration.
func confArgs(path string) []string {
	if path == "" {
		return nil
	}
	return []string{"-c", path}
}

func execCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if s := strings.TrimSpace(stderr.String()); s != "" {
			return out, fmt.Errorf("%w: %s", err, s)
		}
		return out, err
	}
	return out, nil
}

// otherSpoolDir reports whether Postfix's mail_spool_directory, spool, is not the directory
// the migration of m would read.
func otherSpoolDir(m migrate.Config, spool string) bool {
	if spool == "" {
		return false
	}
	theirs, ours := m.Under(spool), m.Spool()
	return filepath.Clean(theirs) != filepath.Clean(ours) && !sameFile(theirs, ours)
}

// sameFile reports whether a and b are one directory (/var/mail is a symlink to
// /var/spool/mail on Debian).
func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func trimPrefix(err error) string { return trimPrefixString(err.Error()) }

func trimPrefixString(s string) string {
	for _, p := range []string{"migrate: unsafe home: ", "migrate: home: ", "migrate: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}
