package maildir

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/fault"
	"github.com/maildirmig/maildirmig/internal/safefs"
)

// How a Writer makes messages durable: the Fsync modes, and the end of a batch
// (flush), which syncs its files in tmp/, renames them into cur/ and new/,
// syncs those directories and lists the files in dovecot-uidlist.

// Fsync says when the Writer makes messages durable. Its zero value, FsyncSyncfs, is the
// default, of an Options left empty and of the command line's --fsync alike.
type Fsync int

const (
	// FsyncSyncfs, the default, writes files to tmp/ (their writeback
	// started at once), syncs the Maildir's file system as a whole
	// (syncfs) once before a batch is renamed into new/ and cur/, then
	// once after: nothing is visible in new/ or cur/ before it is on disk.
	// It is the fastest durable mode when the file system has little else
	// to write, and waits for every other process's dirty data on it when
	// it has: a busy server wants FsyncBatch. On a kernel before 5.8,
	// whose syncfs does not report write errors, it is FsyncBatch.
	FsyncSyncfs Fsync = iota
	// FsyncBatch is FsyncSyncfs with only the Maildir's own files synced,
	// never the whole file system: they are fsynced together at the end
	// of each batch by a few goroutines, so that the file system's journal
	// commits them in a few transactions rather than one each, then
	// renamed, then new/ and cur/ fsynced.
	FsyncBatch
	// FsyncAlways fsyncs each file before its rename, and the directories.
	FsyncAlways
	// FsyncNone never syncs (tests, or a file system that is synced by other means).
	FsyncNone
)

// DefaultFsync is the mode of an empty Options: the zero Fsync.
const DefaultFsync Fsync = 0

// FsyncModes lists the modes, the default first.
var FsyncModes = []Fsync{FsyncSyncfs, FsyncBatch, FsyncAlways, FsyncNone}

// String returns the name the command line uses for f.
func (f Fsync) String() string {
	switch f {
	case FsyncBatch:
		return "batch"
	case FsyncAlways:
		return "always"
	case FsyncNone:
		return "none"
	case FsyncSyncfs:
		return "syncfs"
	}
	return "Fsync(" + strconv.Itoa(int(f)) + ")"
}

// ParseFsync parses the name of one of FsyncModes.
func ParseFsync(s string) (Fsync, error) {
	var names []string
	for _, f := range FsyncModes {
		if s == f.String() {
			return f, nil
		}
		names = append(names, f.String())
	}
	return 0, fmt.Errorf("maildir: fsync mode %q is not one of %s", s, strings.Join(names, ", "))
}

// batched tells whether f gathers messages in tmp/ and syncs them together.
func (f Fsync) batched() bool { return f == FsyncBatch || f == FsyncSyncfs }

// syncfsReportsErrors tells whether this kernel's syncfs returns the write
// errors it met (Linux 5.8 and later); an older one always answers 0.
func syncfsReportsErrors() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 5 || major == 5 && minor >= 8
}

// syncWorkers is how many files of a batch are fsynced at once. Concurrent
// fsyncs let ext4 and XFS put many files into one journal commit; more
// workers gained nothing measurable.
const syncWorkers = 16

// syncfs syncs the file system of the Maildir as a whole (FsyncSyncfs).
func (w *Writer) syncfs() error {
	if err := w.traced(fault.Fsync.Err(unix.Syncfs(w.d.sub[subTmp])), "syncfs"); err != nil {
		return fmt.Errorf("maildir: syncfs %s: %w", w.d.path, err)
	}
	return nil
}

func (w *Writer) syncDirs() error {
	if w.opts.Fsync == FsyncSyncfs {
		if w.dirty != [2]bool{} {
			if err := w.syncfs(); err != nil {
				return err
			}
			w.dirty = [2]bool{}
		}
		return nil
	}
	for _, s := range []int{subCur, subNew} {
		if w.dirty[s] {
			if err := w.traced(unix.Fsync(w.d.sub[s]), "fsync "+subNames[s]); err != nil {
				return fmt.Errorf("maildir: fsync %s/%s: %w", w.d.path, subNames[s], err)
			}
			w.dirty[s] = false
		}
	}
	return nil
}

