package migrate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/worker"

	"github.com/maildirmig/maildirmig/users"
)

// TestRunMailboxLockPlanted plants at ~USER/Mailbox.lock what a user could to make root read a
// file or hang: the user's migration fails with a lock timeout, on time, and nothing of the
// file reaches the result or the audit log.
func TestRunMailboxLockPlanted(t *testing.T) {
	t.Parallel()
	const secret = "root:$6$plantedsecret:19000::::::"
	tests := []struct {
		name  string
		plant func(tr *tree, lock string)
	}{
		{"symlink to a root-only file", func(tr *tree, lock string) {
			tr.write("root/shadow", secret+"\n", "")
			must(tr.t, os.Symlink(tr.path("root/shadow"), lock))
		}},
		{"fifo", func(tr *tree, lock string) {
			must(tr.t, unix.Mkfifo(lock, 0o600))
			tr.chown(lock, "alice")
		}},
		{"symlink to /dev/zero", func(tr *tree, lock string) {
			must(tr.t, os.Symlink("/dev/zero", lock))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := newTree(t, "alice")
			tr.write("home/alice/Mailbox", msgA, "alice")
			lock := tr.path("home/alice/" + mailboxLockName)
			tt.plant(tr, lock)
			cfg := tr.config()
			cfg.Source = SourceMailbox
			cfg.LockTimeout = 300 * time.Millisecond
			type result struct {
				res map[string]UserResult
			}
			done := make(chan result, 1)
			go func() {
				_, res := run(t, cfg)
				done <- result{res}
			}()
			var got result
			select {
			case got = <-done:
			case <-time.After(time.Minute):
				t.Fatal("Run still blocked a minute after the lock timeout")
			}
			r := got.res["alice"]
			if r.Outcome != OutcomeLockTimeout || !errors.Is(r.Err, ErrLockTimeout) {
				t.Fatalf("alice: outcome %s, err %v; want a lock timeout", r.Outcome, r.Err)
			}
			if strings.Contains(r.Err.Error(), "plantedsecret") {
				t.Errorf("the error quotes the planted file: %v", r.Err)
			}
			b, err := os.ReadFile(tr.path("var/log/maildirmig/audit.jsonl"))
			must(t, err)
			if strings.Contains(string(b), "plantedsecret") {
				t.Errorf("the audit log quotes the planted file:\n%s", b)
			}
			if got := tr.files("alice"); len(got) != 0 {
				t.Errorf("migrated without the lock: %v", got)
			}
			if _, err := os.Lstat(lock); err != nil {
				t.Errorf("the planted lock was removed: %v", err)
			}
		})
	}
}

// TestRunMailboxRename migrates ~/Mailbox with --after rename: the dotlock is the user's
// (taken by the worker), gone afterwards, and the Mailbox is renamed beside it.
func TestRunMailboxRename(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "alice")
	tr.write("home/alice/Mailbox", msgA+msgB, "alice")
	cfg := tr.config()
	cfg.Source = SourceMailbox
	cfg.After = AfterRename
	_, res := run(t, cfg)
	r := res["alice"]
	if r.Outcome != OutcomeMigrated || r.Err != nil || !strings.HasPrefix(r.After, "renamed to ") {
		t.Fatalf("alice: %+v", r)
	}
	to := strings.TrimPrefix(r.After, "renamed to ")
	if filepath.Dir(to) != tr.path("home/alice") || !strings.HasPrefix(filepath.Base(to), "Mailbox.migrated-") {
		t.Errorf("renamed to %s", to)
	}
	b, err := os.ReadFile(to)
	must(t, err)
	if string(b) != msgA+msgB {
		t.Errorf("renamed Mailbox holds %q", b)
	}
	if _, err := os.Lstat(tr.path("home/alice/Mailbox")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Mailbox still there: %v", err)
	}
	if _, err := os.Lstat(tr.path("home/alice/" + mailboxLockName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Mailbox.lock left behind: %v", err)
	}
	if got := tr.files("alice"); len(got) != 2 {
		t.Errorf("alice's Maildir: %v", got)
	}
}

