// Package safefs is the one way maildirmig opens a file or directory beneath a directory it
// holds a descriptor on, and the one rule by which it opens a user's home.
//
// maildirmig runs as root inside directories that users own and can change while it works. A
// user who can put a symlink where root expects a directory can hand root's writes, chmods and
// reads to /etc/shadow. Every descriptor-relative open of the maildir and check packages goes
// through [Open], with one policy:
//
//   - name is relative (an absolute name is refused with EXDEV) and has no ".." component (EXDEV);
//   - no component is followed if it is a symlink, the last one included (ELOOP; ENOTDIR for a
//     last component opened O_DIRECTORY);
//   - magic links (/proc/self/fd/N and the like) are never followed;
//   - every descriptor is opened O_CLOEXEC.
//
// On Linux 5.6 and later the kernel enforces this in one call, openat2 with
// RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS, so that a rename racing the lookup
// cannot move it out of the directory (the kernel answers EAGAIN, and Open retries). Where
// openat2 is missing (ENOSYS, or EPERM from a seccomp filter that does not know it), Open walks
// the name one component at a time with openat and O_NOFOLLOW, each step beneath the descriptor
// of the last: a component swapped for a symlink makes the walk fail with ELOOP, never follow it.
// The errors are the kernel's errno values, unwrapped, so callers can word them.
//
// [OpenInRoot] is the other policy, for root's own directories of a system mounted under
// --root (the audit log's, the state directory): symlinks are followed as that system would
// follow them, and the lookup never leaves its root. openat2 is called here and nowhere else.
//
// [OpenHome] is the rule for a home directory: the home is opened without following a symlink
// in its last component, and refused ([ErrUnsafe]) unless it is a directory owned by the user
// that nobody else may write to. Components above the home (/home, a mount point) are root's.
//
// Why not os.Root (Go 1.24): it follows symlinks that stay inside the root, so a symlink a user
// made there (cur/ to ~/.ssh, when the root is the home) still resolves; it ignores O_NOFOLLOW on the last component; it
// has no RENAME_NOREPLACE, which delivery needs so a rename never replaces a message; its Chmod
// and Chown act by path, not on an open descriptor whose identity was checked, and Chown on a
// hard link changes the file it points to, which may be root's. The packages that use safefs
// keep descriptors, check them with fstat, and act on them (fchmod, fchown, renameat2).
package safefs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Resolve is the openat2 resolution policy of every open beneath a directory.
const Resolve = unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// ErrUnsafe is matched (with errors.Is) by the errors of OpenHome that refuse a home.
var ErrUnsafe = errors.New("safefs: unsafe path")

// UnsafeError says which path was refused and why; it matches ErrUnsafe.
type UnsafeError struct {
	Path   string
	Reason string // "is a symlink or not a directory", "is owned by uid 5, not 1000", ...
}

func (e *UnsafeError) Error() string { return e.Path + " " + e.Reason }

// Unwrap lets errors.Is(err, ErrUnsafe) hold.
func (e *UnsafeError) Unwrap() error { return ErrUnsafe }

// noOpenat2 is set once the kernel has said it has no openat2, and by SetFallback.
var noOpenat2 atomic.Bool

// SetFallback makes Open walk component by component with openat O_NOFOLLOW, as on a kernel
// without openat2 (on), or try openat2 again (off). It returns the previous setting. It is for
// tests that prove a caller safe on old kernels; Open sets it itself when openat2 is missing.
func SetFallback(on bool) (was bool) { return noOpenat2.Swap(on) }

