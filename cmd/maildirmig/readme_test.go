package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/internal/audit"
	"github.com/maildirmig/maildirmig/internal/mailtest"
)

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readmeSection returns the text of the README section whose heading is title, up to the next
// heading of the same level.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	s := readme(t)
	i := strings.Index(s, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", title)
	}
	s = s[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	return s
}

// auditTree migrates a --root tree into a real audit log: alice with two messages, bob with a
// mailbox read in loose mode, carol whose spool is a symlink to a secret. It returns the log.
func auditTree(t *testing.T) string {
	t.Helper()
	root := mailTree(t)
	migrateTree(t, root)
	return filepath.Join(root, "var/log/maildirmig/audit.jsonl")
}

func mailTree(t *testing.T) string {
	t.Helper()
	r := mailtest.NewRoot(t)
	for i, name := range []string{"alice", "bob", "carol"} {
		r.AddUser(name, 42341+i)
	}
	r.WriteFile("etc/secret", "root:secret\n", 0o600, "")
	r.WriteFile("var/mail/alice", "From a@example.org Mon Jan  1 10:00:00 2024\nSubject: one\n\nbody\n\n"+
		"From a@example.org Mon Jan  1 11:00:00 2024\nSubject: two\n\nbody\n", 0o600, "alice")
	r.WriteFile("var/mail/bob", "From - \nSubject: loose\n\nbody\n", 0o600, "bob")
	if err := os.Symlink(r.Path("etc/secret"), r.Path("var/mail/carol")); err != nil {
		t.Fatal(err)
	}
	r.Chown("var/mail/carol", "carol")
	return r.Dir
}

// migrateTree runs maildirmig mbox on the tree of mailTree, where carol always fails.
func migrateTree(t *testing.T, root string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"maildirmig", "mbox", "--root", root, "--audit-messages", "--progress", "never"}, strings.NewReader(""), &stdout, &stderr); code != exitUsersFailed {
		t.Fatalf("mbox: exit %d, want 3 (carol fails)\n%s%s", code, stdout.String(), stderr.String())
	}
}

