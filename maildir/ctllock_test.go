package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLockControlRefusesDirectory: the user makes a directory named dovecot-uidlist.lock
// (or any other file that is no lock) and dates it 2000. Nobody made it as a dotlock and
// nobody can break it, Dovecot neither: the writer refuses it at once, as unsafe, and leaves
// it there, instead of trying to unlink it for ever (the unlink of a directory fails, and the
// loop once went round without reaching its deadline). Were the loop to spin again, this test
// would hang until go test's timeout.
func TestLockControlRefusesDirectory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		plant func(p string) error
		what  string
	}{
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }, "directory"},
		{"FIFO", func(p string) error { return unix.Mkfifo(p, 0o600) }, "FIFO"},
		{"symlink", func(p string) error { return os.Symlink("/etc/passwd", p) }, "symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			md := filepath.Join(t.TempDir(), "Maildir")
			_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
			defer w.Close()
			w.lockWait = 300 * time.Millisecond
			lock := filepath.Join(md, "dovecot-uidlist.lock")
			must(t, tc.plant(lock))
			old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
			ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
			must(t, unix.UtimesNanoAt(unix.AT_FDCWD, lock, ts, unix.AT_SYMLINK_NOFOLLOW))
			waits := 0
			w.trace = func(event string) error {
				if strings.HasPrefix(event, "wait ") {
					waits++
				}
				return nil
			}
			add(t, w, msg(0, "x\n"))
			err := w.Flush()
			want := "maildir: unsafe path " + md + "/dovecot-uidlist.lock: is a " + tc.what + ", not a lock file"
			if err == nil || !errors.Is(err, ErrUnsafe) || err.Error() != want {
				t.Fatalf("Flush beside a %s dovecot-uidlist.lock: %v, want %q", tc.name, err, want)
			}
			if waits != 0 {
				t.Errorf("waited %d times for what no one can release", waits)
			}
			if _, err := os.Lstat(lock); err != nil {
				t.Errorf("the user's %s was removed: %v", tc.name, err)
			}
		})
	}
}

// TestBreakLockRace forces the race of a stale lock taken over by two at once. A
// dovecot-uidlist.lock no run records is dated 2000: stale. The writer judges it so; at that
// very moment, Dovecot, judging the same, removes it and takes its own lock to write a new
// dovecot-uidlist in it (the trace hook plays Dovecot between the judgement and the removal).
// The writer must not remove Dovecot's live lock: it is left in place with its content, the
// writer waits for it and gives up with the lock held by another process, and nothing of its
// attempt is left in tmp/.
func TestBreakLockRace(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
	defer w.Close()
	w.lockWait = 300 * time.Millisecond
	lock := filepath.Join(md, "dovecot-uidlist.lock")
	must(t, os.WriteFile(lock, nil, 0o600))
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, os.Chtimes(lock, old, old))
	const dovecots = "3 V1 N2 G0123456789abcdef0123456789abcdef\n1 :dovecot-saved\n"
	var dovecot os.FileInfo
	w.trace = func(event string) error {
		if event == "break dovecot-uidlist.lock" && dovecot == nil {
			must(t, os.Remove(lock))
			must(t, os.WriteFile(lock, []byte(dovecots), 0o600))
			fi, err := os.Lstat(lock)
			must(t, err)
			dovecot = fi
		}
		return nil
	}
	add(t, w, msg(0, "x\n"))
	err := w.Flush()
	if dovecot == nil {
		t.Fatalf("the writer never came to break the stale lock (Flush: %v)", err)
	}
	checkDovecotLockKept(t, err, lock, dovecot, dovecots)
	for _, n := range tmpNames(t, md) {
		if !strings.HasPrefix(n, markerPrefix) {
			t.Errorf("tmp/%s left by the attempt", n)
		}
	}
}

