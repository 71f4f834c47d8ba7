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
	// FsyncSyncfs, the default, writes files to tmp/, syncs the Maildir's
	// file system as a whole (syncfs) once a batch, while the next batch
	// is written, then renames the batch into new/ and cur/ and fsyncs
	// those two: nothing is visible in new/ or cur/ before it is on disk.
	// It is the fastest durable mode when the file system has little else
	// to write, and waits for every other process's dirty data on it when
	// it has: a busy server wants FsyncBatch. On a kernel before 5.8,
	// whose syncfs does not report write errors, it is FsyncBatch.
	FsyncSyncfs Fsync = iota
	// FsyncBatch is FsyncSyncfs with only the Maildir's own files synced,
	// never the whole file system: their writeback is started as each is
	// written, and they are fsynced together by a few goroutines while the
	// next batch is written, so that the file system's journal commits
	// them in a few transactions rather than one each.
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

// SyncfsReportsErrors tells whether this kernel's syncfs returns the write
// errors it met (Linux 5.8 and later); an older one always answers 0, and
// FsyncSyncfs then runs as FsyncBatch.
func SyncfsReportsErrors() bool {
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
	return w.fsyncDirs()
}

// fsyncDirs fsyncs cur/ and new/ where they received a rename or a removal
// since their last sync.
func (w *Writer) fsyncDirs() error {
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

// The batch pipeline of the batched modes. A batch that fills up is
// synced in the background (a syncJob: one syncfs, or the fsync of each of
// its files) while the next batch is written, so that the disk writes one
// batch while the next one is prepared. At the end of that next batch, or at
// Flush, the synced batch is moved into cur/ and new/ under Dovecot's lock
// on dovecot-uidlist, the directories are fsynced, its lines are appended to
// dovecot-uidlist (and synced), the lock is released, and its messages are
// reported durable. Nothing is renamed before the sync that covers its data
// has completed, and nothing is reported before its rename is synced and
// listed, as when each batch was synced in turn: only the data's sync no
// longer keeps the writing waiting.

// syncJob is the sync of a batch's data, running in the background.
type syncJob struct {
	files []pendingFile
	seq   uint64        // the batch's number, which its uidlist lines carry
	done  chan struct{} // closed when err is set
	err   error
}

// endBatch hands the full pending batch to a sync of its own, and moves in
// the batch synced while this one was written.
func (w *Writer) endBatch() error {
	if w.syncErr != nil {
		return w.syncErr
	}
	return w.step()
}

// flush makes every message added so far durable and visible: it moves in
// the batch being synced, then syncs the pending batch and moves it in too.
func (w *Writer) flush() error {
	if w.syncErr != nil {
		return w.syncErr
	}
	for w.job != nil || len(w.pending) > 0 {
		if err := w.step(); err != nil {
			return err
		}
	}
	return nil
}

// step waits for the batch being synced, starts the sync of the pending
// batch, and moves the first one in meanwhile.
func (w *Writer) step() error {
	job := w.job
	if err := w.awaitSync(); err != nil {
		return err
	}
	if len(w.pending) > 0 {
		w.startSync()
	}
	if job == nil {
		return nil
	}
	return w.moveBatch(job)
}

// startSync starts the sync of the pending batch, which becomes the batch in
// flight.
func (w *Writer) startSync() {
	job := &syncJob{files: w.pending, seq: w.batchSeq, done: make(chan struct{})}
	w.job = job
	w.pending, w.pendingBytes = w.spare, 0
	w.spare = nil
	w.batchSeq++
	go func() {
		defer close(job.done)
		switch w.opts.Fsync {
		case FsyncBatch:
			job.err = w.syncFiles(job.files)
		case FsyncSyncfs:
			job.err = w.syncfs()
		}
	}()
}

// awaitSync waits for the batch in flight, if any, and closes its files. A
// failed sync keeps the batch in tmp/ until Abort, and fails every later
// flush: a second fsync may succeed without the data having reached the disk.
func (w *Writer) awaitSync() error {
	job := w.job
	if job == nil {
		return nil
	}
	<-job.done
	for i := range job.files {
		w.closeHeld(job.files[i].fd)
		job.files[i].fd = -1
	}
	if job.err != nil {
		w.syncErr = job.err
		return job.err
	}
	w.job = nil
	return nil
}

// moveBatch makes a synced batch visible in cur/ and new/, then durable
// there, lists it in dovecot-uidlist and reports its messages durable. On
// failure, what was not moved goes back to the pending batch, where Abort
// removes it, what was moved may be listed, and every later flush fails:
// nothing after a failed step may be reported durable.
func (w *Writer) moveBatch(job *syncJob) (err error) {
	files := job.files
	moved := 0
	defer func() {
		if err != nil {
			if moved < len(files) {
				// A copy: files' array is the spare one once all are moved.
				w.pending = append(files[moved:len(files):len(files)], w.pending...)
			}
			w.movedSeq = job.seq
			w.syncErr = err
		}
	}()
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
	for i, p := range files {
		if lk != nil {
			lk.refresh()
		}
		existed, err := w.moveIn(p.tmp, p.sub, p.name)
		if err != nil {
			return err
		}
		moved = i + 1
		if existed {
			// Planted under our name since NewWriter listed the
			// directory: the file there stays, and is reported as such.
			w.waiting[p.wait-w.waitBase].Existed = true
		}
	}
	w.movedSeq = job.seq
	w.spare = files[:0]
	fault.BatchMoved.Hit()
	// The directories only, in FsyncSyncfs mode too: a syncfs would also
	// wait for the batch written meanwhile, which the sync in flight covers.
	if err := w.fsyncDirs(); err != nil {
		return err
	}
	if lk != nil {
		lk.refresh()
		if err := w.publish(lk, false); err != nil {
			return err
		}
	}
	w.deliverMoved()
	return nil
}

// syncFiles fsyncs files, syncWorkers at a time (FsyncBatch). It does not
// use syncfs: that would also flush every other process's dirty data on the
// file system, making a batch of a few messages wait for gigabytes. It
// closes no descriptor: awaitSync does, in the Writer's goroutine.
func (w *Writer) syncFiles(files []pendingFile) error {
	workers := min(len(files), syncWorkers)
	errs := make([]error, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					return
				}
				if err := w.syncTmp(&files[i]); err != nil {
					errs[k] = err
					return
				}
			}
		})
	}
	wg.Wait()
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
	if err := w.traced(fault.Fsync.Err(unix.Fsync(fd)), "fsync tmp/", p.tmp); err != nil {
		return fmt.Errorf("maildir: fsync %s/tmp/%s: %w", w.d.path, p.tmp, err)
	}
	return nil
}
