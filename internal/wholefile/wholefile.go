// Package wholefile writes files that a reader finds whole or not at all: the recordings of
// maildirmig record, the reports check --output leaves for node_exporter. A File is written
// under a temporary name beside its own, .NAME.PID.tmp (which a reader's *.prom or *.jsonl
// does not match), synced, and renamed to NAME only by Commit, which syncs the directory too.
// A process killed before that leaves NAME as it was, and the next Create of NAME removes the
// temporary files of processes that no longer run.
//
// Every step goes through one descriptor of the directory, so the directory cannot be swapped
// between them, and the temporary file is created O_EXCL|O_NOFOLLOW.
package wholefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// Options say how a File is made.
type Options struct {
	// Mode is the file's mode, whatever the umask.
	Mode os.FileMode
	// Replace lets Commit replace a file at the name. Without it a file there is never
	// replaced: Create's error, and Commit's when one appears meanwhile, match fs.ErrExist.
	Replace bool
	// Guarded refuses a directory another user could swap the file in: a symlink anywhere in
	// its path (none is followed), a directory owned by another user than root or this
	// process's, or writable by others than its owner.
	Guarded bool
}

// File is a file being written; it appears under its name at Commit.
type File struct {
	*os.File
	path, tmp string
	dirfd     int
	replace   bool
}

// TempName is the name of pid's temporary file for a file called base.
func TempName(base string, pid int) string {
	return "." + base + "." + strconv.Itoa(pid) + ".tmp"
}

// Create starts the file path. Its errors are *os.PathError naming path, but for a directory
// Guarded refuses, which says why.
func Create(path string, o Options) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" || base == "." || base == ".." {
		return nil, &os.PathError{Op: "create", Path: path, Err: unix.EISDIR}
	}
	dirfd, err := openDir(dir, o.Guarded)
	if err != nil {
		if pe, ok := err.(*os.PathError); ok {
			return nil, &os.PathError{Op: "create", Path: path, Err: pe.Err}
		}
		return nil, err
	}
	var st unix.Stat_t
	switch err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		unix.Close(dirfd)
		return nil, &os.PathError{Op: "create", Path: path, Err: unix.EISDIR}
	case err == nil && !o.Replace:
		unix.Close(dirfd)
		return nil, &os.PathError{Op: "create", Path: path, Err: fs.ErrExist}
	case err != nil && err != unix.ENOENT:
		unix.Close(dirfd)
		return nil, &os.PathError{Op: "create", Path: path, Err: err}
	}
	removeStale(dirfd, base)
	tmp := TempName(base, os.Getpid())
	fd, err := safefs.Open(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, uint32(o.Mode.Perm()))
	if err != nil {
		unix.Close(dirfd)
		return nil, &os.PathError{Op: "create", Path: path, Err: err}
	}
	f := &File{File: os.NewFile(uintptr(fd), filepath.Join(dir, tmp)), path: path, tmp: tmp, dirfd: dirfd, replace: o.Replace}
	// The umask may only take bits away; the mode is the one asked, whatever the mode of a
	// file replaced was.
	if err := f.Chmod(o.Mode.Perm()); err != nil {
		f.Abort()
		return nil, err
	}
	return f, nil
}

// Commit makes the file durable and gives it its name. On error the temporary file is removed
// and nothing is at the name that was not there before.
func (f *File) Commit() (err error) {
	defer func() {
		if err != nil {
			f.Abort()
		}
	}()
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.File.Close(); err != nil {
		f.File = nil
		return err
	}
	f.File = nil
	if err := f.rename(); err != nil {
		return err
	}
	f.tmp = ""
	// The rename is durable once the directory is.
	if err := unix.Fsync(f.dirfd); err != nil {
		return &os.PathError{Op: "fsync", Path: filepath.Dir(f.path), Err: err}
	}
	unix.Close(f.dirfd)
	f.dirfd = -1
	return nil
}