// TestReadmeJQ runs every jq example of the README's audit log section on a real audit log
// and checks each answers what its comment promises.
func TestReadmeJQ(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("jq not installed")
	}
	log := auditTree(t)
	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\S+\tcarol\tmigrate: unsafe spool: .*carol is a symlink$`),
		regexp.MustCompile(`(?m)^\S+\talice\t2\t\d+$`),
		regexp.MustCompile(`"event":"run-end".*"migrated":2,"failed":1`),
		regexp.MustCompile(`(?m)^bob\tloose-mode\t`),
		regexp.MustCompile(`(?m)^0\t\d+\t\d+\.M0Q0X[0-9a-f]+\.[^\t]*,S=\d+,W=\d+\n\d+\t\d+\t\d+\.M0Q1X`),
		regexp.MustCompile(`(?m)^alice\t3\nbob\t2$`),
	}
	var examples []string
	for _, line := range strings.Split(readmeSection(t, "The audit log"), "\n") {
		if strings.HasPrefix(line, "jq ") {
			examples = append(examples, line)
		}
	}
	if len(examples) != len(want) {
		t.Fatalf("README has %d jq examples, the test knows %d", len(examples), len(want))
	}
	for i, ex := range examples {
		cmd := exec.Command("sh", "-c", strings.ReplaceAll(ex, "/var/log/maildirmig/audit.jsonl", "'"+log+"'"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("%s: %v: %s", ex, err, stderr.String())
			continue
		}
		if !want[i].Match(out) {
			t.Errorf("%s printed\n%s\nwant it to match %s", ex, out, want[i])
		}
	}
}

// TestReadmeUnits checks that the systemd units the README shows are the ones the package
// installs.
func TestReadmeUnits(t *testing.T) {
	blocks := regexp.MustCompile("(?s)```ini\n(.*?)```\n").FindAllStringSubmatch(readme(t), -1)
	files := []string{"maildirmig-check.service", "maildirmig-check.timer"}
	if len(blocks) != len(files) {
		t.Fatalf("README shows %d ini blocks, want the %d units", len(blocks), len(files))
	}
	for i, f := range files {
		b, err := os.ReadFile(filepath.Join("..", "..", "packaging", "systemd", f))
		if err != nil {
			t.Fatal(err)
		}
		if blocks[i][1] != string(b) {
			t.Errorf("README's %s differs from packaging/systemd/%s", f, f)
		}
	}
}

// TestLogrotateAuditLog rotates a real audit log with the logrotate file the package ships:
// the log is renamed whole, not copied and truncated, left uncompressed for a run that may
// still write to it, and the next run starts a new log, 0600, while the rotated one keeps
// every line.
func TestLogrotateAuditLog(t *testing.T) {
	if _, err := exec.LookPath("logrotate"); err != nil {
		t.Skip("logrotate not installed")
	}
	root := mailTree(t)
	migrateTree(t, root)
	log := filepath.Join(root, "var/log/maildirmig/audit.jsonl")
	before, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join("..", "..", "packaging", "logrotate", "maildirmig"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(shipped, []byte("/var/log/maildirmig/audit.jsonl {")) || bytes.Contains(shipped, []byte("\tcopytruncate")) {
		t.Fatalf("packaging/logrotate/maildirmig does not rotate the audit log by renaming it:\n%s", shipped)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "maildirmig")
	if err := os.WriteFile(conf, bytes.ReplaceAll(shipped, []byte("/var/log/maildirmig/audit.jsonl"), []byte(log)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("logrotate", "--force", "--state", filepath.Join(dir, "state"), conf).CombinedOutput(); err != nil {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
	rotated, _ := filepath.Glob(log + "-*")
	if len(rotated) != 1 || strings.HasSuffix(rotated[0], ".gz") {
		t.Fatalf("after rotation: %q, want one uncompressed rotated log", rotated)
	}
	if got, err := os.ReadFile(rotated[0]); err != nil || !bytes.Equal(got, before) {
		t.Errorf("the rotated log is not the log as it was (%v)", err)
	}
	if _, err := os.Lstat(log); err == nil {
		t.Errorf("logrotate created a new log; the next run must")
	}
	migrateTree(t, root)
	fi, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(log)
	if fi.Mode().Perm() != 0o600 || !bytes.HasPrefix(after, []byte(`{"time":`)) || !bytes.Contains(after, []byte(`"event":"run-start"`)) {
		t.Errorf("the new log: mode %v, %q", fi.Mode().Perm(), after)
	}
}

// auditTable renders the registry of audit events as the README's table.
func auditTable() string {
	var b strings.Builder
	b.WriteString("| event | fields | meaning |\n| --- | --- | --- |\n")
	for _, e := range audit.Events {
		fields := auditFields(e)
		for i, f := range fields {
			fields[i] = "`" + f + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", e.Name, strings.Join(fields, ", "), e.Meaning)
	}
	return b.String()
}

// TestReadmeAuditTable: the README's table of audit events is the registry's, every event with
// its fields and meaning (the man page is made from the same registry). On a mismatch it
// prints the table to paste.
func TestReadmeAuditTable(t *testing.T) {
	t.Parallel()
	want := auditTable()
	if !strings.Contains(readmeSection(t, "The audit log"), "\n"+want+"\n") {
		t.Errorf("README's audit log section lacks the registry's table (internal/audit.Events); it should read:\n\n%s", want)
	}
}

// TestAuditLogRegistered: every line of a real migration's audit log is an event of the
// registry with its fields only. (In a test binary the audit package refuses anything else, so
// this also checks that the refusal is on.)
func TestAuditLogRegistered(t *testing.T) {
	b, err := os.ReadFile(auditTree(t))
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		name, _ := m["event"].(string)
		events[name]++
		delete(m, "time")
		delete(m, "run")
		delete(m, "event")
		if err := audit.Registered(name, m); err != nil {
			t.Errorf("line %q: %v", line, err)
		}
	}
	for _, e := range []string{audit.EventRunStart, audit.EventUserStart, audit.EventUserDone, audit.EventUserFailed, audit.EventNotice, audit.EventMessage, audit.EventRunEnd} {
		if events[e] == 0 {
			t.Errorf("the log has no %s line: %v", e, events)
		}
	}
}
