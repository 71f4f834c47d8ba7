// Package lock takes the locks Postfix, Dovecot and procmail take on an mbox, so that
// maildirmig can read one while an MTA or a POP3 server is still running.
//
// A dotlock (Dotlock) is NAME.lock beside the mbox, made with exclusive create through the
// directory's descriptor, with "pid:host" inside as Dovecot writes it. A foreign lock is
// broken when it has not changed for five minutes or its pid is dead on this host; a held one
// is refreshed every minute and removed only while its name is still the file this process
// made. File takes an OFD write lock on the whole file (it conflicts with the classic fcntl
// locks the MTAs take, and belongs to the open file, not the process), and an flock too where
// the MTA takes one; Shared takes an OFD read lock, as Dovecot does to read. Every wait ends
// at a timeout, with an error wrapping ErrTimeout that names the holder when it can be known.
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
)

// ErrTimeout is wrapped by the error returned when a lock could not be taken in time.
var ErrTimeout = errors.New("lock: timeout")

// Dotlock timings, as Postfix (stale_lock_time 500s) and Dovecot (mbox_dotlock_change_timeout
// 2 min) treat them, rounded to what SPEC.md promises.
const (
	dotlockStale   = 5 * time.Minute
	dotlockRefresh = 60 * time.Second
	lockPoll       = 100 * time.Millisecond
)

// Dotlock is a held USER.lock file next to a spool. It keeps the directory and the lock file
// open: the lock is refreshed through its descriptor, and removed through the directory's only
// while the name still points at the file this process created.
type Dotlock struct {
	dir  int    // the directory holding the lock
	name string // the lock's name in dir
	path string // for messages
	fd   int    // the lock file we created
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
	content := fmt.Sprintf("%d:%s", os.Getpid(), host)
	deadline := time.Now().Add(timeout)
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0o600)
		if err == nil {
			return holdDotlock(dirfd, fd, name, path, content)
		}
		if !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("lock: dotlock %s: %w", path, err)
		}
		if breakStaleDotlock(dirfd, name, host) {
			continue
		}
		if err := sleepUntil(ctx, deadline); err != nil {
			if errors.Is(err, ErrTimeout) {
				return nil, fmt.Errorf("lock: dotlock %s held by %s for %s: %w", path, dotlockOwner(dirfd, name), timeout, ErrTimeout)
			}
			return nil, err
		}
	}
}

// sleepUntil waits one poll interval, or returns ErrTimeout past deadline, or ctx's error.
func sleepUntil(ctx context.Context, deadline time.Time) error {
	if !time.Now().Before(deadline) {
		return ErrTimeout
	}
	t := time.NewTimer(min(lockPoll, time.Until(deadline)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// holdDotlock fills in the lock file fd we just created and starts refreshing it.
func holdDotlock(dirfd, fd int, name, path, content string) (*Dotlock, error) {
	l := &Dotlock{dir: -1, name: name, path: path, fd: fd, stop: make(chan struct{})}
	n, err := unix.Write(fd, []byte(content))
	if err == nil && n != len(content) {
		err = errors.New("short write")
	}
	if err == nil {
		l.dir, err = dupCloexec(dirfd)
	}
	if err != nil {
		if l.dir < 0 {
			l.dir = dirfd
		}
		_ = l.unlinkOurs()
		unix.Close(fd)
		return nil, fmt.Errorf("lock: dotlock %s: %w", path, err)
	}
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
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
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
	stale := time.Since(time.Unix(d.st.Mtim.Unix())) > dotlockStale ||
		d.owner != "" && d.host == host && errors.Is(unix.Kill(d.pid, 0), unix.ESRCH)
	if !stale {
		return false
	}
	// Dotlocks have no atomic compare-and-remove; the window is narrowed to one fstatat.
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
			_ = futimensNow(l.fd)
		}
	}
}

// futimensNow sets the mtime and atime of the open file fd to now: futimens(fd, NULL), which
// touches the file we hold whatever its name points at by now.
func futimensNow(fd int) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// unlinkOurs removes the lock's name if it still is the file we created.
func (l *Dotlock) unlinkOurs() error {
	var ours, now unix.Stat_t
	if err := unix.Fstat(l.fd, &ours); err != nil {
		return err
	}
	if err := unix.Fstatat(l.dir, l.name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if now.Dev != ours.Dev || now.Ino != ours.Ino {
		return errDotlockTaken
	}
	return unix.Unlinkat(l.dir, l.name, 0)
}

var errDotlockTaken = errors.New("taken over")

// Release removes the lock file if it is still ours.
func (l *Dotlock) Release() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		l.done.Wait()
		if uerr := l.unlinkOurs(); uerr != nil {
			if errors.Is(uerr, errDotlockTaken) {
				err = fmt.Errorf("lock: dotlock %s was taken over by %s", l.path, dotlockOwner(l.dir, l.name))
			} else {
				err = fmt.Errorf("lock: dotlock %s: %w", l.path, uerr)
			}
		}
		unix.Close(l.fd)
		unix.Close(l.dir)
	})
	return err
}