// Open opens name beneath dirfd with flags (O_NOFOLLOW and O_CLOEXEC are added) and, with
// O_CREAT, mode, under the policy of the package comment. name may have several components;
// "." opens dirfd's directory afresh. It returns a raw descriptor and an unwrapped errno.
func Open(dirfd int, name string, flags int, mode uint32) (int, error) {
	if err := check(name); err != nil {
		return -1, err
	}
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if !noOpenat2.Load() {
		fd, err := openat2(dirfd, name, flags, mode, Resolve)
		// ENOSYS: a kernel before 5.6. EPERM: a seccomp filter that does not know openat2.
		if err != unix.ENOSYS && err != unix.EPERM {
			return fd, err
		}
		if err == unix.ENOSYS {
			noOpenat2.Store(true)
		}
	}
	return walk(dirfd, components(name), flags, mode)
}

// OpenDir opens the directory name beneath dirfd read-only, as Open does.
func OpenDir(dirfd int, name string) (int, error) {
	return Open(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
}

// check refuses a name against the policy: empty (ENOENT), absolute or with a ".." (EXDEV).
// It does not allocate: it runs before every message file is created.
func check(name string) error {
	if name == "" {
		return unix.ENOENT
	}
	if name[0] == '/' {
		return unix.EXDEV
	}
	for rest := name; rest != ""; {
		c := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			c, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if c == ".." {
			return unix.EXDEV
		}
	}
	return nil
}

// components splits a checked name ("." for the directory itself).
func components(name string) []string {
	var comps []string
	for _, c := range strings.Split(name, "/") {
		if c != "" && c != "." {
			comps = append(comps, c)
		}
	}
	if len(comps) == 0 {
		comps = []string{"."}
	}
	return comps
}

// openat2 is the one call of openat2(2) in maildirmig, with the resolution policy resolve.
func openat2(dirfd int, name string, flags int, mode uint32, resolve uint64) (int, error) {
	if flags&unix.O_CREAT == 0 && flags&unix.O_TMPFILE != unix.O_TMPFILE {
		mode = 0 // openat2, unlike openat, refuses a mode it would not use
	}
	how := &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: resolve}
	for {
		fd, err := unix.Openat2(dirfd, name, how)
		// EAGAIN: a concurrent rename made the lookup racy, and the kernel asks for a retry.
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// walk is the fallback: each directory component is opened O_PATH|O_DIRECTORY|O_NOFOLLOW
// beneath the last (search permission is all a lookup needs, as in openat2), the last
// component with flags.
func walk(dirfd int, comps []string, flags int, mode uint32) (int, error) {
	fd := dirfd
	defer func() {
		if fd != dirfd {
			unix.Close(fd)
		}
	}()
	last := len(comps) - 1
	for _, c := range comps[:last] {
		next, err := openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOTDIR && isSymlink(fd, c) {
			err = unix.ELOOP // what openat2 says of a symlink in the path
		}
		if err != nil {
			return -1, err
		}
		if fd != dirfd {
			unix.Close(fd)
		}
		fd = next
	}
	// A symlink as the last component gives ELOOP, or ENOTDIR with O_DIRECTORY, as in openat2.
	return openat(fd, comps[last], flags, mode)
}

func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func isSymlink(dirfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

// OpenHome opens the home directory path of the user uid read-only and returns its
// descriptor. The home must not be a symlink, must be a directory owned by uid, and must not
// be writable by group or others (a user who shares a writable home cannot be told apart from
// the others who write there); otherwise the error matches ErrUnsafe. A home that does not
// exist gives an *os.PathError wrapping ENOENT.
func OpenHome(path string, uid int) (int, error) {
	fd, err := openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ELOOP || err == unix.ENOTDIR {
			return -1, &UnsafeError{path, "is a symlink or not a directory"}
		}
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	var bad error
	switch {
	case int(st.Uid) != uid:
		bad = &UnsafeError{path, fmt.Sprintf("is owned by uid %d, not %d", st.Uid, uid)}
	case st.Mode&0o022 != 0:
		bad = &UnsafeError{path, fmt.Sprintf("is group or world writable (mode %04o)", st.Mode&0o7777)}
	}
	if bad != nil {
		unix.Close(fd)
		return -1, bad
	}
	return fd, nil
}
