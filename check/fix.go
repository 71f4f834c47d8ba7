package check

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// The repairs below run with the user's filesystem identity when check runs as root (asUser),
// and act only through descriptors opened without following symlinks: a user who swaps a file
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

// mkdir creates the directory name beneath the Maildir mfd, mode 0700, owned by the user.
func (c *checker) mkdir(mfd int, name string) error {
	return mkdirOwned(mfd, name, c.uid, c.gid)
}

// mkdirOwned creates name beneath dfd with mode 0700 and, when it ends up root's (MakeSkel, or a
// caller that is root in full), hands it to uid and gid. The chown goes through a descriptor
// opened on what we created, never by path.
func mkdirOwned(dfd int, name string, uid, gid int) error {
	if err := unix.Mkdirat(dfd, name, wantDir); err != nil {
		return &os.PathError{Op: "mkdirat", Path: name, Err: err}
	}
	fd, err := safefs.OpenDir(dfd, name)
	if err != nil {
		return &os.PathError{Op: "openat", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	// Only root can give a directory away; anyone else creates their own.
	if os.Geteuid() == 0 && st.Uid == 0 && uid != 0 {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return &os.PathError{Op: "fchown", Path: name, Err: err}
		}
	}
	// The umask may have taken bits away; 0700 is what Dovecot and the guides expect.
	if err := unix.Fchmod(fd, wantDir); err != nil {
		return &os.PathError{Op: "fchmod", Path: name, Err: err}
	}
	return nil
}