// rename moves the temporary file to the name; unless Replace, never over an existing file.
func (f *File) rename() error {
	base := filepath.Base(f.path)
	if f.replace {
		if err := unix.Renameat(f.dirfd, f.tmp, f.dirfd, base); err != nil {
			return &os.PathError{Op: "rename", Path: f.path, Err: err}
		}
		return nil
	}
	err := unix.Renameat2(f.dirfd, f.tmp, f.dirfd, base, unix.RENAME_NOREPLACE)
	if err == unix.EINVAL || err == unix.ENOSYS {
		// A file system without RENAME_NOREPLACE: link refuses an existing name too.
		if err = unix.Linkat(f.dirfd, f.tmp, f.dirfd, base, 0); err == nil {
			_ = unix.Unlinkat(f.dirfd, f.tmp, 0)
			return nil
		}
	}
	switch {
	case err == nil:
		return nil
	case err == unix.EEXIST:
		return &os.PathError{Op: "create", Path: f.path, Err: fs.ErrExist}
	}
	return &os.PathError{Op: "rename", Path: f.path, Err: err}
}

// Abort removes the temporary file; the file is not made. It may be called after Commit.
func (f *File) Abort() {
	if f.File != nil {
		f.File.Close()
		f.File = nil
	}
	if f.tmp != "" {
		_ = unix.Unlinkat(f.dirfd, f.tmp, 0)
		f.tmp = ""
	}
	if f.dirfd >= 0 {
		unix.Close(f.dirfd)
		f.dirfd = -1
	}
}

// openDir opens dir for the steps of a File; guarded, as Options.Guarded says.
func openDir(dir string, guarded bool) (int, error) {
	if !guarded {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: dir, Err: err}
		}
		return fd, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return -1, err
	}
	root, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	defer unix.Close(root)
	var dfd int
	if rel := strings.Trim(abs, "/"); rel != "" {
		dfd, err = safefs.OpenDir(root, rel)
	} else {
		dfd, err = unix.Dup(root)
	}
	if err != nil {
		if link := symlinkIn(abs); link != "" {
			return -1, fmt.Errorf("%s: %s is a symlink, which is not followed", abs, link)
		}
		return -1, &os.PathError{Op: "open", Path: abs, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		unix.Close(dfd)
		return -1, &os.PathError{Op: "fstat", Path: abs, Err: err}
	}
	switch {
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		err = fmt.Errorf("%s: owned by uid %d, not by root: that user could replace the file", abs, st.Uid)
	case st.Mode&0o022 != 0:
		err = fmt.Errorf("%s: writable by others than its owner (mode %04o): they could replace the file", abs, st.Mode&0o7777)
	}
	if err != nil {
		unix.Close(dfd)
		return -1, err
	}
	return dfd, nil
}

// symlinkIn returns the first component of the path dir that is a symlink, if any, to say why
// dir was refused.
func symlinkIn(dir string) string {
	p := "/"
	for _, c := range strings.Split(strings.Trim(dir, "/"), "/") {
		p = filepath.Join(p, c)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return p
		}
	}
	return ""
}

// removeStale removes the temporary files of files called base that a process which no longer
// runs left in the directory dirfd (killed, or the machine stopped).
func removeStale(dirfd int, base string) {
	d, err := unix.Dup(dirfd)
	if err != nil {
		return
	}
	dir := os.NewFile(uintptr(d), "")
	defer dir.Close()
	names, _ := dir.Readdirnames(-1)
	prefix := "." + base + "."
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, prefix)
		if !ok || !strings.HasSuffix(rest, ".tmp") {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSuffix(rest, ".tmp"))
		if err != nil || pid <= 0 {
			continue
		}
		// A file of this process's pid is an older process's: this one has not made its own.
		if pid == os.Getpid() || errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			var st unix.Stat_t
			if unix.Fstatat(dirfd, n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
				_ = unix.Unlinkat(dirfd, n, 0)
			}
		}
	}
}
