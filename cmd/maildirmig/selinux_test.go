package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/internal/selinux"
)

// fakeSELinux makes SELinux enforcing for this process's commands, through a selinuxfs of
// its own, until the test ends. Tests that use it do not run in parallel.
func fakeSELinux(t *testing.T) {
	t.Helper()
	fs := filepath.Join(t.TempDir(), "selinux")
	if err := os.MkdirAll(fs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fs, "enforce"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	was := selinuxHost
	selinuxHost = selinux.Host{FS: fs, Config: filepath.Join(fs, "config")}
	t.Cleanup(func() { selinuxHost = was })
}

// TestMboxRelabelsForSELinux: where SELinux is enforcing, mbox, and skel --existing, have each
// Maildir they wrote relabelled by restorecon -RF as its user; without restorecon they warn
// first and end with the exact command for the Maildirs they wrote.
func TestMboxRelabelsForSELinux(t *testing.T) {
	fakeSELinux(t)
	bin, err := os.MkdirTemp("", "restorecon-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	if err := os.Chmod(bin, 0o777); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(bin, "log")
	// Each user's restorecon appends to it.
	if err := os.WriteFile(log, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(log, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "restorecon"), []byte("#!/bin/sh\necho \"$(id -u) $*\" >>"+log+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	root := mailTree(t)
	migrateTree(t, root)
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "-RF " + filepath.Join(root, "home/alice/Maildir") + "\n"
	if os.Geteuid() == 0 {
		want = "42341 " + want
	}
	if !strings.Contains(string(b), want) || strings.Count(string(b), "\n") != 2 {
		t.Errorf("restorecon ran:\n%s\nwant for alice and bob, as themselves:\n%s", b, want)
	}
	// carol's spool was refused: skel --existing gives her an empty Maildir, relabelled too.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"maildirmig", "skel", "--root", root, "--existing", "-q"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("skel --existing: exit %d: %s", code, stderr.String())
	}
	b, err = os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want = "-RF " + filepath.Join(root, "home/carol/Maildir") + "\n"
	if os.Geteuid() == 0 {
		want = "42343 " + want
	}
	if !strings.HasSuffix(string(b), want) || strings.Count(string(b), "\n") != 3 {
		t.Errorf("after skel --existing, restorecon ran:\n%s\nwant last, for carol:\n%s", b, want)
	}

	// Without restorecon (none on this PATH, none in /usr/sbin or /sbin here).
	t.Setenv("PATH", "/usr/bin:/bin")
	if p := selinux.Restorecon(); p != "" {
		t.Skipf("this machine has %s: the test cannot take it away", p)
	}
	root = mailTree(t)
	stderr.Reset()
	run(context.Background(), []string{"maildirmig", "mbox", "--root", root, "--progress", "never"}, strings.NewReader(""), &stdout, &stderr)
	if !strings.HasPrefix(stderr.String(), "maildirmig: warning: SELinux is enforcing and restorecon (policycoreutils) is not installed") {
		t.Errorf("no warning first:\n%s", stderr.String())
	}
	cmd := regexp.MustCompile(`(?m)^    restorecon -RF (\S+) (\S+)$`).FindStringSubmatch(stderr.String())
	if cmd == nil || cmd[1] != filepath.Join(root, "home/alice/Maildir") || cmd[2] != filepath.Join(root, "home/bob/Maildir") {
		t.Errorf("no command relabelling alice's and bob's Maildirs:\n%s", stderr.String())
	}
}