// TestMailboxLockIsTheUsers takes the Mailbox lock as root would for a user: the lock file
// belongs to the user, made by a worker that runs as the user.
func TestMailboxLockIsTheUsers(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to lock as another uid")
	}
	tr := newTree(t, "alice")
	uid := tr.UID("alice")
	r := &runner{cfg: Config{Source: SourceMailbox, LockTimeout: time.Second}}
	r.cfg.defaults()
	home := tr.path("home/alice")
	lk, err := r.lockSource(context.Background(), usersUser("alice", uid), filepath.Join(home, "Mailbox"), home)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(home, mailboxLockName), &st))
	if int(st.Uid) != uid {
		t.Errorf("Mailbox.lock owned by uid %d, want the user's %d", st.Uid, uid)
	}
	// A second taker waits and times out while the worker holds it.
	r2 := &runner{cfg: Config{Source: SourceMailbox, LockTimeout: 200 * time.Millisecond}}
	r2.cfg.defaults()
	if _, err := r2.lockSource(context.Background(), usersUser("alice", uid), filepath.Join(home, "Mailbox"), home); !errors.Is(err, ErrLockTimeout) {
		t.Errorf("second lock = %v, want ErrLockTimeout", err)
	}
	if err := lk.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(home, mailboxLockName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock left after Release: %v", err)
	}
}

func TestRenameBeside(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		plant   func(t *testing.T, dir string)
		swap    bool
		wantErr string
	}{
		{name: "free"},
		{name: "target exists", plant: func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "Mailbox.old"), []byte("keep"), 0o600))
		}, wantErr: "exists"},
		{name: "target a symlink", plant: func(t *testing.T, dir string) {
			must(t, os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(dir, "Mailbox.old")))
		}, wantErr: "exists"},
		{name: "source swapped", swap: true, wantErr: "replaced while locked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			must(t, os.WriteFile(filepath.Join(dir, "Mailbox"), []byte("mail"), 0o600))
			var st unix.Stat_t
			must(t, unix.Lstat(filepath.Join(dir, "Mailbox"), &st))
			if tt.plant != nil {
				tt.plant(t, dir)
			}
			if tt.swap {
				// Made while the first still exists, so that it cannot get the same inode.
				must(t, os.WriteFile(filepath.Join(dir, "other"), []byte("other"), 0o600))
				must(t, os.Rename(filepath.Join(dir, "other"), filepath.Join(dir, "Mailbox")))
			}
			dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			must(t, err)
			defer unix.Close(dirfd)
			err = renameBeside(dirfd, "Mailbox", "Mailbox.old", st.Dev, st.Ino)
			if tt.wantErr == "" {
				must(t, err)
				if b, _ := os.ReadFile(filepath.Join(dir, "Mailbox.old")); string(b) != "mail" {
					t.Errorf("Mailbox.old holds %q", b)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("renameBeside = %v, want %q", err, tt.wantErr)
			}
			if _, err := os.Lstat(filepath.Join(dir, "Mailbox")); err != nil {
				t.Errorf("Mailbox gone after a refused rename: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "elsewhere")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("something appeared where the symlink points: %v", err)
			}
		})
	}
}

func usersUser(name string, uid int) users.User {
	return users.User{Name: name, UID: uid, GID: uid}
}

// TestMailboxLockIdleWhileRootWorks: the Mailbox lock worker holds its lock and does nothing
// while root migrates, for as long as that takes: it reports no work, and must not be killed
// for it. The watchdog's rule applies only to what root waits for from it (each answer within
// the stall timeout), which TestWatchdogStoppedMailboxLock in e2e proves for a stopped one.
func TestMailboxLockIdleWhileRootWorks(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to lock as another uid")
	}
	tr := newTree(t, "alice")
	uid := tr.UID("alice")
	r := &runner{cfg: Config{Source: SourceMailbox, LockTimeout: time.Second}}
	r.cfg.defaults()
	home := tr.path("home/alice")
	const stall = raceSlowdown * 200 * time.Millisecond
	ctx := worker.WithStallTimeout(context.Background(), stall)
	lk, err := r.lockSource(ctx, usersUser("alice", uid), filepath.Join(home, "Mailbox"), home)
	if err != nil {
		t.Fatal(err)
	}
	// Root works for ten stall timeouts.
	time.Sleep(10 * stall)
	if _, err := os.Lstat(filepath.Join(home, mailboxLockName)); err != nil {
		t.Fatalf("the lock is gone while root works: %v", err)
	}
	if err := lk.Release(); err != nil {
		t.Fatalf("Release after root worked for %v: %v", 10*stall, err)
	}
	if _, err := os.Lstat(filepath.Join(home, mailboxLockName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock left after Release: %v", err)
	}
}
