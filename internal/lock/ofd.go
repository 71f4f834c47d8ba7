package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

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
			unlockOFD(f)
			return fmt.Errorf("lock: flock %s: %w", f.Name(), err)
		}
		if err := Wait(ctx, deadline); err != nil {
			unlockOFD(f)
			if errors.Is(err, ErrTimeout) {
				return fmt.Errorf("lock: flock %s held for %s: %w", f.Name(), timeout, ErrTimeout)
			}
			return err
		}
	}
}

// Shared takes an OFD read lock on the whole of f, as Dovecot does to read an mbox: it keeps
// out every writer that takes fcntl locks (Dovecot, Postfix, procmail, mutt) and needs no
// write access to the file.
func Shared(ctx context.Context, f *os.File, timeout time.Duration) error {
	return lockOFD(ctx, f, unix.F_RDLCK, time.Now().Add(timeout), timeout)
}

// lockOFD takes an OFD lock of type typ (F_RDLCK or F_WRLCK) on the whole of f, retrying
// until deadline. An OFD lock conflicts with the classic fcntl locks Postfix, Dovecot,
// procmail and mutt take; the error of a timeout names the holder when the kernel says.
func lockOFD(ctx context.Context, f *os.File, typ int16, deadline time.Time, timeout time.Duration) error {
	for {
		err := tryOFD(int(f.Fd()), typ)
		if err == nil {
			return nil
		}
		if !busy(err) {
			return fmt.Errorf("lock: fcntl lock %s: %w", f.Name(), err)
		}
		if err := Wait(ctx, deadline); err != nil {
			if errors.Is(err, ErrTimeout) {
				return fmt.Errorf("lock: fcntl lock %s held by %s for %s: %w", f.Name(), ofdHolder(f), timeout, ErrTimeout)
			}
			return err
		}
	}
}

// tryOFD takes an OFD lock of type typ on the whole of the open file fd without waiting. It
// returns the errno unwrapped: EAGAIN or EACCES (see busy) when another lock is in the way.
func tryOFD(fd int, typ int16) error {
	lk := unix.Flock_t{Type: typ}
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
		if err != unix.EINTR {
			return err
		}
	}
}

// busy reports whether err is F_OFD_SETLK's answer that a conflicting lock is held: POSIX
// allows EACCES as well as EAGAIN.
func busy(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES)
}

func unlockOFD(f *os.File) {
	lk := unix.Flock_t{Type: unix.F_UNLCK}
	_ = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// conflicting returns the lock that keeps a write lock on the open file fd out, or a lock of
// type F_UNLCK when none does. It only looks (F_OFD_GETLK).
func conflicting(fd int) (unix.Flock_t, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk)
	return lk, err
}

// ofdHolder names the process holding a conflicting classic lock, when the kernel says.
func ofdHolder(f *os.File) string {
	if lk, err := conflicting(int(f.Fd())); err == nil && lk.Pid > 0 {
		return fmt.Sprintf("pid %d", lk.Pid)
	}
	return "another process"
}
