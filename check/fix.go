package check

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// The repairs below run as the user (Home, in a worker of theirs when check runs as root), and
// act only through descriptors opened without following symlinks: a user who swaps a file
// for a symlink between our look and our fix makes the fix fail, never land elsewhere.

// chmodAt sets the mode of the file or directory name beneath dfd, provided it is still the one
// st describes. Linux has no fchmodat(AT_SYMLINK_NOFOLLOW), and opening the file for reading could
// fail on a mode without read permission, so the file is pinned with O_PATH and changed through
// its /proc/self/fd link, which names the inode itself.
func chmodAt(dfd int, name string, st *unix.Stat_t, mode uint32) error {
	fd, err := safefs.Open(dfd, name, unix.O_PATH, 0)
	if err != nil {
		return &os.PathError{Op: "openat", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		return &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	if now.Dev != st.Dev || now.Ino != st.Ino || now.Mode&unix.S_IFMT != st.Mode&unix.S_IFMT || now.Uid != st.Uid {
		return errors.New("check: file replaced while fixing")
	}
	proc := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Fchmodat(unix.AT_FDCWD, proc, mode, 0); err != nil {
		return &os.PathError{Op: "chmod", Path: name, Err: err}
	}
	return nil
}

// mkdir creates the directory name beneath the Maildir mfd, mode 0700: the user's, since it
// runs as the user.
func (c *walker) mkdir(mfd int, name string) error {
	return mkdir0700(mfd, name)
}

// mkdir0700 creates name beneath dfd with mode 0700, whatever the umask: the mode Dovecot and
// the guides expect. The directory is its creator's: the user's in a home, root's in
// /etc/skel. The chmod goes through a descriptor opened on what was created, never by path.
func mkdir0700(dfd int, name string) error {
	if err := unix.Mkdirat(dfd, name, wantDir); err != nil {
		return &os.PathError{Op: "mkdirat", Path: name, Err: err}
	}
	fd, err := safefs.OpenDir(dfd, name)
	if err != nil {
		return &os.PathError{Op: "openat", Path: name, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, wantDir); err != nil {
		return &os.PathError{Op: "fchmod", Path: name, Err: err}
	}
	return nil
}
