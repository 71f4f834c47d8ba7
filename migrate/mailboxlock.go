package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/lock"
	"github.com/maildirmig/maildirmig/internal/worker"
	"github.com/maildirmig/maildirmig/users"
)

// ErrLockTimeout is wrapped by the error returned when a source's lock could not be taken in
// time (it is lock.ErrTimeout).
var ErrLockTimeout = lock.ErrTimeout

// sourceLock is the dotlock of a user's source held for a whole migration, and the one way
// --after rename renames the source: beside the lock, through the same directory.
type sourceLock interface {
	Release() error
	RenameSource(from, to string, dev, ino uint64) error
}

// mailboxLockName is the dotlock of ~USER/Mailbox.
const mailboxLockName = "Mailbox.lock"

// lockSource takes the dotlock of the user's source: as root beside a spool, whose directory
// is root's; in a worker as the user for ~USER/Mailbox, whose directory is the user's home
// (root following or reading anything the user planted there is what must not happen).
// ctx is the user's migration's: its end also cuts short the release of a Mailbox lock.
func (r *runner) lockSource(ctx context.Context, u users.User, src, home string) (sourceLock, error) {
	if r.cfg.Source != SourceMailbox {
		dl, err := lock.TakeDotlock(ctx, lock.DotlockPath(src), r.cfg.LockTimeout)
		if err != nil {
			return nil, err
		}
		return spoolLock{dl}, nil
	}
	req := &workerRequest{Op: opMailboxLock, Home: home, Owner: owner(u), LockTimeout: r.cfg.LockTimeout}
	cred := Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}
	if os.Geteuid() != 0 || cred.UID == 0 {
		return lockMailboxHere(ctx, req)
	}
	return spawnMailboxLock(ctx, cred, req)
}

// spoolLock is a dotlock beside a spool, in root's spool directory.
type spoolLock struct{ *lock.Dotlock }

// RenameSource renames from to to, both beside the lock, if from still is the file dev/ino
// (see renameBeside).
func (l spoolLock) RenameSource(from, to string, dev, ino uint64) error {
	return renameBeside(l.Dir(), from, to, dev, ino)
}

// homeLock is a Mailbox dotlock taken in this process, through the home's descriptor.
type homeLock struct {
	spoolLock
	home int
}

func (h homeLock) Release() error {
	err := h.Dotlock.Release()
	unix.Close(h.home)
	return err
}

func lockMailboxHere(ctx context.Context, req *workerRequest) (sourceLock, error) {
	home, err := openHome(req)
	if err != nil {
		return nil, err
	}
	dl, err := lock.TakeDotlockAt(ctx, home, mailboxLockName, mailboxLockName, req.LockTimeout)
	if err != nil {
		unix.Close(home)
		return nil, fmt.Errorf("%w (in %s)", err, req.Home)
	}
	return homeLock{spoolLock: spoolLock{dl}, home: home}, nil
}

// The Mailbox lock worker's protocol: the request, then "locked" (or "lock-failed" with Kind
// and Err); then one rename request at a time, each answered "renamed" or "rename-failed";
// stdin closed: the lock is released and "released" (or "error") is the last line.
const opRename = "rename"

// serveMailboxLock is the worker's side: it holds ~USER/Mailbox.lock as the user until its
// stdin is closed or it is told to stop.
func serveMailboxLock(_ context.Context, req *workerRequest, _ *os.File, emit func(workerMsg)) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lockCtx, cancel := context.WithTimeout(ctx, req.LockTimeout)
	lk, err := lockMailboxHere(lockCtx, req)
	cancel()
	if err != nil {
		err = ctxLockError(ctx, err)
		kind := folderFailError
		if errors.Is(err, ErrLockTimeout) {
			kind = folderFailLock
		}
		emit(workerMsg{T: msgLockFailed, Kind: kind, Err: err.Error(), Unsafe: errors.Is(err, ErrUnsafeHome)})
		return nil
	}
	emit(workerMsg{T: msgLocked})
	// The parent sends a command only after reading the answer to the one before, so nothing
	// past the request was read ahead from stdin.
	cmds := make(chan workerRequest)
	go func() {
		defer close(cmds)
		dec := json.NewDecoder(os.Stdin)
		for {
			var c workerRequest
			if dec.Decode(&c) != nil {
				return
			}
			select {
			case cmds <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			_ = lk.Release()
			return ctx.Err()
		case c, ok := <-cmds:
			if !ok {
				if err := lk.Release(); err != nil {
					return err
				}
				emit(workerMsg{T: msgReleased})
				return nil
			}
			if c.Op != opRename {
				emit(workerMsg{T: msgRenameFailed, Err: fmt.Sprintf("migrate: mailbox lock: unknown command %q", c.Op)})
				continue
			}
			if err := lk.RenameSource(c.RenameFrom, c.RenameTo, c.Dev, c.Inode); err != nil {
				emit(workerMsg{T: msgRenameFailed, Err: err.Error()})
				continue
			}
			emit(workerMsg{T: msgRenamed})
		}
	}
}

// workerLock is the parent's end of a Mailbox lock worker. The worker holds the lock without
// working, so the watchdog's rule applies to its answers: each must come within the stall
// timeout (the first, the lock, within the lock timeout and that), or root kills it.
type workerLock struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	outf   *os.File
	out    *json.Decoder
	stderr *worker.Stderr
	uid    int
	stall  time.Duration
	run    context.Context
	mu     sync.Mutex
	once   sync.Once
	err    error
}

