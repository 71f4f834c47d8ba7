package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The watchdog. A worker runs as its user, who may stop it (SIGSTOP), and its home may hang
// (a FIFO, a dead NFS server), or hold what makes it loop. Root watches each worker and kills
// one that makes no progress for the stall timeout, so that only its user fails and the run
// goes on. Progress is work done, as the work itself reports it: an answer line whose Work is
// above zero (bytes of messages read or stored since the line before; for check and skel,
// entries of a home looked at and bytes of dovecot-uidlist read). Nothing else counts:
// not the I/O the process does (a worker looping on a lock rewrites its run marker, and reads
// and writes for ever without moving on), not answers that report no new work, not the time
// it has been alive. A worker doing real work reports it often (migrate's workers, every tenth
// of a second while they read), so a slow one on a slow disk is never mistaken for a stuck one;
// a stopped, blocked or looping one reports nothing. Time root spends handling an answer (the worker then waits on a
// full pipe) never counts against the worker.

// DefaultStallTimeout is how long a worker may make no progress before root kills it.
const DefaultStallTimeout = 2 * time.Minute

// How long an interrupted worker has to abort cleanly (remove the tmp files of its pending
// batch) before it is killed, and how long root then waits for a killed worker to be gone: a
// worker in uninterruptible sleep on a hung filesystem dies only when the filesystem answers,
// and root does not wait for that.
var (
	AbortGrace = 2 * time.Second
	ReapWait   = 2 * time.Second
)

// ErrStalled is wrapped by the error of a user whose worker root killed for making no progress.
var ErrStalled = errors.New("worker: made no progress")

// ErrKilled is wrapped by the error of a worker root killed, for a stall or because it
// did not abort within the grace period of an interrupt: the tmp files of its pending batch
// may be left, for the next run to remove.
var ErrKilled = errors.New("worker: killed")

type stallKey struct{}

// WithStallTimeout makes every worker started under ctx watched with timeout d (0: the default).
func WithStallTimeout(ctx context.Context, d time.Duration) context.Context {
	if d <= 0 {
		return ctx
	}
	return context.WithValue(ctx, stallKey{}, d)
}

// StallTimeout is the stall timeout of the workers started under ctx.
func StallTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Value(stallKey{}).(time.Duration); ok && d > 0 {
		return d
	}
	return DefaultStallTimeout
}

// StallError says why root killed a worker. It matches ErrStalled, and ErrKilled unless
// NoFiles.
type StallError struct {
	Timeout time.Duration
	State   string // what /proc said of it when it was killed
	Gone    bool   // it died; else root stopped waiting for it
	NoFiles bool   // it writes no message files (the Mailbox lock's): none can be left in tmp/
}

func (e *StallError) Error() string {
	s := fmt.Sprintf("worker made no progress for %v (%s); killed", e.Timeout, e.State)
	if !e.Gone {
		s += fmt.Sprintf(", but still not gone after %v (uninterruptible sleep): left to die on its own", ReapWait)
	}
	return s
}

func (e *StallError) Is(target error) bool {
	return target == ErrStalled || target == ErrKilled && !e.NoFiles
}

// InterruptedError is a worker's end when the run was interrupted; it wraps the context's
// error, and matches ErrKilled when Killed.
type InterruptedError struct {
	Err    error
	Killed bool // it did not abort within AbortGrace, or said its abort failed
}

func (e *InterruptedError) Error() string {
	if e.Killed {
		return e.Err.Error() + "; worker killed before it could remove its partial files"
	}
	return e.Err.Error()
}

func (e *InterruptedError) Unwrap() error { return e.Err }

func (e *InterruptedError) Is(target error) bool { return e.Killed && target == ErrKilled }

