package preflight

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/check"
	"github.com/maildirmig/maildirmig/host"
	"github.com/maildirmig/maildirmig/internal/selinux"
	"github.com/maildirmig/maildirmig/migrate"
)

func TestUnstableUIDL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ format, bad string }{
		{"%08Xu%08Xv", ""},
		{"%v.%u", ""},
		{"%08Xv%08Xu", ""},
		{"%u", ""},
		{"%{uidvalidity}-%{uid}", ""},
		{"%m", "%m"},
		{"%f", "%f"},
		{"%Mf", "%Mf"},
		{"%g", "%g"},
		{"%v-%08Xm", "%08Xm"},
		{"%{uid | hex(8)}%{uidvalidity | hex(8)}", ""},
		{"%{guid}", "%{guid}"},
	} {
		if got := unstableUIDL(tc.format); got != tc.bad {
			t.Errorf("unstableUIDL(%q) = %q, want %q", tc.format, got, tc.bad)
		}
	}
}

func TestParseLocation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in                           string
		driver, root, inbox, folders string
	}{
		{"mbox:~/mail:INBOX=/var/mail/%u", "mbox", "~/mail", "/var/mail/%u", "mail"},
		{"mbox:%h/Mail:INBOX=%h/Mailbox", "mbox", "%h/Mail", "%h/Mailbox", "Mail"},
		{"mbox:/srv/mail/%u:INBOX=/var/mail/%u", "mbox", "/srv/mail/%u", "/var/mail/%u", ""},
		{"maildir:~/Maildir", "maildir", "~/Maildir", "", "Maildir"},
		{"", "", "", "", ""},
	} {
		l := parseLocation(tc.in)
		if l.driver != tc.driver || l.root != tc.root || l.inbox != tc.inbox || l.folders != tc.folders {
			t.Errorf("parseLocation(%q) = %+v", tc.in, l)
		}
	}
}

func TestInboxNamespace(t *testing.T) {
	t.Parallel()
	conf := "namespace shared {\n  inbox = no\n  separator = .\n}\nnamespace mine {\n  inbox = yes\n  mailbox Sent {\n    special_use = \\Sent\n  }\n  separator = /\n}\n"
	ns := inboxNamespace(conf)
	if !ns.found || ns.name != "mine" || ns.separator != "/" {
		t.Errorf("inboxNamespace = %+v, want mine with separator /", ns)
	}
	if ns := inboxNamespace(""); ns.found {
		t.Errorf("inboxNamespace of nothing = %+v", ns)
	}
}

// fakeTools answers as postconf and doveconf of a server configured for mbox would, with
// Dovecot 2.4's settings (doveconf knows no mail_location there).
func fakeTools(t *testing.T) Command {
	return func(_ context.Context, name string, args ...string) ([]byte, error) {
		line := name + " " + strings.Join(args, " ")
		switch {
		case strings.HasPrefix(line, "postconf -h home_mailbox"):
			return []byte("\n\n\n/var/mail\nfcntl, dotlock\n"), nil
		case line == "postfix status":
			return nil, errors.New("exit status 1")
		case strings.HasPrefix(line, "doveconf -h mail_location"):
			return nil, errors.New("exit status 89: doveconf: Fatal: Unknown setting: mail_location")
		case strings.HasPrefix(line, "doveconf -h mail_driver"):
			return []byte("mbox\n~/Mail\n/var/mail/%{user}\n%{uid | hex(8)}%{uidvalidity | hex(8)}\n/run/dovecot\n"), nil
		case line == "doveconf namespace":
			return []byte("namespace inbox {\n  inbox = yes\n  separator = /\n}\n"), nil
		}
		t.Errorf("unexpected command %q", line)
		return nil, errors.New("unexpected")
	}
}

