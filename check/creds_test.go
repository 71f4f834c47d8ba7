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

// fsuids returns the filesystem uid of every thread of this process.
func fsuids(t *testing.T) map[string]string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	must(t, err)
	ids := map[string]string{}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 5 && f[0] == "Uid:" {
				ids[task.Name()] = f[4]
			}
		}
	}
	return ids
}

// TestFixActsAsTheUser runs check --fix as root on a user's tree: what it creates belongs to the
// user without any chown, it reaches only what the user could reach, and afterwards no thread
// of the process is left with the user's identity.
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
	// The parent of the home must let the user through, as /home does.
	for d := filepath.Dir(u.Home); d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			must(t, os.Chmod(d, fi.Mode().Perm()|0o001))
			defer os.Chmod(d, fi.Mode().Perm())
		}
	}
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
	for tid, fsuid := range fsuids(t) {
		if fsuid != "0" {
			t.Errorf("thread %s still has filesystem uid %s", tid, fsuid)
		}
	}

	// A home root keeps to itself is closed to the user, and so to the check.
	must(t, os.Chown(u.Home, 0, 0))
	cfg.Fix = false
	r = run(t, cfg)
	if len(r.Problems) != 1 || r.Problems[0].Kind != Unchecked || !strings.Contains(r.Problems[0].Detail, "permission denied") {
		t.Errorf("home owned by root, mode 0700: %+v", r.Problems)
	}
}
