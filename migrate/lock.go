package migrate

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

// ErrLockTimeout is wrapped by the error returned when a spool lock could not be taken in time.
var ErrLockTimeout = errors.New("migrate: lock timeout")

// Dotlock timings, as Postfix (stale_lock_time 500s) and Dovecot (mbox_dotlock_change_timeout
// 2 min) treat them, rounded to what SPEC.md promises.
const (
	dotlockStale   = 5 * time.Minute
	dotlockRefresh = 60 * time.Second
	lockPoll       = 100 * time.Millisecond
)

// Dotlock is a held USER.lock file next to a spool.
type Dotlock struct {
	path    string
	content string
	stop    chan struct{}
	done    sync.WaitGroup
	once    sync.Once
}

// TakeDotlock creates path exclusively, with "pid:host" inside as Dovecot writes it, breaking a
// lock that has not changed for five minutes or whose pid is dead on this host. It retries until
// ctx is done or timeout has passed (then the error wraps ErrLockTimeout). While held, the lock's
// mtime is refreshed every minute so that other MTAs do not think it stale.
func TakeDotlock(ctx context.Context, path string, timeout time.Duration) (*Dotlock, error) {
	host, _ := os.Hostname()
	content := fmt.Sprintf("%d:%s", os.Getpid(), host)
	deadline := time.Now().Add(timeout)
	for {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			_, werr := unix.Write(fd, []byte(content))
			cerr := unix.Close(fd)
			if werr != nil || cerr != nil {
				_ = os.Remove(path)
				return nil, fmt.Errorf("migrate: dotlock %s: %w", path, errors.Join(werr, cerr))
			}
			l := &Dotlock{path: path, content: content, stop: make(chan struct{})}
			l.done.Add(1)
			go l.refresh()
			return l, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("migrate: dotlock %s: %w", path, err)
		}
		if dotlockIsStale(path, host) && os.Remove(path) == nil {
			continue
		}
		if err := sleepUntil(ctx, deadline); err != nil {
			if errors.Is(err, ErrLockTimeout) {
				return nil, fmt.Errorf("migrate: dotlock %s held by %s for %s: %w", path, dotlockOwner(path), timeout, ErrLockTimeout)
			}
			return nil, err
		}
	}
}

// sleepUntil waits one poll interval, or returns ErrLockTimeout past deadline, or ctx's error.
func sleepUntil(ctx context.Context, deadline time.Time) error {
	if !time.Now().Before(deadline) {
		return ErrLockTimeout
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

func dotlockOwner(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return "another process"
	}
	return strconv.Quote(strings.TrimSpace(string(b)))
}

// dotlockIsStale reports whether the lock at path may be broken: unchanged for five minutes,
// or naming a dead pid on this host.
func dotlockIsStale(path, host string) bool {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false
	}
	if time.Since(time.Unix(st.Mtim.Unix())) > dotlockStale {
		return true
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	pidStr, lockHost, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok || lockHost != host {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(unix.Kill(pid, 0), unix.ESRCH)
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
			now := time.Now()
			_ = os.Chtimes(l.path, now, now)
		}
	}
}

// Release removes the lock file if it is still ours.
func (l *Dotlock) Release() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		l.done.Wait()
		b, rerr := os.ReadFile(l.path)
		if rerr != nil {
			err = fmt.Errorf("migrate: dotlock %s: %w", l.path, rerr)
			return
		}
		if string(b) != l.content {
			err = fmt.Errorf("migrate: dotlock %s was taken over by %s", l.path, dotlockOwner(l.path))
			return
		}
		if rerr := os.Remove(l.path); rerr != nil {
			err = fmt.Errorf("migrate: dotlock: %w", rerr)
		}
	})
	return err
}

// LockFile takes an OFD write lock on the whole of f (it conflicts with the classic fcntl locks
// Postfix, Dovecot and procmail take, and is tied to this open file, not to the process), and
// with withFlock an flock too, retrying until timeout or ctx is done. The locks are released when
// f is closed.
func LockFile(ctx context.Context, f *os.File, timeout time.Duration, withFlock bool) error {
	deadline := time.Now().Add(timeout)
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			return fmt.Errorf("migrate: fcntl lock %s: %w", f.Name(), err)
		}
		if err := sleepUntil(ctx, deadline); err != nil {
			if errors.Is(err, ErrLockTimeout) {
				return fmt.Errorf("migrate: fcntl lock %s held by %s for %s: %w", f.Name(), fcntlHolder(f), timeout, ErrLockTimeout)
			}
			return err
		}
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
			return fmt.Errorf("migrate: flock %s: %w", f.Name(), err)
		}
		if err := sleepUntil(ctx, deadline); err != nil {
			unlockFcntl(f)
			if errors.Is(err, ErrLockTimeout) {
				return fmt.Errorf("migrate: flock %s held for %s: %w", f.Name(), timeout, ErrLockTimeout)
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

// dotlockPath is the USER.lock file next to a spool.
func dotlockPath(spool string) string {
	return filepath.Join(filepath.Dir(spool), filepath.Base(spool)+".lock")
}
