package migrate

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNoMailbox is wrapped by the error OpenSpool returns when the user has no mailbox: not a
// failure, there is simply nothing to migrate.
var ErrNoMailbox = errors.New("migrate: no mailbox")

// ErrUnsafeSpool is wrapped by the errors that refuse a spool for safety reasons.
var ErrUnsafeSpool = errors.New("migrate: unsafe spool")

// OpenSpool opens the mailbox at path for reading and locking without following a symlink and
// without blocking on a FIFO, and refuses it unless it is a regular file owned by uid with a
// single link: a spool that is a symlink or a hard link to /etc/shadow must never be read.
func OpenSpool(path string, uid int) (*os.File, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			return nil, st, fmt.Errorf("%w: %s does not exist", ErrNoMailbox, path)
		case errors.Is(err, unix.ELOOP):
			return nil, st, fmt.Errorf("%w: %s is a symlink", ErrUnsafeSpool, path)
		case errors.Is(err, unix.ENXIO), errors.Is(err, unix.EISDIR):
			// open(2) refuses a socket, and a directory for writing, before fstat could
			// say what it is: "no such device or address" would only puzzle.
			return nil, st, fmt.Errorf("%w: %s is not a regular file", ErrUnsafeSpool, path)
		}
		return nil, st, fmt.Errorf("migrate: spool: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	f := os.NewFile(uintptr(fd), path)
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, st, fmt.Errorf("migrate: spool: %w", &os.PathError{Op: "fstat", Path: path, Err: err})
	}
	if err := CheckSourceOwner(path, &st, uid); err != nil {
		f.Close()
		return nil, st, err
	}
	// Reads must block normally from here on; O_NONBLOCK only guarded the open.
	if err := unix.SetNonblock(fd, false); err != nil {
		f.Close()
		return nil, st, fmt.Errorf("migrate: spool: %w", &os.PathError{Op: "fcntl", Path: path, Err: err})
	}
	return f, st, nil
}

// UnsafeSourceError refuses a source file root would read for a user; it matches
// ErrUnsafeSpool. Name and Reason make a sentence: "/var/mail/bob is owned by uid 0, not 1001".
type UnsafeSourceError struct {
	Name   string
	Reason string
}

func (e *UnsafeSourceError) Error() string {
	return ErrUnsafeSpool.Error() + ": " + e.Name + " " + e.Reason
}

// Is lets errors.Is(err, ErrUnsafeSpool) hold.
func (e *UnsafeSourceError) Is(target error) bool { return target == ErrUnsafeSpool }

// CheckSourceOwner is the rule for every mbox root reads on behalf of the user uid (a spool,
// ~/Mailbox, a file given to convert): st, the file's fstat, must show a regular file owned by
// uid with a single link. Root must not be the one who reads into the user's Maildir a file the
// user could not read (a symlink to /etc/shadow, another user's mbox), nor someone else's file
// under a name the user made (a hard link). The error is an *UnsafeSourceError.
func CheckSourceOwner(name string, st *unix.Stat_t, uid int) error {
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return &UnsafeSourceError{name, "is not a regular file"}
	case int(st.Uid) != uid:
		return &UnsafeSourceError{name, fmt.Sprintf("is owned by uid %d, not %d", st.Uid, uid)}
	case st.Nlink != 1:
		return &UnsafeSourceError{name, fmt.Sprintf("has %d links (a hard link to another file?)", st.Nlink)}
	}
	return nil
}

// RecheckSpool verifies, after locking, that path still names the open file f with one link:
// the lock is only worth something on the file the MTA delivers to.
func RecheckSpool(f *os.File, path string, uid int) (unix.Stat_t, error) {
	var fst, pst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
		return fst, fmt.Errorf("migrate: spool: %w", &os.PathError{Op: "fstat", Path: path, Err: err})
	}
	if err := unix.Lstat(path, &pst); err != nil {
		return fst, fmt.Errorf("%w: %s was removed or replaced while locking: %w", ErrUnsafeSpool, path, err)
	}
	if fst.Dev != pst.Dev || fst.Ino != pst.Ino {
		return fst, fmt.Errorf("%w: %s was replaced while locking", ErrUnsafeSpool, path)
	}
	return fst, CheckSourceOwner(path, &fst, uid)
}

// dupCloexec duplicates fd with close-on-exec set in the same step: a worker for another user
// started at that moment must not inherit it, as it would with dup(2) and a later fcntl.
func dupCloexec(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
}

// renameBeside renames from to to, both names in the directory dirfd, if from still is the
// file dev/ino: renameat2 with RENAME_NOREPLACE never replaces what is at to (a file planted
// there, or a symlink), and acting through dirfd keeps the rename in the directory that was
// locked. The directory is synced after.
func renameBeside(dirfd int, from, to string, dev, ino uint64) error {
	for _, n := range []string{from, to} {
		if n == "" || n == "." || n == ".." || strings.ContainsRune(n, '/') {
			return fmt.Errorf("migrate: rename: %q is not a file name", n)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, from, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("migrate: rename %s: %w", from, err)
	}
	if st.Dev != dev || st.Ino != ino {
		return fmt.Errorf("%w: %s was replaced while locked", ErrUnsafeSpool, from)
	}
	if err := unix.Renameat2(dirfd, from, dirfd, to, unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("migrate: cannot rename %s: %s exists", from, to)
		}
		return fmt.Errorf("migrate: rename %s to %s: %w", from, to, err)
	}
	if err := unix.Fsync(dirfd); err != nil {
		return fmt.Errorf("migrate: rename %s: syncing the directory: %w", from, err)
	}
	return nil
}