func TestRunDovecot24(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, []byte("alice:x:42351:42351::"+dir+":/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), Config{
		Migrate: migrate.Config{Host: host.Host{Passwd: passwd, SpoolDir: dir, StateDir: filepath.Join(dir, "state")}, MinUID: -1},
		Command: fakeTools(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	var fix []string
	for _, f := range r.Findings {
		if f.Topic == "dovecot" && f.Setting == "mail_driver" && f.Severity == check.Warning {
			fix = f.Fix
		}
		if f.Topic == "pop3" && f.Severity != check.OK {
			t.Errorf("2.4's default UIDL format flagged: %+v", f)
		}
		if f.Topic == "dovecot" && strings.Contains(f.Setting, "separator") {
			t.Errorf("separator / is set, yet: %+v", f)
		}
	}
	if strings.Join(fix, "\n") != "mail_driver = maildir\nmail_path = ~/Maildir\n# and remove mail_inbox_path: a Maildir's INBOX is mail_path itself" {
		t.Errorf("2.4 switch lines: %q", fix)
	}
	if r.Commands[1] != "maildirmig mbox --folders Mail --spool-dir /var/mail --audit-messages" {
		t.Errorf("commands %q", r.Commands)
	}
}

// TestRunCannotCheck: when doveconf fails for both generations of settings, Run says why.
func TestRunCannotCheck(t *testing.T) {
	t.Parallel()
	tools := func(_ context.Context, name string, args ...string) ([]byte, error) {
		if name == "postconf" {
			return []byte("\n\n\n/var/mail\n\n"), nil
		}
		return nil, errors.New("exit status 89: doveconf: Fatal: open(/etc/dovecot/dovecot.conf) failed")
	}
	_, err := Run(context.Background(), Config{Command: tools})
	if err == nil || !strings.Contains(err.Error(), "preflight: doveconf: ") || !strings.Contains(err.Error(), "dovecot.conf") {
		t.Errorf("err = %v", err)
	}
}

// TestRunMailboxHint: a server that delivers to ~/Mailbox is told that the night's command is
// maildirmig Mailbox, unless preflight was asked about that already.
func TestRunMailboxHint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, []byte("alice:x:42352:42352::"+dir+":/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tools := func(_ context.Context, name string, args ...string) ([]byte, error) {
		line := name + " " + strings.Join(args, " ")
		switch {
		case strings.HasPrefix(line, "postconf -h"):
			return []byte("Mailbox\n\n\n" + dir + "\n\n"), nil
		case strings.HasPrefix(line, "doveconf -h mail_location"):
			return []byte("mbox:~/mail:INBOX=~/Mailbox\n%08Xu%08Xv\n\n"), nil
		case line == "doveconf namespace":
			return nil, nil
		}
		return nil, errors.New("exit status 1")
	}
	for _, source := range []migrate.Source{migrate.SourceSpool, migrate.SourceMailbox} {
		r, err := Run(context.Background(), Config{
			Migrate: migrate.Config{Host: host.Host{Passwd: passwd, SpoolDir: dir, StateDir: filepath.Join(dir, "state")}, Source: source, MinUID: -1},
			Command: tools,
		})
		if err != nil {
			t.Fatal(err)
		}
		hinted := false
		for _, f := range r.Findings {
			hinted = hinted || strings.Contains(f.Message, "the night's command is maildirmig Mailbox")
		}
		if hinted != (source == migrate.SourceSpool) {
			t.Errorf("source %v: hint given %v", source, hinted)
		}
		if source == migrate.SourceMailbox && r.Commands[1] != "maildirmig Mailbox --audit-messages" {
			t.Errorf("commands %q", r.Commands)
		}
	}
}

// TestRunSELinux: preflight reports SELinux's mode, and whether restorecon is there to give
// the Maildirs the policy's labels: critical when SELinux enforces and it is not.
func TestRunSELinux(t *testing.T) {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, []byte("alice:x:42353:42353::"+dir+":/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "restorecon"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	selinuxHost := func(enforce, config string) *selinux.Host {
		d := t.TempDir()
		h := &selinux.Host{FS: filepath.Join(d, "selinuxfs"), Config: filepath.Join(d, "config")}
		if enforce != "" {
			if err := os.MkdirAll(h.FS, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(h.FS, "enforce"), []byte(enforce), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(h.Config, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		name, enforce, config, path string
		severity                    check.Severity
		mode                        selinux.Mode
		message, fix                string
	}{
		{"enforcing, restorecon installed", "1", "SELINUX=enforcing\n", bin, check.OK, selinux.Enforcing, "relabelled as the policy says", ""},
		{"enforcing, no restorecon", "1", "SELINUX=enforcing\n", dir, check.Critical, selinux.Enforcing, "Dovecot would be denied", "dnf install policycoreutils"},
		{"permissive, no restorecon", "0", "SELINUX=permissive\n", dir, check.Warning, selinux.Permissive, "restorecon is not installed", "dnf install policycoreutils"},
		{"disabled until the next boot", "", "SELINUX=enforcing\n", dir, check.OK, selinux.Disabled, "enforcing from the next boot", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			if p := selinux.Restorecon(); tc.path == dir && p != "" {
				t.Skipf("this machine has %s: the test cannot take it away", p)
			}
			r, err := Run(context.Background(), Config{
				Migrate: migrate.Config{Host: host.Host{Passwd: passwd, SpoolDir: dir, StateDir: filepath.Join(dir, "state")}, MinUID: -1},
				Command: fakeTools(t),
				SELinux: selinuxHost(tc.enforce, tc.config),
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.SELinux.Mode != tc.mode {
				t.Errorf("mode %q, want %q", r.SELinux.Mode, tc.mode)
			}
			found := false
			for _, f := range r.Findings {
				if f.Topic == "selinux" {
					found = f.Severity == tc.severity && f.Value == string(tc.mode) && strings.Contains(f.Message, tc.message) && strings.Join(f.Fix, "\n") == tc.fix
					if !found {
						t.Errorf("%+v; want %v, %q, fix %q", f, tc.severity, tc.message, tc.fix)
					}
				}
			}
			if !found {
				t.Errorf("no selinux finding in %+v", r.Findings)
			}
		})
	}
}
