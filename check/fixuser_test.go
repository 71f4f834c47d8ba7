package check

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// chownTree gives everything under dir to uid:gid, as if the user had made it.
func chownTree(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	must(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}))
}

// letThrough lets every user through the directories above home, as /home does, until the
// test ends.
func letThrough(t testing.TB, home string) {
	t.Helper()
	for d := filepath.Dir(home); d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			must(t, os.Chmod(d, fi.Mode().Perm()|0o001))
			t.Cleanup(func() { os.Chmod(d, fi.Mode().Perm()) })
		}
	}
}

// TestFixActsAsTheUser runs check --fix as root on a user's tree: what it creates belongs to the
// user without any chown, and it reaches only what the user could reach.
func TestFixActsAsTheUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to take on another user's identity")
	}
	const id = 54321
	u, cfg := healthy(t)
	u.UID, u.GID = id, id
	cfg.Users = []User{u}
	md := filepath.Join(u.Home, "Maildir")
	must(t, os.RemoveAll(filepath.Join(md, "tmp")))
	must(t, os.Chmod(filepath.Join(md, "cur"), 0o000))
	letThrough(t, u.Home)
	chownTree(t, u.Home, id, id)
	cfg.Fix = true
	r := run(t, cfg)
	if r.Fixed != 2 || len(r.Counts) != 0 {
		t.Fatalf("fixed %d, counts %v: %+v", r.Fixed, r.Counts, r.Problems)
	}
	fi, err := os.Lstat(filepath.Join(md, "tmp"))
	must(t, err)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != id || st.Gid != id || fi.Mode().Perm() != 0o700 {
		t.Errorf("created tmp/: %v owned by %d:%d, want 0700 %d:%d", fi.Mode(), st.Uid, st.Gid, id, id)
	}
	// The fix made cur/ readable again, so its message was counted after the repair.
	if r.Messages != 3 {
		t.Errorf("messages %d, want 3", r.Messages)
	}

	// A home root keeps to itself is closed to the user, and so to the check.
	must(t, os.Chown(u.Home, 0, 0))
	cfg.Fix = false
	r = run(t, cfg)
	if len(r.Problems) != 1 || r.Problems[0].Kind != Unchecked || !strings.Contains(r.Problems[0].Detail, "permission denied") {
		t.Errorf("home owned by root, mode 0700: %+v", r.Problems)
	}
}
