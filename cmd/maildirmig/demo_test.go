package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestDemoScript runs demo.sh as a newcomer does: it migrates the demo server in a scratch
// directory, says where, and removes the directory at the end, files of other uids included
// when run as root; with --keep it says where it left it, and it refuses an argument it does
// not know.
func TestDemoScript(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH: demo.sh builds maildirmig")
	}
	// As root the demo users' workers must reach the scratch directory: t.TempDir's parent
	// is 0700.
	tmp, err := os.MkdirTemp("", "demo-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	demo := func(args ...string) (string, error) {
		cmd := exec.Command("sh", append([]string{filepath.Join("..", "..", "demo.sh")}, args...)...)
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	said := regexp.MustCompile(`(?m)^demo\.sh: removed the demo server in (\S+) \(demo\.sh --keep leaves it\)$`)
	out, err := demo()
	m := said.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("demo.sh: %v, and no line saying the demo server was removed:\n%s", err, out)
	}
	if _, err := os.Lstat(m[1]); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", m[1], err)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) != 0 {
		t.Errorf("demo.sh left %q in its TMPDIR", left)
	}
	if !regexp.MustCompile(`(?m)^[0-9]+ users: 2 migrated, `).MatchString(out) || !regexp.MustCompile(`(?m)^OK: `).MatchString(out) {
		t.Errorf("demo.sh did not migrate and check the demo server:\n%s", out)
	}

	out, err = demo("--keep")
	m = regexp.MustCompile(`(?m)^demo\.sh: the demo server is kept in (\S+); remove it with: rm -rf (\S+)$`).FindStringSubmatch(out)
	if err != nil || m == nil || m[1] != m[2] {
		t.Fatalf("demo.sh --keep: %v, and no line saying where the demo server is:\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(m[1], "home", "alice", "Maildir", "cur")); err != nil {
		t.Errorf("demo.sh --keep did not keep the migrated tree: %v", err)
	}

	out, err = demo("--kep")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || out != "usage: demo.sh [--keep]\n" {
		t.Errorf("demo.sh --kep: %v, %q; want exit 2 and the usage", err, out)
	}
}
