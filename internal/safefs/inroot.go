package safefs

import (
	"strings"

	"golang.org/x/sys/unix"
)

// ResolveInRoot is the openat2 resolution policy of OpenInRoot.
const ResolveInRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// maxSymlinks is how many symlinks one lookup may follow before it fails with ELOOP, as in
// the kernel (MAXSYMLINKS).
const maxSymlinks = 40

// OpenInRoot opens name as the system whose "/" is the directory rootfd would: symlinks are
// followed, an absolute one (and an absolute name) taken relative to rootfd, and ".." stops at
// rootfd, so that the lookup never leaves it; magic links (/proc/self/fd/N and the like) are
// refused with ELOOP. O_CLOEXEC is added to flags; mode is used with O_CREAT. It returns a raw
// descriptor and an unwrapped errno.
//
// It is the policy for root's own directories of a system mounted under --root (/var/log,
// /var/lib), where a symlink such as /var/log -> /srv/log is the administrator's and must be
// followed as that system would. It is not a policy for anything a user owns: use Open there.
//
// The kernel enforces it in one call, openat2 with RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS. Where
// openat2 is missing (ENOSYS, or EPERM from a seccomp filter), OpenInRoot resolves the name in
// user space, as Open's fallback does: one component at a time, each opened with O_NOFOLLOW
// beneath the directory opened last; a symlink is read (readlinkat) and its target resolved the
// same way, from rootfd when it is absolute; ".." goes back to the directory opened before,
// never through the kernel, and goes no higher than rootfd. Every symlink in /proc is refused,
// magic or not, since user space cannot tell them apart. Unlike openat2, the walk cannot see a
// directory it went through being moved out of the root meanwhile: the directories it is for
// are root's, and only root can move them.
func OpenInRoot(rootfd int, name string, flags int, mode uint32) (int, error) {
	if name == "" {
		return -1, unix.ENOENT // as openat2 says
	}
	flags |= unix.O_CLOEXEC
	if !noOpenat2.Load() {
		fd, err := openat2(rootfd, name, flags, mode, ResolveInRoot)
		// ENOSYS: a kernel before 5.6. EPERM: a seccomp filter that does not know openat2.
		if err != unix.ENOSYS && err != unix.EPERM {
			return fd, err
		}
		if err == unix.ENOSYS {
			noOpenat2.Store(true)
		}
	}
	return walkInRoot(rootfd, name, flags, mode)
}

// walkInRoot is OpenInRoot's fallback. dirs holds the directories opened so far, rootfd
// first; only the ones after it are walkInRoot's to close.
func walkInRoot(rootfd int, name string, flags int, mode uint32) (int, error) {
	dirs := []int{rootfd}
	defer func() {
		for _, fd := range dirs[1:] {
			unix.Close(fd)
		}
	}()
	pending := components(strings.TrimLeft(name, "/"))
	links := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		dir := dirs[len(dirs)-1]
		switch {
		case c == ".":
			continue
		case c == "..":
			if len(dirs) > 1 {
				unix.Close(dir)
				dirs = dirs[:len(dirs)-1]
			}
			continue
		}
		last := len(pending) == 0
		var fd int
		var err error
		if last {
			fd, err = openat(dir, c, flags|unix.O_NOFOLLOW, mode)
		} else {
			fd, err = openat(dir, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
		if err == nil {
			if last {
				return fd, nil
			}
			dirs = append(dirs, fd)
			continue
		}
		// A symlink opened O_NOFOLLOW fails with ELOOP, or ENOTDIR with O_DIRECTORY.
		if err != unix.ELOOP && err != unix.ENOTDIR || !isSymlink(dir, c) || last && flags&unix.O_NOFOLLOW != 0 {
			return -1, err
		}
		if links++; links > maxSymlinks {
			return -1, unix.ELOOP
		}
		var fs unix.Statfs_t
		if unix.Fstatfs(dir, &fs) != nil || fs.Type == unix.PROC_SUPER_MAGIC {
			return -1, unix.ELOOP
		}
		target, err := readlinkat(dir, c)
		if err != nil {
			return -1, err
		}
		if target == "" {
			return -1, unix.ENOENT
		}
		if strings.HasPrefix(target, "/") {
			for _, fd := range dirs[1:] {
				unix.Close(fd)
			}
			dirs = dirs[:1]
		}
		pending = append(components(strings.TrimLeft(target, "/")), pending...)
	}
	// The name ended in the directory reached last (".", "a/..", "/"): open it with flags.
	return openat(dirs[len(dirs)-1], ".", flags, mode)
}

// readlinkat reads the target of the symlink name in dirfd.
func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
