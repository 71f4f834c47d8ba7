package check

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// ReportFileMode is the mode of a report file: node_exporter, which reads it, runs as a user
// of its own.
const ReportFileMode = 0o644

// WriteReportFile writes a report, through write, to the file path so that a reader (the
// textfile collector of node_exporter, a monitoring script) sees the old report or the new
// one, whole, and never a part: the report goes to a temporary file beside path, is synced,
// and renamed over path. A run killed before the rename leaves path as it was; its temporary
// file, named .NAME.tmp-PID so that a collector reading *.prom passes over it, is removed by
// the next run.
//
// No symlink is followed, in any component of path (safefs). The directory must be root's (or
// that of the user running the check) and writable by its owner only: otherwise another user
// could replace the report or the directory under it. node_exporter's textfile directory as
// Debian ships it (/var/lib/prometheus/node-exporter, root's, mode 0755) is such a directory.
func WriteReportFile(path string, write func(io.Writer) error) (err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	dir, name := filepath.Split(abs)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%s: not a file name", path)
	}
	dfd, err := openReportDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	sweepReportTemps(dfd, name)

	tmp := "." + name + ".tmp-" + strconv.Itoa(os.Getpid())
	fd, err := safefs.Open(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, ReportFileMode)
	if err != nil {
		return &os.PathError{Op: "create", Path: filepath.Join(dir, tmp), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, tmp))
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			_ = unix.Unlinkat(dfd, tmp, 0)
		}
	}()
	// The umask must not take the collector's read permission away.
	if err := f.Chmod(ReportFileMode); err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := write(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := unix.Renameat(dfd, tmp, dfd, name); err != nil {
		return &os.LinkError{Op: "rename", Old: filepath.Join(dir, tmp), New: abs, Err: err}
	}
	renamed = true
	if err := unix.Fsync(dfd); err != nil {
		return &os.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}

// openReportDir opens dir, following no symlink, and refuses it unless only its owner, root
// or this process's user, can write to it.
func openReportDir(dir string) (int, error) {
	root, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	defer unix.Close(root)
	dfd := root
	if rel := strings.Trim(dir, "/"); rel != "" {
		dfd, err = safefs.OpenDir(root, rel)
		if err != nil {
			if link := symlinkIn(dir); link != "" {
				return -1, fmt.Errorf("%s: %s is a symlink, which is not followed", dir, link)
			}
			return -1, &os.PathError{Op: "open", Path: dir, Err: err}
		}
	} else if dfd, err = unix.Dup(root); err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		unix.Close(dfd)
		return -1, &os.PathError{Op: "fstat", Path: dir, Err: err}
	}
	switch {
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		err = fmt.Errorf("%s: owned by uid %d, not by root: that user could replace the report", dir, st.Uid)
	case st.Mode&0o022 != 0:
		err = fmt.Errorf("%s: writable by others than its owner (mode %04o): they could replace the report", dir, st.Mode&0o7777)
	}
	if err != nil {
		unix.Close(dfd)
		return -1, err
	}
	return dfd, nil
}

// sweepReportTemps removes the temporary files of name that runs killed before their rename
// left in the directory dfd: those whose process is gone.
func sweepReportTemps(dfd int, name string) {
	d, err := unix.Dup(dfd)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(d), "")
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	prefix := "." + name + ".tmp-"
	for _, n := range names {
		pid, err := strconv.Atoi(strings.TrimPrefix(n, prefix))
		if !strings.HasPrefix(n, prefix) || err != nil || pid <= 0 {
			continue
		}
		// A file of this process's pid is an older process's: this one has not made its own yet.
		if pid == os.Getpid() || errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			_ = unix.Unlinkat(dfd, n, 0)
		}
	}
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