// TestBreakLockRemovesStale: with nobody in the way, a stale foreign lock is removed and
// taken, through the same rename into tmp/, which leaves nothing behind.
func TestBreakLockRemovesStale(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
	defer w.Close()
	w.lockWait = 300 * time.Millisecond
	lock := filepath.Join(md, "dovecot-uidlist.lock")
	must(t, os.WriteFile(lock, []byte("half-written by a Dovecot that died"), 0o600))
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, os.Chtimes(lock, old, old))
	add(t, w, msg(0, "x\n"))
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush beside a stale lock: %v", err)
	}
	if _, err := os.Lstat(lock); !os.IsNotExist(err) {
		t.Errorf("dovecot-uidlist.lock after the flush: %v", err)
	}
	for _, n := range tmpNames(t, md) {
		if !strings.HasPrefix(n, markerPrefix) {
			t.Errorf("tmp/%s left by the take-over", n)
		}
	}
}

// TestBreakLockRaceDeadRun: the same race for the lock of a maildirmig that died, which the
// writer takes over at once. Between the writer's look at the dead run's record and its
// removal of the lock, Dovecot (the trace hook) replaces that lock with its own: the writer
// must leave Dovecot's lock in place.
func TestBreakLockRaceDeadRun(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	cmd := startHelper(t, md)
	d, err := Open(md, false)
	must(t, err)
	defer d.Close()
	w, err := NewWriter(d, Options{Host: testHost, Fsync: FsyncNone})
	must(t, err)
	defer w.Close()
	w.lockWait = 300 * time.Millisecond
	lock := filepath.Join(md, "dovecot-uidlist.lock")
	const dovecots = "3 V1 N2 G0123456789abcdef0123456789abcdef\n1 :dovecot-saved\n"
	var dovecot os.FileInfo
	w.trace = func(event string) error {
		if event == "break dovecot-uidlist.lock" && dovecot == nil {
			must(t, os.Remove(lock))
			must(t, os.WriteFile(lock, []byte(dovecots), 0o600))
			fi, err := os.Lstat(lock)
			must(t, err)
			dovecot = fi
		}
		return nil
	}
	killHelper(t, cmd)
	_, err = w.Add(helperMessage(1000))
	if err == nil {
		err = w.Flush()
	}
	if dovecot == nil {
		t.Fatalf("the writer never came to take the dead run's lock over (%v)", err)
	}
	checkDovecotLockKept(t, err, lock, dovecot, dovecots)
}

// TestControlLockWithoutHardLinks: on a file system without hard links, the dotlock cannot
// be made in tmp/ and linked into place; it is made in place instead, and the run marker
// does not record it (no tmp/ name keeps its inode). The kernel's EPERM is forced by the
// append-only attribute of the file made in tmp/, set once the marker recorded it.
func TestControlLockWithoutHardLinks(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to set the append-only attribute that makes link(2) fail with EPERM")
	}
	md := filepath.Join(t.TempDir(), "Maildir")
	_, w := newTestWriter(t, md, Options{Fsync: FsyncBatch})
	defer w.Close()
	marker := filepath.Join(md, "tmp", w.marker.name)
	lock := filepath.Join(md, "dovecot-uidlist.lock")
	var staged string
	inPlace := false
	w.trace = func(event string) error {
		switch event {
		case "record dovecot-uidlist.lock":
			f := strings.Fields(readFile(t, marker))
			if len(f) != 4 || f[0] != "dovecot-uidlist.lock" {
				t.Fatalf("the marker records %q, want the lock and its tmp/ name", f)
			}
			staged = filepath.Join(md, "tmp", f[1])
			setAppendOnly(t, staged, true)
			t.Cleanup(func() { setAppendOnly(t, staged, false) })
		case "fsync dovecot-uidlist.lock":
			var st unix.Stat_t
			must(t, unix.Lstat(lock, &st))
			if st.Nlink != 1 {
				t.Errorf("the lock made in place has %d links", st.Nlink)
			}
			if rec := readFile(t, marker); rec != "" {
				t.Errorf("the marker records %q for a lock made in place, which no tmp/ name keeps", rec)
			}
			inPlace = true
		}
		return nil
	}
	r := add(t, w, msg(0, "x\n"))
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush with a lock that cannot be linked: %v", err)
	}
	if staged == "" || !inPlace {
		t.Fatalf("the lock was not made in place (recorded %q, in place %v)", staged, inPlace)
	}
	if ul := readFile(t, filepath.Join(md, "dovecot-uidlist")); !strings.Contains(ul, ":"+baseOf(r.Name)+"\n") {
		t.Errorf("dovecot-uidlist does not list %s:\n%s", r.Name, ul)
	}
	if _, err := os.Lstat(lock); !os.IsNotExist(err) {
		t.Errorf("dovecot-uidlist.lock after the flush: %v", err)
	}
}