// flush makes the pending batch durable in tmp/, then visible in cur/ and
// new/, then durable there.
func (w *Writer) flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	if w.syncErr != nil {
		return w.syncErr
	}
	switch w.opts.Fsync {
	case FsyncBatch:
		if err := w.syncPending(); err != nil {
			w.syncErr = err
			return err
		}
	case FsyncSyncfs:
		if err := w.syncfs(); err != nil {
			w.syncErr = err
			return err
		}
	}
	if err := w.writeKeywords(); err != nil {
		return err
	}
	// Dovecot numbers files it finds unlisted only under this lock: held
	// from before the batch appears in cur/ and new/ until its lines are in
	// dovecot-uidlist, Dovecot never numbers our files itself.
	var lk *ctlLock
	if !w.opts.Unlisted {
		var err error
		if lk, err = w.lockControl(uidlistName); err != nil {
			return err
		}
		defer lk.drop()
	}
	for i, p := range w.pending {
		if lk != nil {
			lk.refresh()
		}
		existed, err := w.moveIn(p.tmp, p.sub, p.name)
		if err != nil {
			w.pending = w.pending[i:]
			return err
		}
		if existed {
			// Planted under our name since NewWriter listed the
			// directory: the file there stays, and is reported as such.
			w.waiting[p.wait].Existed = true
		}
	}
	w.pending, w.pendingBytes = w.pending[:0], 0
	fault.BatchMoved.Hit()
	if w.opts.Fsync == FsyncNone {
		w.dirty = [2]bool{}
	} else if err := w.syncDirs(); err != nil {
		return err
	}
	if lk != nil {
		lk.refresh()
		if err := w.publish(lk, false); err != nil {
			return err
		}
	}
	w.deliver()
	return nil
}

// syncPending fsyncs the pending files, syncWorkers at a time, and closes
// those still open. It does not use syncfs: that would also flush every
// other process's dirty data on the file system, making a batch of a few
// messages wait for gigabytes.
func (w *Writer) syncPending() error {
	workers := min(len(w.pending), syncWorkers)
	errs := make([]error, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(w.pending) {
					return
				}
				p := &w.pending[i]
				if err := w.syncTmp(p); err != nil {
					errs[k] = err
					return
				}
			}
		})
	}
	wg.Wait()
	w.closePending()
	return errors.Join(errs...)
}

// closePending closes the pending files still open.
func (w *Writer) closePending() {
	for i := range w.pending {
		w.closeHeld(w.pending[i].fd)
		w.pending[i].fd = -1
	}
}

// closeHeld closes fd, a tmp file kept open for its fsync, if it is one.
func (w *Writer) closeHeld(fd int) {
	if fd >= 0 {
		unix.Close(fd)
		w.held--
	}
}

// syncTmp fsyncs p's tmp file, through the descriptor its write left open
// or else opened again. fdatasync would do for the data of a new file, but
// not for its mtime, which is the message's date for Dovecot; it was
// measured no faster here.
func (w *Writer) syncTmp(p *pendingFile) error {
	fd := p.fd
	if fd < 0 {
		var err error
		fd, err = safefs.Open(w.d.sub[subTmp], p.tmp, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("maildir: open %s/tmp/%s: %w", w.d.path, p.tmp, err)
		}
		defer unix.Close(fd)
	}
	if err := w.traced(fault.Fsync.Err(unix.Fsync(fd)), "fsync tmp/"+p.tmp); err != nil {
		return fmt.Errorf("maildir: fsync %s/tmp/%s: %w", w.d.path, p.tmp, err)
	}
	return nil
}