// supervisor watches one worker process from root.
type supervisor struct {
	proc     *os.Process // signalled through its pidfd: never another process that got its pid
	stall    time.Duration
	out      *os.File      // the worker's answers: closed to stop reading one root gave up on
	exited   chan struct{} // closed by the reader once the process is reaped
	stop     chan struct{} // closed by the reader when it is done, whatever happened
	finished chan struct{} // closed when watch returns
	gaveUp   chan struct{} // closed when root stops waiting for a killed worker

	mu        sync.Mutex
	last      time.Time // last progress (the start, before any)
	busy      bool      // root is handling an answer
	busySince time.Time
	stalled   *StallError
	killed    bool // SIGKILL sent
}

func newSupervisor(proc *os.Process, stall time.Duration, out *os.File) *supervisor {
	return &supervisor{proc: proc, stall: stall, out: out, last: time.Now(),
		exited: make(chan struct{}), stop: make(chan struct{}), finished: make(chan struct{}), gaveUp: make(chan struct{})}
}

// progress records that the worker reported new work.
func (s *supervisor) progress() {
	s.mu.Lock()
	s.last = time.Now()
	s.mu.Unlock()
}

// handling brackets root's handling of an answer: that time is not the worker's, and the
// time it had left before is what it has left after.
func (s *supervisor) handling(on bool) {
	s.mu.Lock()
	now := time.Now()
	if on {
		s.busy, s.busySince = true, now
	} else if s.busy {
		s.busy = false
		s.last = s.last.Add(now.Sub(s.busySince))
	}
	s.mu.Unlock()
}

// watch kills the worker when it stalls, or asks it to abort when ctx ends and kills it if it
// does not within AbortGrace. It returns once the reader is done.
func (s *supervisor) watch(ctx context.Context) {
	defer close(s.finished)
	tick := time.NewTicker(min(max(s.stall/8, 20*time.Millisecond), 5*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-ctx.Done():
			s.interrupt()
			return
		case now := <-tick.C:
			if s.check(now) {
				s.kill()
				return
			}
		}
	}
}

// check reports whether the worker has made no progress for the stall timeout.
func (s *supervisor) check(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy || now.Sub(s.last) < s.stall {
		return false
	}
	s.stalled = &StallError{Timeout: s.stall, State: ProcState(s.proc.Pid)}
	return true
}

// interrupt asks the worker to abort (a stopped one is continued so that it can), then kills it
// if it has not ended within AbortGrace.
func (s *supervisor) interrupt() {
	_ = s.proc.Signal(syscall.SIGTERM)
	_ = s.proc.Signal(syscall.SIGCONT)
	t := time.NewTimer(AbortGrace)
	defer t.Stop()
	select {
	case <-s.exited:
		return
	case <-s.stop:
		return
	case <-t.C:
	}
	s.kill()
}

// kill sends SIGKILL and waits ReapWait for the worker to be gone; then root gives up on it:
// its answers are no longer read, and the caller returns without reaping it.
func (s *supervisor) kill() {
	s.mu.Lock()
	s.killed = true
	s.mu.Unlock()
	_ = s.proc.Kill()
	t := time.NewTimer(ReapWait)
	defer t.Stop()
	select {
	case <-s.exited:
		s.mu.Lock()
		if s.stalled != nil {
			s.stalled.Gone = true
		}
		s.mu.Unlock()
		return
	case <-t.C:
	}
	close(s.gaveUp)
	_ = s.out.Close()
}

// result returns the stall, if the watchdog killed the worker for one, and whether the worker
// was killed at all.
func (s *supervisor) result() (*StallError, bool) {
	<-s.finished
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stalled, s.killed
}

// ProcState describes pid's scheduling state, from /proc/PID/stat, for the stall message.
func ProcState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 && i+2 < len(b) {
		switch b[i+2] {
		case 'T':
			return "stopped"
		case 't':
			return "stopped by a tracer"
		case 'D':
			return "in uninterruptible sleep: a hung filesystem?"
		case 'S':
			return "blocked: on a FIFO, a lock or a hung filesystem?"
		case 'R':
			return "running, but doing no work it reports: looping?"
		}
	}
	return "stopped?"
}
