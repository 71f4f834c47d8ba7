package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// preflightJSON is what preflight --format json prints.
type preflightJSON struct {
	Status   string            `json:"status"`
	Error    string            `json:"error"`
	Postfix  map[string]string `json:"postfix"`
	Dovecot  map[string]string `json:"dovecot"`
	Commands []string          `json:"commands"`
	Migrate  int               `json:"migrate"`
	Findings []struct {
		Severity string   `json:"severity"`
		Topic    string   `json:"topic"`
		Setting  string   `json:"setting"`
		Value    string   `json:"value"`
		User     string   `json:"user"`
		Message  string   `json:"message"`
		Fix      []string `json:"fix"`
	} `json:"findings"`
}

// preflightTree writes a passwd file and homes for the users of a preflight test: alice with
// two messages in spool, bob with mail but no home, carol with a group-writable home and no
// mail. It returns the passwd file.
func preflightTree(t *testing.T, dir, spool string) string {
	t.Helper()
	home := func(name string) string { return filepath.Join(dir, "home", name) }
	passwd := "alice:x:42321:42321::" + home("alice") + ":/bin/sh\n" +
		"bob:x:42322:42322::" + home("bob") + ":/bin/sh\n" +
		"carol:x:42323:42323::" + home("carol") + ":/bin/sh\n"
	file := filepath.Join(dir, "passwd")
	if err := os.WriteFile(file, []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		name string
		uid  int
		mode os.FileMode
	}{{"alice", 42321, 0o755}, {"carol", 42323, 0o775}} {
		if err := os.MkdirAll(home(u.name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(home(u.name), u.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(home(u.name), u.uid, u.uid); err != nil {
			t.Fatal(err)
		}
	}
	mbox := "From a@example.org Mon Jan  1 10:00:00 2024\nSubject: one\n\nbody\n\n" +
		"From a@example.org Mon Jan  1 11:00:00 2024\nSubject: two\n\nbody\n"
	for name, uid := range map[string]int{"alice": 42321, "bob": 42322} {
		p := filepath.Join(spool, name)
		if err := os.WriteFile(p, []byte(mbox), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	return file
}

func runPreflightJSON(t *testing.T, args ...string) (preflightJSON, int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"maildirmig", "preflight", "--format", "json"}, args...), strings.NewReader(""), &stdout, &stderr)
	var r preflightJSON
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("preflight --format json printed no JSON object (%v):\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return r, code, stderr.String()
}

func postconfSet(t *testing.T, conf string, settings ...string) {
	t.Helper()
	out, err := exec.Command("postconf", append([]string{"-c", conf, "-e"}, settings...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("postconf -e: %v: %s", err, out)
	}
}

// TestPreflightMboxServer runs preflight against a real, running Postfix that delivers to the
// spool through procmail and a real Dovecot that serves mbox with folders in ~/Mail, POP3
// UIDLs from the mbox headers and no namespace separator: it names every setting to change
// with the exact line, the risks, the users it cannot migrate, and exits 2 (critical).
func TestPreflightMboxServer(t *testing.T) {
	p := mailtest.StartPostfix(t)
	postconfSet(t, p.Conf, "mailbox_command = /usr/bin/procmail -a \"$EXTENSION\"")
	d := mailtest.NewDovecot(t, mailtest.DovecotConfig{
		MailLocation: "mbox:~/Mail:INBOX=/var/mail/%u",
		Extra:        "pop3_uidl_format = %08Xv%m\n",
	})
	dir := mailtest.Dir(t)
	passwd := preflightTree(t, dir, p.SpoolDir)
	args := []string{"--passwd", passwd, "--state-dir", filepath.Join(dir, "state"), "--postfix-config", p.Conf, "--dovecot-config", d.Conf}
	r, code, stderr := runPreflightJSON(t, append(args, "--spool-dir", p.SpoolDir)...)
	if code != 2 || r.Status != "critical" {
		t.Errorf("exit %d, status %q; want 2, critical\nstderr: %s", code, r.Status, stderr)
	}
	if r.Postfix["mail_spool_directory"] != p.SpoolDir || r.Dovecot["mail_location"] != "mbox:~/Mail:INBOX=/var/mail/%u" {
		t.Errorf("settings read: postfix %v, dovecot %v", r.Postfix, r.Dovecot)
	}
	// Every setting to change, with its line, and every risk.
	want := []struct{ severity, topic, setting, fix, message string }{
		{"warning", "postfix", "home_mailbox", fmt.Sprintf("postconf -c %s -e 'home_mailbox = Maildir/'", p.Conf), "delivers to the spool"},
		{"critical", "postfix", "mailbox_command", fmt.Sprintf("postconf -c %s -e 'mailbox_command = '", p.Conf), "procmail"},
		{"warning", "dovecot", "mail_location", "mail_location = maildir:~/Maildir", "switch it in " + d.Conf},
		{"warning", "dovecot", "namespace/inbox/separator", "  separator = /", "no namespace separator"},
		{"warning", "folders", "", "--folders Mail", "~/Mail"},
		{"critical", "pop3", "pop3_uidl_format", "", "%m"},
		{"ok", "daemons", "postfix", fmt.Sprintf("postconf -c %s -e 'defer_transports = local'; postfix reload", p.Conf), "postfix is running: hold its local delivery"},
		{"ok", "daemons", "dovecot", "", "dovecot is not running"},
		{"critical", "home", "", "", "user bob has mail but maildirmig would refuse the home"},
		{"warning", "home", "", "", "user carol: home " + filepath.Join(dir, "home", "carol") + " is group or world writable"},
		{"ok", "space", "", "", "bytes to migrate"},
	}
	for _, w := range want {
		found := false
		for _, f := range r.Findings {
			if f.Severity == w.severity && f.Topic == w.topic && f.Setting == w.setting && strings.Contains(f.Message, w.message) &&
				(w.fix == "" || strings.Contains(strings.Join(f.Fix, "\n"), w.fix)) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s finding about %s %s (%q, fix %q) in\n%+v", w.severity, w.topic, w.setting, w.message, w.fix, r.Findings)
		}
	}
	// The night's commands, as the runbook has them, for the users and places preflight
	// looked at: the options it was given, and --folders from Dovecot.
	sel := fmt.Sprintf("--passwd %s --spool-dir %s --state-dir %s", passwd, p.SpoolDir, filepath.Join(dir, "state"))
	wantCommands := []string{
		"maildirmig mbox " + sel + " --folders Mail --dry-run",
		"maildirmig mbox " + sel + " --folders Mail --audit-messages",
		"maildirmig verify " + sel + " --folders Mail",
		"maildirmig skel --passwd " + passwd + " --existing",
		"maildirmig check " + sel,
	}
	if strings.Join(r.Commands, "\n") != strings.Join(wantCommands, "\n") {
		t.Errorf("commands\n%s\nwant\n%s", strings.Join(r.Commands, "\n"), strings.Join(wantCommands, "\n"))
	}
	if r.Migrate != 2 {
		t.Errorf("%d users to migrate, want 2 (alice and bob)", r.Migrate)
	}
	// Users named as arguments are the night's users too.
	r, code, stderr = runPreflightJSON(t, append(args, "--spool-dir", p.SpoolDir, "alice")...)
	if r.Migrate != 1 || len(r.Commands) != len(wantCommands) {
		t.Errorf("preflight alice: exit %d, %d users to migrate, commands %q\n%s", code, r.Migrate, r.Commands, stderr)
	}
	for _, c := range r.Commands {
		if !strings.HasSuffix(c, " alice") {
			t.Errorf("preflight alice: %q is not for alice alone", c)
		}
	}
	r, code, stderr = runPreflightJSON(t, append(args, "zed")...)
	if code != 3 || r.Status != "unknown" || !strings.Contains(stderr, "maildirmig: error: no such user: zed") {
		t.Errorf("preflight zed: exit %d, %+v, %s; want 3 and no such user", code, r, stderr)
	}
	// Without --spool-dir, maildirmig would read the system's spool, not the one Postfix
	// delivers into.
	r, _, _ = runPreflightJSON(t, args...)
	found := false
	for _, f := range r.Findings {
		if f.Topic == "spool" && f.Severity == "warning" && strings.Contains(f.Message, "pass --spool-dir "+p.SpoolDir) {
			found = true
		}
	}
	if !found || r.Commands[1] != fmt.Sprintf("maildirmig mbox --passwd %s --state-dir %s --folders Mail --spool-dir %s --audit-messages", passwd, filepath.Join(dir, "state"), p.SpoolDir) {
		t.Errorf("no hint to pass --spool-dir %s: %+v, commands %q", p.SpoolDir, r.Findings, r.Commands)
	}
	// It changed nothing.
	if _, err := os.Lstat(filepath.Join(dir, "home", "alice", "Maildir")); err == nil {
		t.Errorf("preflight created a Maildir")
	}
	if _, err := os.Lstat(filepath.Join(dir, "state")); err == nil {
		t.Errorf("preflight created the state directory")
	}
}

// TestPreflightMaildirServer runs preflight against a real, running Postfix that delivers to
// ~/Maildir/ and a real, running Dovecot that serves maildir:~/Maildir: the switch is done,
// so there are no night's commands; mail left in a spool is a warning with the command that
// migrates it, and once it is migrated there is nothing to change, exit 0, and the text
// report ends PREFLIGHT OK.
func TestPreflightMaildirServer(t *testing.T) {
	p := mailtest.StartPostfix(t)
	postconfSet(t, p.Conf, "home_mailbox = Maildir/")
	d := mailtest.StartDovecot(t, mailtest.DovecotConfig{MailLocation: "maildir:~/Maildir"})
	dir := mailtest.Dir(t)
	passwd := preflightTree(t, dir, p.SpoolDir)
	sel := []string{"--passwd", passwd, "--spool-dir", p.SpoolDir, "--state-dir", filepath.Join(dir, "state")}
	args := append(append([]string{"--user", "alice"}, sel...), "--postfix-config", p.Conf, "--dovecot-config", d.Conf)
	r, code, _ := runPreflightJSON(t, args...)
	want := fmt.Sprintf("maildirmig mbox --passwd %s --spool-dir %s --state-dir %s alice", passwd, p.SpoolDir, filepath.Join(dir, "state"))
	if code != 1 || len(r.Commands) != 0 {
		t.Errorf("alice's spool holds mail after the switch: exit %d, commands %q; want 1 and none", code, r.Commands)
	}
	warned := false
	for _, f := range r.Findings {
		warned = warned || f.Severity == "warning" && f.Topic == "users" && strings.Join(f.Fix, "\n") == want
	}
	if !warned {
		t.Errorf("no warning with %q in %+v", want, r.Findings)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), append(append([]string{"maildirmig", "mbox", "-q", "--audit-log", filepath.Join(dir, "audit.jsonl")}, sel...), "alice"), strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("maildirmig mbox: exit %d: %s%s", code, out.String(), errb.String())
	}

	r, code, stderr := runPreflightJSON(t, args...)
	if code != 0 || r.Status != "ok" {
		t.Errorf("exit %d, status %q; want 0, ok\nstderr: %s\n%+v", code, r.Status, stderr, r.Findings)
	}
	running := 0
	for _, f := range r.Findings {
		if f.Severity != "ok" {
			t.Errorf("finding on a switched server: %+v", f)
		}
		if f.Topic == "daemons" && f.Value == "running" {
			running++
			if len(f.Fix) > 0 {
				t.Errorf("after the switch, a running daemon is told to stop: %+v", f)
			}
		}
	}
	if running != 2 {
		t.Errorf("%d daemons found running, want postfix and dovecot", running)
	}

	var stdout bytes.Buffer
	errb.Reset()
	code = run(context.Background(), append([]string{"maildirmig", "preflight", "-q"}, args...), strings.NewReader(""), &stdout, &errb)
	if code != 0 || stdout.String() != "PREFLIGHT OK\n" || errb.Len() != 0 {
		t.Errorf("preflight -q: exit %d, stdout %q, stderr %q; want 0 and only PREFLIGHT OK", code, stdout.String(), errb.String())
	}
	stdout.Reset()
	code = run(context.Background(), append([]string{"maildirmig", "preflight"}, args...), strings.NewReader(""), &stdout, &errb)
	if code != 0 || strings.Contains(stdout.String(), "night's commands") || !strings.HasSuffix(stdout.String(), "\nPREFLIGHT OK\n") {
		t.Errorf("preflight after the switch: exit %d, printed\n%s", code, stdout.String())
	}
}

// TestPreflightCannotCheck: a Postfix configuration directory that does not exist makes
// postconf fail; preflight exits 3 and still prints a JSON object with the error.
func TestPreflightCannotCheck(t *testing.T) {
	if _, err := exec.LookPath("postconf"); err != nil {
		t.Skip("postconf not installed")
	}
	r, code, stderr := runPreflightJSON(t, "--postfix-config", filepath.Join(t.TempDir(), "nosuch"))
	if code != 3 || r.Status != "unknown" || !strings.Contains(r.Error, "postconf") {
		t.Errorf("exit %d, %+v; want 3, unknown, a postconf error", code, r)
	}
	if !strings.HasPrefix(stderr, "maildirmig: error: postconf: ") {
		t.Errorf("stderr %q", stderr)
	}
}
