package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// ErrUnsafe is matched (with errors.Is) by the errors that refuse a Maildir,
// cur, new or tmp that is a symlink or not a directory, and a message file
// that is not a regular file.
var ErrUnsafe = errors.New("maildir: unsafe path")

// unsafeError says which path was refused and why, and matches ErrUnsafe.
type unsafeError struct {
	path   string
	reason string
}

func (e *unsafeError) Error() string {
	return "maildir: unsafe path " + e.path + ": " + e.reason
}

func (e *unsafeError) Unwrap() error { return ErrUnsafe }

// Subdirectories of a Maildir, in the order Dir keeps their descriptors.
const (
	subCur = iota
	subNew
	subTmp
)

var subNames = [...]string{"cur", "new", "tmp"}

// Dir is an open Maildir: file descriptors on the Maildir and its cur, new and tmp.
type Dir struct {
	fd   int
	sub  [3]int
	path string
}

// OpenAt opens the Maildir name (one or more path components, no "..") beneath
// the directory dirfd without following any symlink. With create, missing
// Maildir/cur/new/tmp are created 0700 (and so are missing intermediate
// components of name). A Maildir, cur, new or tmp that is a symlink or not a
// directory is refused with an error that says which and why
// (errors.Is(err, ErrUnsafe)).
func OpenAt(dirfd int, name string, create bool) (*Dir, error) {
	return openAt(dirfd, name, create, displayDir(dirfd))
}

// Open opens the Maildir at path: the parent directory is opened by path (the
// caller owns it), the last component and below as in OpenAt.
func Open(path string, create bool) (*Dir, error) {
	clean := filepath.Clean(path)
	parent, base := filepath.Split(clean)
	if base == "" || base == "." || base == ".." || base == "/" {
		return nil, fmt.Errorf("maildir: open %s: not a Maildir name", path)
	}
	if parent == "" {
		parent = "."
	}
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("maildir: open %s: %w", parent, err)
	}
	defer unix.Close(pfd)
	return openAt(pfd, base, create, filepath.Clean(parent))
}

// openAt opens name beneath dirfd one component at a time, each through
// safefs, so that a missing one can be made (mkdir -p) and a refusal names the
// component at fault; parent names dirfd in messages ("" when unknown).
func openAt(dirfd int, name string, create bool, parent string) (*Dir, error) {
	comps, err := splitRelative(name)
	if err != nil {
		return nil, err
	}
	fd := dirfd
	walked := parent
	for _, c := range comps {
		walked = filepath.Join(walked, c)
		next, err := openDir(fd, c, create, walked)
		if fd != dirfd {
			unix.Close(fd)
		}
		if err != nil {
			return nil, err
		}
		fd = next
	}
	d := &Dir{fd: fd, sub: [3]int{-1, -1, -1}, path: walked}
	display := walked
	for i, s := range subNames {
		sfd, err := openDir(d.fd, s, create, display+"/"+s)
		if err != nil {
			d.Close()
			return nil, err
		}
		d.sub[i] = sfd
	}
	return d, nil
}

// splitRelative splits a relative path into components, refusing anything
// that could climb out of the starting directory.
func splitRelative(name string) ([]string, error) {
	if name == "" {
		return nil, fmt.Errorf("maildir: empty Maildir name")
	}
	if strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("maildir: Maildir name %s is absolute, want a path relative to the directory", name)
	}
	var comps []string
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("maildir: Maildir name %s contains \"..\"", name)
		}
		comps = append(comps, c)
	}
	if len(comps) == 0 {
		return nil, fmt.Errorf("maildir: Maildir name %s names no directory", name)
	}
	return comps, nil
}

// displayDir names dirfd for messages; it is never used to act.
func displayDir(dirfd int) string {
	if dirfd == unix.AT_FDCWD {
		return ""
	}
	if p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(dirfd)); err == nil && strings.HasPrefix(p, "/") {
		return p
	}
	return ""
}

