// Package lock is how maildirmig locks: the dotlocks and fcntl locks Postfix, Dovecot and
// procmail take on an mbox, Dovecot's dotlock on a Maildir control file, and the marker file
// whose lock says that a process is still alive. The callers keep their protocols (which
// name to lock, what a marker records, whom a lock may be taken from); the system calls, the
// stale rules and the races they must survive are here.
//
// A spool dotlock ([Dotlock]) is NAME.lock beside the mbox, made with exclusive create through
// the directory's descriptor, with "pid:host" inside as Dovecot writes it. A foreign one is
// broken when it has not changed for five minutes or its pid is dead on this host; a held one
// is refreshed every minute and removed only while its name is still the file this process
// made.
//
// A control-file dotlock ([Held]) is Dovecot's NAME.lock on dovecot-uidlist or
// dovecot-keywords, whose content is the next version of the file. It has no room for a pid,
// so whoever takes it says elsewhere that it is theirs; it may be made under a name of the
// taker's first and linked into place ([Held.Link]), is broken after [ControlStale] by moving
// it aside first ([BreakAside]), and is checked to be still the file made ([Held.Ours]) before
// it is renamed or removed.
//
// [File] takes an OFD write lock on a whole mbox (it conflicts with the classic fcntl locks
// the MTAs take, and belongs to the open file, not the process), and an flock too where the
// MTA takes one; [Shared] takes an OFD read lock, as Dovecot does to read. Every wait ends at
// a timeout, with an error wrapping [ErrTimeout] that names the holder when it can be known.
//
// A liveness marker ([CreateMarker], [ProbeMarker], [MarkerHeld]) is a file its process holds
// an OFD write lock on for as long as it lives: the kernel drops the lock when the process
// dies, however it dies, so a marker that can be locked is a dead process's, with no pid to
// check and no trap in a reused pid or another PID namespace.
//
// Every descriptor-relative open goes through internal/safefs: no symlink is followed.
package lock

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTimeout is wrapped by the error returned when a lock could not be taken in time.
var ErrTimeout = errors.New("lock: timeout")

// ErrLost is matched by the error of a lock file that another process took over as stale
// while this one held it: the name is theirs now.
var ErrLost = errors.New("taken over by another process while this one held it")

// Timings of the spool dotlock. Postfix takes over a dotlock that has not changed for 500
// seconds (stale_lock_time), Dovecot one unchanged for 2 minutes (mbox_dotlock_change_timeout):
// ours waits five minutes, between the two, and refreshes its own lock every minute, which
// neither takes for stale. lockPoll is how often every wait for a lock tries again.
const (
	dotlockStale   = 5 * time.Minute
	dotlockRefresh = 60 * time.Second
	lockPoll       = 100 * time.Millisecond
)

// ControlStale is how old Dovecot lets the dotlock of a Maildir control file get before it
// takes it over (its dotlock stale timeout for dovecot-uidlist.lock): a holder must refresh it
// more often than that, and a lock nobody claims may be broken once it is older.
const ControlStale = 2 * time.Minute

// Stale reports whether st, a lock file's lstat, has not changed for longer than age.
func Stale(st *unix.Stat_t, age time.Duration) bool {
	return time.Since(time.Unix(st.Mtim.Unix())) > age
}

// Wait waits one poll interval before the next try at a lock, or less when deadline comes
// first. It returns ErrTimeout once deadline has passed, and ctx's error once ctx is done.
func Wait(ctx context.Context, deadline time.Time) error {
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

// dupCloexec duplicates fd with close-on-exec set in the same step: a worker for another user
// started at that moment must not inherit it, as it would with dup(2) and a later fcntl.
func dupCloexec(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
}
