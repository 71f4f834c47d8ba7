package lock

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// ErrNoLinks is matched by the error of Held.Link on a file system without hard links.
var ErrNoLinks = errors.New("lock: the file system has no hard links")

// Held is a lock file this process created and holds open, under a name in a directory it
// holds a descriptor on. The name is the lock only while it is still this file: another
// process that judged the lock stale may have removed it and made its own, so whatever is
// done by name (a rename, a removal) is done only after Ours. The open file keeps its inode
// number from being given to another file meanwhile, so that the check cannot be fooled.
type Held struct {
	f        *os.File
	dir      int // not the Held's: its owner closes it
	name     string
	dev, ino uint64
}

// Create makes the lock file name in dir by exclusive create, mode 0600, without following a
// symlink, blocking on a FIFO or taking a terminal; path is its File's name. Its error is
// safefs.Open's: EEXIST, unwrapped, when something is at name already. dir stays the caller's
// and must stay open as long as the Held is used.
func Create(dir int, name, path string) (*Held, error) {
	fd, err := safefs.Open(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NONBLOCK|unix.O_NOCTTY, 0o600)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		_ = unix.Unlinkat(dir, name, 0)
		return nil, err
	}
	return &Held{f: os.NewFile(uintptr(fd), path), dir: dir, name: name, dev: st.Dev, ino: st.Ino}, nil
}

// CreateFilled makes the lock file name in dir holding content, in one step where it can: the
// content goes into an unnamed file of dir (O_TMPFILE), which is then linked under name (EEXIST,
// unwrapped, when something is there). Nobody ever sees the lock empty, and a process killed
// before the link leaves nothing behind; a lock made by create-then-write, killed in between,
// would look held by an empty lock until it is five minutes old. Where the file system has no
// O_TMPFILE or /proc is not mounted, it creates name and then writes, as Create does.
func CreateFilled(dir int, name, path string, content []byte) (*Held, error) {
	fd, err := unix.Openat(dir, ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		// EOPNOTSUPP, EISDIR or EINVAL: a file system or kernel without O_TMPFILE.
		return createThenWrite(dir, name, path, content)
	}
	f := os.NewFile(uintptr(fd), path)
	if err := writeAll(fd, content); err != nil {
		f.Close()
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, err
	}
	// linkat with AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH, which a worker does not have; the
	// descriptor's /proc name works for anyone.
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dir, name, unix.AT_SYMLINK_FOLLOW)
	switch {
	case err == nil:
		return &Held{f: f, dir: dir, name: name, dev: st.Dev, ino: st.Ino}, nil
	case err == unix.ENOENT && !procMounted():
		f.Close()
		return createThenWrite(dir, name, path, content)
	}
	f.Close()
	return nil, err
}

// procMounted reports whether /proc/self/fd is there to link an unnamed file through.
func procMounted() bool {
	var st unix.Stat_t
	return unix.Stat("/proc/self/fd", &st) == nil
}

// createThenWrite is CreateFilled in two steps, for where one is not possible.
func createThenWrite(dir int, name, path string, content []byte) (*Held, error) {
	h, err := Create(dir, name, path)
	if err != nil {
		return nil, err
	}
	if err := writeAll(int(h.f.Fd()), content); err != nil {
		_ = h.Remove()
		h.Close()
		return nil, err
	}
	return h, nil
}

func writeAll(fd int, content []byte) error {
	n, err := unix.Write(fd, content)
	if err == nil && n != len(content) {
		err = errors.New("short write")
	}
	return err
}

// File returns the open lock file: a control-file dotlock's content is written through it.
func (h *Held) File() *os.File { return h.f }

// ID returns the device and inode numbers of the lock file, for a record that says it is ours.
func (h *Held) ID() (dev, ino uint64) { return h.dev, h.ino }

// Link gives the lock file, created under a name of the caller's, the name name in dir too, and
// from then on h stands for that name: a hard link, which fails with EEXIST (unwrapped) when
// something is at name. So a lock can be recorded by its first name before anyone can see it.
// On a file system without hard links the error matches ErrNoLinks: create the lock in place
// instead. The first name stays, for the caller to remove.
func (h *Held) Link(dir int, name string) error {
	err := unix.Linkat(h.dir, h.name, dir, name, 0)
	switch err {
	case nil:
		h.dir, h.name = dir, name
		return nil
	case unix.EPERM, unix.EOPNOTSUPP, unix.EMLINK:
		return fmt.Errorf("%w (%w)", ErrNoLinks, err)
	}
	return err
}

// Ours returns nil if the lock's name is still this file, else an error matching ErrLost.
func (h *Held) Ours() error {
	var st unix.Stat_t
	if err := unix.Fstatat(h.dir, h.name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Dev == h.dev && st.Ino == h.ino {
		return nil
	}
	return ErrLost
}

// Touch sets the lock file's mtime to now, through its descriptor (futimens(fd, NULL)), so
// that other processes do not take it for stale: it touches the file held, whatever its name
// points at by now.
func (h *Held) Touch() error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, h.f.Fd(), 0, 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// Remove removes the lock's name if it is still this file; ErrLost when it is not.
func (h *Held) Remove() error {
	var now unix.Stat_t
	if err := unix.Fstatat(h.dir, h.name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if now.Dev != h.dev || now.Ino != h.ino {
		return ErrLost
	}
	return unix.Unlinkat(h.dir, h.name, 0)
}

// Close closes the lock file; its name, if still there, stays.
func (h *Held) Close() error { return h.f.Close() }

// BreakAside removes the lock name in dir if it is still the lock judged breakable (same says
// so of what is there), and reports whether it did. There is no unlink-if-same-inode, and
// another process (Dovecot), judging the same lock stale, may remove it and take its own in the
// moment after ours was judged: so the lock is first renamed to aside in asideDir, a name
// nobody else uses, which takes whatever is there in one step, and only that file is judged
// again. It is removed if same says so; anything else, a live holder's lock, goes straight
// back, never replacing a lock made meanwhile. A kill in between leaves it under aside, which
// the caller's recovery must remove. dir and asideDir must be on one file system.
func BreakAside(dir int, name string, asideDir int, aside string, same func(*unix.Stat_t) bool) bool {
	// aside is new and the caller's: a plain rename replaces nothing, and works where
	// RENAME_NOREPLACE does not (NFS).
	if unix.Renameat(dir, name, asideDir, aside) != nil {
		return false
	}
	var st unix.Stat_t
	if unix.Fstatat(asideDir, aside, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && same(&st) {
		_ = unix.Unlinkat(asideDir, aside, 0)
		return true
	}
	err := unix.Renameat2(asideDir, aside, dir, name, unix.RENAME_NOREPLACE)
	if err == unix.EINVAL || err == unix.ENOSYS {
		if err = unix.Linkat(asideDir, aside, dir, name, 0); err == nil {
			_ = unix.Unlinkat(asideDir, aside, 0)
		}
	}
	if err != nil {
		// A third lock was made in that moment: the one taken cannot go back, and its
		// holder's rename will fail, as after a take-over.
		_ = unix.Unlinkat(asideDir, aside, 0)
	}
	return false
}