// spawnMailboxLock starts the worker and waits for the lock, which the worker gives up on by
// the lock timeout; once ctx ends (an interrupt), the worker's answers are waited for
// worker.AbortGrace at most.
func spawnMailboxLock(ctx context.Context, cred Credentials, req *workerRequest) (sourceLock, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("migrate: mailbox lock: %w", err)
	}
	// Not ctx: the lock outlives the locking deadline; cancellation is the caller's Release.
	cmd := worker.Command(cred, req.Home)
	stderr := new(worker.Stderr)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("migrate: mailbox lock: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("migrate: mailbox lock: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("migrate: starting the mailbox lock worker as uid %d: %w", cred.UID, err)
	}
	outf := out.(*os.File)
	w := &workerLock{cmd: cmd, in: in, outf: outf, out: json.NewDecoder(io.LimitReader(outf, 1<<20)), stderr: stderr, uid: cred.UID,
		stall: worker.StallTimeout(ctx), run: ctx}
	if _, err := in.Write(append(body, '\n')); err != nil {
		return nil, w.fail(fmt.Errorf("migrate: mailbox lock: %w", err))
	}
	// The worker gives up by the lock timeout itself; ctx ending first (an interrupt) stops
	// waiting for its answer at once.
	patience := req.LockTimeout + w.stall
	_ = outf.SetReadDeadline(time.Now().Add(patience))
	stopped := context.AfterFunc(ctx, func() { _ = outf.SetReadDeadline(time.Now()) })
	m, err := w.read(patience)
	stopped()
	switch {
	case ctx.Err() != nil:
		return nil, w.fail(ctx.Err())
	case err != nil:
		return nil, w.fail(err)
	case m.T == msgLockFailed && m.Kind == folderFailLock:
		return nil, w.fail(fmt.Errorf("%w: %s", ErrLockTimeout, m.Err))
	case m.T == msgLockFailed:
		return nil, w.fail(&remoteError{msg: m.Err, unsafe: m.Unsafe})
	case m.T != msgLocked:
		return nil, w.fail(fmt.Errorf("migrate: mailbox lock worker said %q", m.T))
	}
	return w, nil
}

// answer reads the worker's next line, waiting for it no longer than patience, nor than
// worker.AbortGrace once the run is interrupted.
func (w *workerLock) answer(patience time.Duration) (workerMsg, error) {
	_ = w.outf.SetReadDeadline(time.Now().Add(patience))
	hurry := context.AfterFunc(w.run, func() { _ = w.outf.SetReadDeadline(time.Now().Add(worker.AbortGrace)) })
	defer hurry()
	return w.read(patience)
}

// read reads the worker's next line by the read deadline set, patience from now.
func (w *workerLock) read(patience time.Duration) (workerMsg, error) {
	var m workerMsg
	if err := w.out.Decode(&m); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if w.run != nil && w.run.Err() != nil {
				patience = min(patience, worker.AbortGrace)
			}
			return m, &worker.StallError{Timeout: patience, State: worker.ProcState(w.cmd.Process.Pid), Gone: true, NoFiles: true}
		}
		return m, fmt.Errorf("migrate: mailbox lock worker as uid %d: %w%s", w.uid, err, w.said())
	}
	if m.T == msgError {
		return m, &remoteError{msg: m.Err, unsafe: m.Unsafe}
	}
	return m, nil
}

func (w *workerLock) said() string { return w.stderr.Said() }

// fail stops the worker (its lock, if any, goes with it) and returns err.
func (w *workerLock) fail(err error) error {
	w.once.Do(func() {
		w.in.Close()
		if _, gone := worker.End(w.cmd, true, worker.AbortGrace); !gone {
			var se *worker.StallError
			if errors.As(err, &se) {
				se.Gone = false
			}
		}
	})
	return err
}

// RenameSource has the worker rename the source as the user.
func (w *workerLock) RenameSource(from, to string, dev, ino uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	body, err := json.Marshal(workerRequest{Op: opRename, RenameFrom: from, RenameTo: to, Dev: dev, Inode: ino})
	if err != nil {
		return fmt.Errorf("migrate: rename: %w", err)
	}
	if _, err := w.in.Write(append(body, '\n')); err != nil {
		return fmt.Errorf("migrate: mailbox lock worker: %w", err)
	}
	m, err := w.answer(w.stall)
	switch {
	case errors.As(err, new(*worker.StallError)):
		return w.fail(err)
	case err != nil:
		return err
	case m.T == msgRenameFailed:
		return &remoteError{msg: m.Err}
	case m.T != msgRenamed:
		return fmt.Errorf("migrate: mailbox lock worker said %q", m.T)
	}
	return nil
}

// Release has the worker remove the lock and waits for it to end.
func (w *workerLock) Release() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	stalled := false
	w.once.Do(func() {
		w.in.Close()
		m, aerr := w.answer(w.stall)
		switch {
		case errors.As(aerr, new(*worker.StallError)):
			err, stalled = aerr, true
		case aerr != nil:
			err = aerr
		case m.T != msgReleased:
			err = fmt.Errorf("migrate: mailbox lock worker said %q", m.T)
		}
		patience := w.stall
		if stalled {
			// Continued, it may still remove its lock before it is killed.
			patience = worker.AbortGrace
		}
		werr, gone := worker.End(w.cmd, stalled, patience)
		var se *worker.StallError
		if !gone && errors.As(err, &se) {
			se.Gone = false
		}
		if werr != nil && err == nil {
			err = fmt.Errorf("migrate: mailbox lock worker as uid %d: %w%s", w.uid, werr, w.said())
		}
	})
	return err
}
