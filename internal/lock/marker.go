package lock

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// ErrNotMarker is matched by the error of ProbeMarker for a file that cannot be a marker.
var ErrNotMarker = errors.New("lock: not a regular file with one link")

// CreateMarker creates the liveness marker name in dir (exclusive create, mode 0600, read and
// write, no symlink followed) and takes an OFD write lock on it, which says that this process
// is alive until the file is closed or the process dies. path is how the file and the errors
// name it. It fails with EEXIST (errors.Is) when name exists, and with ErrLost when the name
// no longer was the file once it was locked: a prober found it unlocked in that moment, took
// it for a dead process's marker and removed it. Either way, try again under another name.
// Other errors are *os.PathError values, whose Op says which step failed.
func CreateMarker(dir int, name, path string) (*os.File, error) {
	fd, err := safefs.Open(dir, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	err = tryOFD(fd, unix.F_WRLCK)
	if err == nil {
		var a, b unix.Stat_t
		err = unix.Fstat(fd, &a)
		if err == nil && unix.Fstatat(dir, name, &b, unix.AT_SYMLINK_NOFOLLOW) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
			return f, nil
		}
	}
	f.Close()
	if err != nil && !busy(err) {
		return nil, &os.PathError{Op: "lock", Path: path, Err: err}
	}
	return nil, ErrLost
}

// ProbeMarker says whether the process of the liveness marker name in dir is alive: the
// marker is there and another open file description holds its lock. For a dead process's
// marker it returns the file with the lock taken, so that no other prober acts on what that
// process left at the same time; f is nil when the marker is gone. A dead process's marker is
// the prober's to write to, so it must be a regular file with one link, not a hard link a user
// made to some other file: else the error matches ErrNotMarker. path is how the file and the
// errors name it; other errors are *os.PathError values.
func ProbeMarker(dir int, name, path string) (alive bool, f *os.File, err error) {
	fd, err := safefs.Open(dir, name, unix.O_RDWR|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err == unix.ENOENT {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		unix.Close(fd)
		return false, nil, ErrNotMarker
	}
	if err := tryOFD(fd, unix.F_WRLCK); err != nil {
		unix.Close(fd)
		if busy(err) {
			return true, nil, nil
		}
		return false, nil, &os.PathError{Op: "lock", Path: path, Err: err}
	}
	return false, os.NewFile(uintptr(fd), path), nil
}

// MarkerHeld reports whether the liveness marker name in dir is there and locked, by this
// process or another: it only looks (F_OFD_GETLK sees even a lock of this very process, since
// OFD locks belong to open files), and never follows a symlink.
func MarkerHeld(dir int, name string) bool {
	fd, err := safefs.Open(dir, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	lk, err := conflicting(fd)
	return err == nil && lk.Type != unix.F_UNLCK
}
