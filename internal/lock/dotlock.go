package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// Dotlock is a held USER.lock file next to a spool. It keeps the directory and the lock file
// open: the lock is refreshed through its descriptor, and removed through the directory's only
// while the name still points at the file this process created.
type Dotlock struct {
	h    *Held  // the lock file, in a duplicate of the caller's directory descriptor
	path string // for messages
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

// dotlockMax is the most of a foreign lock file ever read: "pid:host" fits in it, and a lock
// that is a link to a large or endless file is not read further.
const dotlockMax = 64

// TakeDotlock creates path exclusively, with "pid:host" inside as Dovecot writes it, breaking a
// lock that has not changed for five minutes or whose pid is dead on this host. It retries until
// ctx is done or timeout has passed (then the error wraps ErrTimeout). While held, the lock's
// mtime is refreshed every minute so that other MTAs do not think it stale. The directory is
// opened once; everything after acts through its descriptor.
func TakeDotlock(ctx context.Context, path string, timeout time.Duration) (*Dotlock, error) {
	dir, err := unix.Open(filepath.Dir(path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("lock: dotlock %s: %w", path, &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err})
	}
	defer unix.Close(dir)
	return TakeDotlockAt(ctx, dir, filepath.Base(path), path, timeout)
}

// TakeDotlockAt is TakeDotlock for the lock name in the directory dirfd (a worker's home or
// folder directory, opened without following symlinks); path is how errors name it. dirfd
// stays the caller's: the lock keeps a duplicate.
func TakeDotlockAt(ctx context.Context, dirfd int, name, path string, timeout time.Duration) (*Dotlock, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("lock: dotlock %q: not a file name", name)
	}
	host, _ := os.Hostname()
	content := []byte(fmt.Sprintf("%d:%s", os.Getpid(), host))
	deadline := time.Now().Add(timeout)
	for {
		h, err := CreateFilled(dirfd, name, path, content)
		if err == nil {
			return holdDotlock(dirfd, h, path)
		}
		if !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("lock: dotlock %s: %w", path, err)
		}
		if breakStaleDotlock(dirfd, name, host) {
			continue
		}
		if err := Wait(ctx, deadline); err != nil {
			if errors.Is(err, ErrTimeout) {
				return nil, fmt.Errorf("lock: dotlock %s held by %s for %s: %w", path, dotlockOwner(dirfd, name), timeout, ErrTimeout)
			}
			return nil, err
		}
	}
}

// holdDotlock keeps the lock file h we just made in dirfd and starts refreshing it.
func holdDotlock(dirfd int, h *Held, path string) (*Dotlock, error) {
	dir, err := dupCloexec(dirfd)
	if err != nil {
		_ = h.Remove()
		h.Close()
		return nil, fmt.Errorf("lock: dotlock %s: %w", path, err)
	}
	h.dir = dir
	l := &Dotlock{h: h, path: path, stop: make(chan struct{})}
	l.done.Add(1)
	go l.refresh()
	return l, nil
}

// foreignDotlock is what can safely be learnt about a lock file someone else made.
type foreignDotlock struct {
	st    unix.Stat_t // lstat of the name, never of what a symlink points to
	owner string      // a well-formed "pid:host", or ""
	pid   int
	host  string
}

// readDotlock looks at the lock name in dirfd without following a symlink, without opening
// anything but a regular file, and without blocking: a FIFO or a device is only stat'ed. Of a
// regular file at most dotlockMax bytes are read, and only a well-formed "pid:host" is kept.
func readDotlock(dirfd int, name string) (foreignDotlock, error) {
	var d foreignDotlock
	if err := unix.Fstatat(dirfd, name, &d.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return d, err
	}
	if d.st.Mode&unix.S_IFMT != unix.S_IFREG {
		return d, nil
	}
	fd, err := safefs.Open(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return d, nil
	}
	defer unix.Close(fd)
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil || fst.Mode&unix.S_IFMT != unix.S_IFREG || fst.Dev != d.st.Dev || fst.Ino != d.st.Ino {
		return d, nil
	}
	buf := make([]byte, dotlockMax+1)
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], int64(n))
		if err != nil || m <= 0 {
			break
		}
		n += m
	}
	if n > dotlockMax {
		return d, nil
	}
	d.pid, d.host, d.owner = parseDotlock(string(buf[:n]))
	return d, nil
}

// parseDotlock accepts "pid:host" (a positive decimal pid, a host name of letters, digits, '-',
// '.' and '_'), with an optional final newline, and nothing else.
func parseDotlock(s string) (pid int, host, owner string) {
	s = strings.TrimSuffix(s, "\n")
	pidStr, host, ok := strings.Cut(s, ":")
	if !ok || pidStr == "" || len(pidStr) > 10 || host == "" {
		return 0, "", ""
	}
	for _, c := range pidStr {
		if c < '0' || c > '9' {
			return 0, "", ""
		}
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return 0, "", ""
		}
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, "", ""
	}
	return pid, host, s
}

// dotlockOwner names the holder of a lock for an error message: its "pid:host" when the lock
// is a regular file holding just that, never any other content.
func dotlockOwner(dirfd int, name string) string {
	d, err := readDotlock(dirfd, name)
	switch {
	case err != nil:
		return "another process"
	case d.owner != "":
		return strconv.Quote(d.owner)
	case d.st.Mode&unix.S_IFMT == unix.S_IFREG && d.st.Size == 0:
		return "an empty lock"
	}
	return "an unreadable lock"
}

// breakStaleDotlock removes the lock name in dirfd if it may be broken: unchanged for five
// minutes, or naming a dead pid on this host. The name is removed through the directory, and
// only if it still is the very file judged stale.
func breakStaleDotlock(dirfd int, name, host string) bool {
	d, err := readDotlock(dirfd, name)
	if err != nil {
		return false
	}
	stale := Stale(&d.st, dotlockStale) ||
		d.owner != "" && d.host == host && errors.Is(unix.Kill(d.pid, 0), unix.ESRCH)
	if !stale {
		return false
	}
	// A spool directory has no name of ours to move the lock aside to, as BreakAside does, and
	// a kill would leave it there for nobody to remove: without an atomic compare-and-remove,
	// the window is narrowed to one fstatat.
	var now unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil ||
		now.Dev != d.st.Dev || now.Ino != d.st.Ino || now.Mtim != d.st.Mtim {
		return false
	}
	return unix.Unlinkat(dirfd, name, 0) == nil
}

func (l *Dotlock) refresh() {
	defer l.done.Done()
	t := time.NewTicker(dotlockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			_ = l.h.Touch()
		}
	}
}

// Release removes the lock file if it is still ours.
func (l *Dotlock) Release() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		l.done.Wait()
		if uerr := l.h.Remove(); uerr != nil {
			if errors.Is(uerr, ErrLost) {
				err = fmt.Errorf("lock: dotlock %s was taken over by %s", l.path, dotlockOwner(l.h.dir, l.h.name))
			} else {
				err = fmt.Errorf("lock: dotlock %s: %w", l.path, uerr)
			}
		}
		l.h.Close()
		unix.Close(l.h.dir)
	})
	return err
}

// DotlockPath is the USER.lock file next to a spool.
func DotlockPath(spool string) string {
	return filepath.Join(filepath.Dir(spool), filepath.Base(spool)+".lock")
}

// Dir returns the descriptor of the lock's directory, valid until Release: what is renamed
// beside the lock is renamed through it, in the very directory that was locked.
func (l *Dotlock) Dir() int { return l.h.dir }
