package check

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/maildir"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// ErrUnsafe is wrapped by the errors of MakeSkel and Home.EnsureMaildir that refuse a path because
// it is a symlink, not a directory, or not owned as it must be.
var ErrUnsafe = errors.New("check: unsafe path")

// unsafeError says why a path was refused and matches ErrUnsafe.
type unsafeError struct{ reason string }

func (e *unsafeError) Error() string { return "check: " + e.reason }
func (e *unsafeError) Unwrap() error { return ErrUnsafe }

func unsafef(format string, args ...any) error {
	return &unsafeError{reason: fmt.Sprintf(format, args...)}
}

// MakeSkel makes skelDir/name/{cur,new,tmp} with mode 0700, so that useradd -m gives every new
// user a Maildir that Dovecot and Postfix can use from the first login or delivery. It is
// idempotent: what exists keeps its content and only gets mode 0700. A skel Maildir, cur, new or
// tmp that is a symlink or not a directory is refused (errors.Is(err, ErrUnsafe)): useradd would
// copy the symlink into every new home. skelDir itself is created 0755 when missing. It returns
// a line for each change made.
func MakeSkel(skelDir, name string) ([]string, error) {
	if err := os.MkdirAll(skelDir, 0o755); err != nil {
		return nil, fmt.Errorf("check: skel: %w", err)
	}
	fd, err := unix.Open(skelDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("check: skel: %w", &os.PathError{Op: "open", Path: skelDir, Err: err})
	}
	defer unix.Close(fd)
	return ensureTree(nil, fd, filepath.Join(skelDir, name), name, true)
}

// ensureMaildir makes u's Maildir name as Home.EnsureMaildir says, and reports whether it
// made one.
func ensureMaildir(h *Home, u User, name string) (bool, error) {
	h.look()
	home, err := safefs.OpenHome(u.Home, u.UID)
	if errors.Is(err, unix.EACCES) {
		// Closed to the user: say why when it is not even theirs, as a home root looked at would be.
		var st unix.Stat_t
		if unix.Lstat(u.Home, &st) == nil && int(st.Uid) != u.UID {
			err = &safefs.UnsafeError{Path: u.Home, Reason: fmt.Sprintf("is owned by uid %d, not %d", st.Uid, u.UID)}
		}
	}
	if errors.Is(err, safefs.ErrUnsafe) {
		return false, unsafef("user %s: home %v", u.Name, err)
	}
	if err != nil {
		return false, fmt.Errorf("check: user %s: %w", u.Name, err)
	}
	defer unix.Close(home)
	h.look()
	var st unix.Stat_t
	err = unix.Fstatat(home, name, &st, nofollow)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return false, fmt.Errorf("check: user %s: %w", u.Name, &os.PathError{Op: "fstatat", Path: filepath.Join(u.Home, name), Err: err})
	}
	if _, err := ensureTree(h, home, filepath.Join(u.Home, name), name, false); err != nil {
		return false, fmt.Errorf("check: user %s: %w", u.Name, err)
	}
	return true, nil
}

// ensureTree makes name and its cur, new and tmp beneath dfd, mode 0700, as whoever runs it:
// in a home, the user (h counts the work); in /etc/skel, root (h is nil). With fixModes,
// existing directories get mode 0700 too.
func ensureTree(h *Home, dfd int, path, name string, fixModes bool) ([]string, error) {
	var changes []string
	md, ch, err := ensureDir(h, dfd, path, name, fixModes)
	if err != nil {
		return changes, err
	}
	defer unix.Close(md)
	changes = append(changes, ch...)
	for _, sub := range []string{"cur", "new", "tmp"} {
		fd, ch, err := ensureDir(h, md, filepath.Join(path, sub), sub, fixModes)
		if err != nil {
			return changes, err
		}
		unix.Close(fd)
		changes = append(changes, ch...)
	}
	return changes, nil
}

// ensureDir opens (creating it when missing) the directory name beneath dfd without following
// a symlink, and returns its descriptor.
func ensureDir(h *Home, dfd int, path, name string, fixMode bool) (int, []string, error) {
	var changes []string
	var st unix.Stat_t
	h.look()
	err := unix.Fstatat(dfd, name, &st, nofollow)
	if errors.Is(err, unix.ENOENT) {
		if err := mkdir0700(dfd, name); err != nil {
			return -1, nil, fmt.Errorf("%s: %w", path, err)
		}
		changes = append(changes, "created "+path)
	} else if err != nil {
		return -1, nil, &os.PathError{Op: "fstatat", Path: path, Err: err}
	} else if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -1, nil, unsafef("%s is a %s, not a directory", path, maildir.FileType(st.Mode))
	}
	fd, err := safefs.OpenDir(dfd, name)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return -1, nil, unsafef("%s changed into a symlink or file", path)
	}
	if err != nil {
		return -1, nil, &os.PathError{Op: "openat", Path: path, Err: err}
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if fixMode && st.Mode&permBits != wantDir {
		if err := unix.Fchmod(fd, wantDir); err != nil {
			unix.Close(fd)
			return -1, nil, &os.PathError{Op: "fchmod", Path: path, Err: err}
		}
		changes = append(changes, fmt.Sprintf("chmod %04o %s (was %04o)", wantDir, path, st.Mode&permBits))
	}
	return fd, changes, nil
}