// File takes an OFD write lock on the whole of f (it conflicts with the classic fcntl locks
// Postfix, Dovecot and procmail take, and is tied to this open file, not to the process), and
// with withFlock an flock too, retrying until timeout or ctx is done. The locks are released when
// f is closed.
func File(ctx context.Context, f *os.File, timeout time.Duration, withFlock bool) error {
	deadline := time.Now().Add(timeout)
	if err := lockOFD(ctx, f, unix.F_WRLCK, deadline, timeout); err != nil {
		return err
	}
	if !withFlock {
		return nil
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			unlockFcntl(f)
			return fmt.Errorf("lock: flock %s: %w", f.Name(), err)
		}
		if err := sleepUntil(ctx, deadline); err != nil {
			unlockFcntl(f)
			if errors.Is(err, ErrTimeout) {
				return fmt.Errorf("lock: flock %s held for %s: %w", f.Name(), timeout, ErrTimeout)
			}
			return err
		}
	}
}

// lockOFD takes an OFD lock of type typ (F_RDLCK or F_WRLCK) on the whole of f, retrying
// until deadline. An OFD lock conflicts with the classic fcntl locks Postfix, Dovecot,
// procmail and mutt take; the error of a timeout names the holder when the kernel says.
func lockOFD(ctx context.Context, f *os.File, typ int16, deadline time.Time, timeout time.Duration) error {
	lk := unix.Flock_t{Type: typ}
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			return fmt.Errorf("lock: fcntl lock %s: %w", f.Name(), err)
		}
		if err := sleepUntil(ctx, deadline); err != nil {
			if errors.Is(err, ErrTimeout) {
				return fmt.Errorf("lock: fcntl lock %s held by %s for %s: %w", f.Name(), fcntlHolder(f), timeout, ErrTimeout)
			}
			return err
		}
	}
}

func unlockFcntl(f *os.File) {
	lk := unix.Flock_t{Type: unix.F_UNLCK}
	_ = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// fcntlHolder names the process holding a conflicting classic lock, when the kernel says.
func fcntlHolder(f *os.File) string {
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err == nil && lk.Pid > 0 {
		return fmt.Sprintf("pid %d", lk.Pid)
	}
	return "another process"
}

// DotlockPath is the USER.lock file next to a spool.
func DotlockPath(spool string) string {
	return filepath.Join(filepath.Dir(spool), filepath.Base(spool)+".lock")
}

// Dir returns the descriptor of the lock's directory, valid until Release: what is renamed
// beside the lock is renamed through it, in the very directory that was locked.
func (l *Dotlock) Dir() int { return l.dir }

// Shared takes an OFD read lock on the whole of f, as Dovecot does to read an mbox: it keeps
// out every writer that takes fcntl locks (Dovecot, Postfix, procmail, mutt) and needs no
// write access to the file.
func Shared(ctx context.Context, f *os.File, timeout time.Duration) error {
	return lockOFD(ctx, f, unix.F_RDLCK, time.Now().Add(timeout), timeout)
}

// dupCloexec duplicates fd with close-on-exec set in the same step: a worker for another user
// started at that moment must not inherit it, as it would with dup(2) and a later fcntl.
func dupCloexec(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
}