// setAppendOnly sets or clears the append-only attribute of path (chattr +a), which makes the
// kernel refuse a hard link to the file with EPERM, as a file system without hard links does.
func setAppendOnly(t *testing.T, path string, on bool) {
	t.Helper()
	const appendFL = 0x20 // FS_APPEND_FL
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(fd)
	flags, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Skipf("needs a file system with file attributes (chattr): %v", err)
	}
	if on {
		flags |= appendFL
	} else {
		flags &^= appendFL
	}
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, flags); err != nil {
		t.Skipf("needs root (CAP_LINUX_IMMUTABLE) to set the append-only attribute: %v", err)
	}
}

// checkDovecotLockKept fails unless err says Dovecot holds the uidlist lock and the lock at
// path is still Dovecot's file (fi) holding content.
func checkDovecotLockKept(t *testing.T, err error, path string, fi os.FileInfo, content string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "dovecot-uidlist.lock is held by another process (Dovecot?) since") {
		t.Errorf("Flush while Dovecot holds the lock: %v, want the lock held by another process", err)
	}
	now, serr := os.Lstat(path)
	if serr != nil || !os.SameFile(now, fi) {
		t.Fatalf("Dovecot's live dovecot-uidlist.lock was removed or replaced (%v)", serr)
	}
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Errorf("Dovecot's lock holds %q, want %q", b, content)
	}
}

// TestBatchLeftByFailedMove: the batch synced in the background cannot be moved in, for
// Dovecot holds dovecot-uidlist.lock. Nothing of it may be reported durable, every later
// flush must fail (a later batch moved in would list its lines), and Abort must remove its
// files from tmp/ and list nothing, for none of them reached cur/ or new/.
func TestBatchLeftByFailedMove(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	var durable []Result
	_, w := newTestWriter(t, md, Options{Fsync: FsyncBatch, BatchFiles: 2, Durable: func(r Result) { durable = append(durable, r) }})
	defer w.Close()
	w.lockWait = 200 * time.Millisecond
	add(t, w, msg(0, "zero\n"))
	add(t, w, msg(1, "one\n")) // the first batch is full: its sync starts
	lock := filepath.Join(md, "dovecot-uidlist.lock")
	must(t, os.WriteFile(lock, []byte("Dovecot's\n"), 0o600)) // fresh: live
	add(t, w, msg(2, "two\n"))
	_, err := w.Add(msg(3, "three\n")) // the second is full: the first must move in, and cannot
	if err == nil {
		err = w.Flush()
	}
	if err == nil || !strings.Contains(err.Error(), "held by another process") {
		t.Fatalf("moving a batch in while Dovecot holds the lock: %v", err)
	}
	must(t, os.Remove(lock))
	if err := w.Flush(); err == nil {
		t.Errorf("a flush after the failed move succeeded")
	}
	if len(durable) != 0 {
		t.Errorf("%d messages reported durable, none of which reached cur/ or new/", len(durable))
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	for _, n := range tmpNames(t, md) {
		if !strings.HasPrefix(n, markerPrefix) {
			t.Errorf("tmp/%s left behind by Abort", n)
		}
	}
	if names := sortedNames(t, md); len(names) != 0 {
		t.Errorf("in cur/ and new/: %v", names)
	}
	if b, err := os.ReadFile(filepath.Join(md, "dovecot-uidlist")); err == nil && strings.Count(string(b), "\n") > 1 {
		t.Errorf("dovecot-uidlist lists files that never reached cur/ or new/:\n%s", b)
	}
}