// openDir opens the single component name beneath dirfd as a directory,
// never following a symlink, creating it 0700 when asked.
func openDir(dirfd int, name string, create bool, display string) (int, error) {
	fd, err := safefs.Open(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT && create {
		merr := unix.Mkdirat(dirfd, name, 0o700)
		if merr != nil && merr != unix.EEXIST {
			return -1, fmt.Errorf("maildir: create %s: %w", display, merr)
		}
		fd, err = safefs.Open(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil && merr == nil {
			// The umask may have taken bits from 0700; a Maildir is exactly 0700.
			if cerr := unix.Fchmod(fd, 0o700); cerr != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("maildir: chmod %s: %w", display, cerr)
			}
		}
	}
	if err != nil {
		return -1, describeOpenError(dirfd, name, display, err)
	}
	return fd, nil
}

// describeOpenError turns a failed open into an error that says what is
// wrong with the path; the lstat here only chooses the words.
func describeOpenError(dirfd int, name, display string, err error) error {
	var st unix.Stat_t
	if serr := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); serr == nil {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			return &unsafeError{display, "is a symlink (not followed)"}
		case unix.S_IFDIR:
		default:
			return &unsafeError{display, "is not a directory (" + FileType(st.Mode) + ")"}
		}
	}
	switch err {
	case unix.ELOOP:
		return &unsafeError{display, "is a symlink (not followed)"}
	case unix.ENOTDIR:
		return &unsafeError{display, "is not a directory"}
	case unix.EXDEV:
		return &unsafeError{display, "resolves outside its parent"}
	}
	return fmt.Errorf("maildir: open %s: %w", display, err)
}

// FileType names the type of file that mode (a stat st_mode) describes, for
// messages such as "is a FIFO, not a regular file".
func FileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return "special file"
}

// Close closes the descriptors of the Maildir and its subdirectories.
func (d *Dir) Close() error {
	var first error
	for i, fd := range d.sub {
		if fd >= 0 {
			if err := unix.Close(fd); err != nil && first == nil {
				first = fmt.Errorf("maildir: close %s/%s: %w", d.path, subNames[i], err)
			}
			d.sub[i] = -1
		}
	}
	if d.fd >= 0 {
		if err := unix.Close(d.fd); err != nil && first == nil {
			first = fmt.Errorf("maildir: close %s: %w", d.path, err)
		}
		d.fd = -1
	}
	return first
}

// FD returns the Maildir directory's file descriptor, valid until Close.
func (d *Dir) FD() int { return d.fd }

// Path returns the Maildir's path for messages; it is never used to act.
func (d *Dir) Path() string { return d.path }

// Entry is one message file of a Maildir.
type Entry struct{ Sub, Name string }

// Messages lists cur/ and new/ (names only, no stat), for verify and check.
// It returns every name but "." and "..", sorted by subdirectory then name;
// a caller that cares about invalid names (starting with '.') uses ParseName.
func (d *Dir) Messages() ([]Entry, error) {
	var out []Entry
	for _, s := range []int{subCur, subNew} {
		names, err := d.readNames(s)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			out = append(out, Entry{Sub: subNames[s], Name: n})
		}
	}
	return out, nil
}

// readNames lists one subdirectory. It reads through a fresh open of ".", so
// the directory offset of the kept descriptor is never moved.
func (d *Dir) readNames(s int) ([]string, error) {
	fd, err := safefs.Open(d.sub[s], ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("maildir: open %s/%s: %w", d.path, subNames[s], err)
	}
	f := os.NewFile(uintptr(fd), d.path+"/"+subNames[s])
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("maildir: list %s/%s: %w", d.path, subNames[s], err)
	}
	sort.Strings(names)
	return names, nil
}

// eachName hands every name of one subdirectory to fn, unsorted, a few
// hundred at a time, so that listing a huge Maildir does not hold all its
// names at once.
func (d *Dir) eachName(s int, fn func(name string)) error {
	fd, err := safefs.Open(d.sub[s], ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("maildir: open %s/%s: %w", d.path, subNames[s], err)
	}
	f := os.NewFile(uintptr(fd), d.path+"/"+subNames[s])
	defer f.Close()
	for {
		names, err := f.Readdirnames(512)
		for _, n := range names {
			fn(n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("maildir: list %s/%s: %w", d.path, subNames[s], err)
		}
	}
}

func subIndex(sub string) (int, bool) {
	for i, s := range subNames {
		if s == sub {
			return i, true
		}
	}
	return 0, false
}

// OpenMessage opens sub/name read-only with O_NOFOLLOW|O_NONBLOCK (never hangs
// on a FIFO) and fails unless it is a regular file. sub is "cur", "new" or
// "tmp".
func (d *Dir) OpenMessage(sub, name string) (*os.File, error) {
	s, ok := subIndex(sub)
	if !ok {
		return nil, fmt.Errorf("maildir: open message: %q is not cur, new or tmp", sub)
	}
	display := d.path + "/" + sub + "/" + name
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return nil, fmt.Errorf("maildir: open %s: not a file name", display)
	}
	fd, err := safefs.Open(d.sub[s], name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ELOOP {
			return nil, &unsafeError{display, "is a symlink (not followed)"}
		}
		return nil, fmt.Errorf("maildir: open %s: %w", display, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("maildir: stat %s: %w", display, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &unsafeError{display, "is not a regular file (" + FileType(st.Mode) + ")"}
	}
	return os.NewFile(uintptr(fd), display), nil
}
