package migrate

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAudit(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "log", "maildirmig")
	path := filepath.Join(dir, "audit.jsonl")
	a, err := OpenAudit(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Log(EventRunStart, map[string]any{"argv": []string{"maildirmig", "mbox"}, "version": "devel"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Log(EventUserFailed, map[string]any{"zeta": 1, "err": errors.New("migrate: boom"), "src": "/var/mail/alice", "user": "alice", "uid": 1001, "nothing": nil}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Log(EventRunEnd, nil); err == nil {
		t.Error("Log after Close succeeded")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), b)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if m["run"] != a.Run() {
			t.Errorf("line %q: run %v, want %s", l, m["run"], a.Run())
		}
	}
	if !strings.HasPrefix(lines[1], `{"time":"`) || !strings.Contains(lines[1], `,"event":"user-failed","user":"alice","uid":1001,"src":"/var/mail/alice","err":"migrate: boom","zeta":1}`) {
		t.Errorf("field order or content wrong: %s", lines[1])
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %o, want %o", p, fi.Mode().Perm(), want)
		}
	}
	// A second run appends.
	a2, err := OpenAudit(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.Log(EventRunEnd, nil); err != nil {
		t.Fatal(err)
	}
	a2.Close()
	b2, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b2), string(b)) || strings.Count(string(b2), "\n") != 3 {
		t.Errorf("second run did not append:\n%s", b2)
	}
}

func TestAuditRefusesSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "shadow")
	if err := os.WriteFile(target, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.jsonl")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAudit(path); err == nil {
		t.Fatal("OpenAudit through a symlink succeeded")
	}
	if b, _ := os.ReadFile(target); string(b) != "secret" {
		t.Errorf("target changed to %q", b)
	}
}
