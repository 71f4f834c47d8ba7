package lock

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openDir opens dir for the *At functions, closed at the end of the test.
func openDir(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	return fd
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

// TestLinkNoHardLinks: when the kernel refuses the hard link with EPERM (a file system
// without hard links; here the append-only attribute of the staged file), Link says
// ErrNoLinks, makes no lock, and the Held still stands for its first name.
func TestLinkNoHardLinks(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to set the append-only attribute that makes link(2) fail with EPERM")
	}
	dir := t.TempDir()
	fd := openDir(t, dir)
	h, err := Create(fd, "staged", filepath.Join(dir, "staged"))
	must(t, err)
	defer h.Close()
	setAppendOnly(t, filepath.Join(dir, "staged"), true)
	defer setAppendOnly(t, filepath.Join(dir, "staged"), false)
	err = h.Link(fd, "dovecot-uidlist.lock")
	if !errors.Is(err, ErrNoLinks) || !errors.Is(err, unix.EPERM) {
		t.Fatalf("Link of an append-only file = %v, want ErrNoLinks (EPERM)", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "dovecot-uidlist.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lock exists after a failed link: %v", err)
	}
	if err := h.Ours(); err != nil {
		t.Errorf("the Held no longer stands for its first name: %v", err)
	}
}

// TestLinkExists: Link never replaces a lock that is there, and says EEXIST unwrapped, as
// the callers compare it.
func TestLinkExists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fd := openDir(t, dir)
	must(t, os.WriteFile(filepath.Join(dir, "x.lock"), []byte("theirs"), 0o600))
	h, err := Create(fd, "staged", "staged")
	must(t, err)
	defer h.Close()
	if err := h.Link(fd, "x.lock"); err != unix.EEXIST {
		t.Fatalf("Link onto an existing lock = %v, want EEXIST", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "x.lock")); string(b) != "theirs" {
		t.Errorf("the existing lock became %q", b)
	}
	must(t, h.Link(fd, "y.lock"))
	if err := h.Ours(); err != nil {
		t.Errorf("after Link, the Held does not stand for the lock: %v", err)
	}
	must(t, h.Remove())
	if _, err := os.Lstat(filepath.Join(dir, "y.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("y.lock after Remove: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "staged")); err != nil {
		t.Errorf("Remove took the first name too: %v", err)
	}
}

// TestHeldTakenOver: another process removed the lock as stale and made its own: Ours says
// ErrLost, and Remove leaves the other's lock alone.
func TestHeldTakenOver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fd := openDir(t, dir)
	path := filepath.Join(dir, "x.lock")
	h, err := Create(fd, "x.lock", path)
	must(t, err)
	defer h.Close()
	if err := h.Ours(); err != nil {
		t.Fatalf("a fresh lock is not ours: %v", err)
	}
	must(t, os.Remove(path))
	must(t, os.WriteFile(path, []byte("theirs"), 0o600))
	if err := h.Ours(); !errors.Is(err, ErrLost) {
		t.Errorf("Ours after a take-over = %v, want ErrLost", err)
	}
	if err := h.Remove(); !errors.Is(err, ErrLost) {
		t.Errorf("Remove after a take-over = %v, want ErrLost", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "theirs" {
		t.Errorf("the other holder's lock became %q", b)
	}
}

// TestBreakAside forces each race of a break: the lock judged is replaced by a live one
// before the break (it must go back), or a third lock is made while the judged one is aside
// (the third stays).
func TestBreakAside(t *testing.T) {
	t.Parallel()
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		replace     bool   // a live lock replaces the stale one between judgement and break
		third       bool   // a third lock is made while the judged one is aside
		wantBroken  bool   // BreakAside reports the lock removed
		wantContent string // what is at the lock's name after; "" for nothing
	}{
		{name: "still the lock judged", wantBroken: true},
		{name: "replaced by a live lock", replace: true, wantContent: "live"},
		{name: "a third lock made meanwhile", replace: true, third: true, wantContent: "third"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			must(t, os.Mkdir(filepath.Join(dir, "tmp"), 0o700))
			fd, tmpfd := openDir(t, dir), openDir(t, filepath.Join(dir, "tmp"))
			path := filepath.Join(dir, "x.lock")
			must(t, os.WriteFile(path, []byte("stale"), 0o600))
			must(t, os.Chtimes(path, old, old))
			var judged unix.Stat_t
			must(t, unix.Lstat(path, &judged))
			if !Stale(&judged, ControlStale) {
				t.Fatal("a lock of 2000 is not stale")
			}
			if tt.replace {
				must(t, os.Remove(path))
				must(t, os.WriteFile(path, []byte("live"), 0o600))
			}
			broken := BreakAside(fd, "x.lock", tmpfd, "aside", func(st *unix.Stat_t) bool {
				if tt.third {
					must(t, os.WriteFile(path, []byte("third"), 0o600))
				}
				return st.Dev == judged.Dev && st.Ino == judged.Ino && st.Mtim == judged.Mtim
			})
			if broken != tt.wantBroken {
				t.Errorf("BreakAside = %v, want %v", broken, tt.wantBroken)
			}
			b, err := os.ReadFile(path)
			if tt.wantContent == "" && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after the break, the lock holds %q (%v), want no lock", b, err)
			}
			if tt.wantContent != "" && string(b) != tt.wantContent {
				t.Errorf("after the break, the lock holds %q (%v), want %q", b, err, tt.wantContent)
			}
			if _, err := os.Lstat(filepath.Join(dir, "tmp", "aside")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the lock moved aside was left there: %v", err)
			}
		})
	}
}
