package selinux

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeHost is a selinuxfs directory holding enforce (unless enforce is ""), and a config file.
func fakeHost(t *testing.T, enforce, config string) Host {
	t.Helper()
	dir := t.TempDir()
	h := Host{FS: filepath.Join(dir, "sys/fs/selinux"), Config: filepath.Join(dir, "etc/selinux/config")}
	if enforce != "" {
		must(t, os.MkdirAll(h.FS, 0o755))
		must(t, os.WriteFile(filepath.Join(h.FS, "enforce"), []byte(enforce), 0o644))
	}
	if config != "" {
		must(t, os.MkdirAll(filepath.Dir(h.Config), 0o755))
		must(t, os.WriteFile(h.Config, []byte(config), 0o644))
	}
	return h
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDetect reads the mode as the kernel gives it in selinuxfs (mounted only when SELinux is
// enabled) and the next boot's from the configuration, as Red Hat writes it.
func TestDetect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		enforce, config string
		want            Status
		enabled         bool
	}{
		{"1", "# This file controls the state of SELinux\nSELINUX=enforcing\nSELINUXTYPE=targeted\n", Status{Enforcing, Enforcing}, true},
		{"0\n", "SELINUX=permissive\n", Status{Permissive, Permissive}, true},
		{"", "SELINUX=disabled\n", Status{Disabled, Disabled}, false},
		{"", "SELINUX=enforcing\n", Status{Disabled, Enforcing}, false},
		{"", "", Status{Disabled, ""}, false},
		{"1", "SELINUX = \"enforcing\"\n", Status{Enforcing, ""}, true},
	} {
		got, err := fakeHost(t, tc.enforce, tc.config).Detect()
		if err != nil || got != tc.want || got.Enabled() != tc.enabled {
			t.Errorf("enforce %q, config %q: %+v, %v; want %+v", tc.enforce, tc.config, got, err, tc.want)
		}
	}
	if _, err := fakeHost(t, "2", "").Detect(); err == nil || !strings.Contains(err.Error(), `"2", not 0 or 1`) {
		t.Errorf("enforce 2: %v", err)
	}
}

// stub writes an executable restorecon into dir that appends its uid and arguments to log,
// and fails with a message when fail is set.
func stub(t *testing.T, dir, log string, fail bool) string {
	t.Helper()
	p := filepath.Join(dir, "restorecon")
	script := "#!/bin/sh\necho \"$(id -u) $*\" >>" + log + "\n"
	if fail {
		script += "echo 'restorecon: lsetfilecon failed: Operation not permitted' >&2\nexit 1\n"
	}
	must(t, os.WriteFile(p, []byte(script), 0o755))
	return p
}

// TestRestorecon finds restorecon on PATH, as an absolute path.
func TestRestorecon(t *testing.T) {
	dir := t.TempDir()
	p := stub(t, dir, filepath.Join(dir, "log"), false)
	t.Setenv("PATH", dir)
	if got := Restorecon(); got != p {
		t.Errorf("Restorecon() = %q, want %q", got, p)
	}
	t.Setenv("PATH", t.TempDir())
	if got := Restorecon(); got != "" && !strings.HasPrefix(got, "/usr/sbin/") && !strings.HasPrefix(got, "/sbin/") {
		t.Errorf("Restorecon() without one on PATH = %q", got)
	}
}

// TestRelabel runs restorecon -RF on the path, as the user when run as root, and says what
// failed with the command line and restorecon's words.
func TestRelabel(t *testing.T) {
	t.Parallel()
	// The user must reach the stub and its log: t.TempDir's parent is 0700.
	dir, err := os.MkdirTemp("", "selinux-test-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o777))
	log := filepath.Join(dir, "log")
	cred := Credentials{UID: os.Getuid(), GID: os.Getgid()}
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Skipf("no user nobody to relabel as: %v", err)
		}
		cred.UID, _ = strconv.Atoi(nobody.Uid)
		cred.GID, _ = strconv.Atoi(nobody.Gid)
	}
	ok := stub(t, dir, log, false)
	must(t, Relabel(context.Background(), ok, cred, "/home/alice/Maildir"))
	b, err := os.ReadFile(log)
	must(t, err)
	if got, want := string(b), strconv.Itoa(cred.UID)+" -RF /home/alice/Maildir\n"; got != want {
		t.Errorf("restorecon ran as %q, want %q", got, want)
	}
	failing := stub(t, t.TempDir(), log, true)
	err = Relabel(context.Background(), failing, Credentials{UID: os.Getuid(), GID: os.Getgid()}, "/home/o'neil/Maildir")
	if err == nil || err.Error() != `selinux: restorecon -RF '/home/o'\''neil/Maildir': exit status 1: restorecon: lsetfilecon failed: Operation not permitted` {
		t.Errorf("a failing restorecon: %v", err)
	}
}

func TestCommand(t *testing.T) {
	t.Parallel()
	if got := Command("/home/alice/Maildir", "/home/bob smith/Maildir"); got != "restorecon -RF /home/alice/Maildir '/home/bob smith/Maildir'" {
		t.Errorf("Command: %q", got)
	}
}
