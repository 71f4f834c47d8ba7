package migrate

import (
	"bufio"
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
// (a FIFO, a dead NFS server). Root watches each worker and kills one that makes no progress
// for the stall timeout, so that only its user fails and the run goes on. Progress is work the
// kernel saw the worker do: bytes it read or wrote (/proc/PID/io, which counts every read and
// write system call, the source, the message files and its answers to root alike), and the
// answers root received. A stopped or blocked worker advances neither, whatever its goroutines
// do. Time root spends handling an answer (the worker then waits on a full pipe) never counts
// against the worker.

// DefaultStallTimeout is how long a worker may make no progress before root kills it.
const DefaultStallTimeout = 2 * time.Minute

// How long an interrupted worker has to abort cleanly (remove the tmp files of its pending
// batch) before it is killed, and how long root then waits for a killed worker to be gone: a
// worker in uninterruptible sleep on a hung filesystem dies only when the filesystem answers,
// and root does not wait for that.
var (
	abortGrace = 2 * time.Second
	reapWait   = 2 * time.Second
)

// ErrStalled is wrapped by the error of a user whose worker root killed for making no progress.
var ErrStalled = errors.New("migrate: worker made no progress")

// ErrWorkerKilled is wrapped by the error of a worker root killed, for a stall or because it
// did not abort within the grace period of an interrupt: the tmp files of its pending batch
// may be left, for the next run to remove.
var ErrWorkerKilled = errors.New("migrate: worker killed")

type stallKey struct{}

// withStallTimeout makes every worker started under ctx watched with timeout d (0: the default).
func withStallTimeout(ctx context.Context, d time.Duration) context.Context {
	if d <= 0 {
		return ctx
	}
	return context.WithValue(ctx, stallKey{}, d)
}

func stallTimeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Value(stallKey{}).(time.Duration); ok && d > 0 {
		return d
	}
	return DefaultStallTimeout
}

// stallError says why root killed a worker.
type stallError struct {
	timeout time.Duration
	state   string // what /proc said of it when it was killed
	gone    bool   // it died; else root stopped waiting for it
	noFiles bool   // it writes no message files (the Mailbox lock's): none can be left in tmp/
}

func (e *stallError) Error() string {
	s := fmt.Sprintf("worker made no progress for %v (%s); killed", e.timeout, e.state)
	if !e.gone {
		s += fmt.Sprintf(", but still not gone after %v (uninterruptible sleep): left to die on its own", reapWait)
	}
	return s
}

func (e *stallError) Is(target error) bool {
	return target == ErrStalled || target == ErrWorkerKilled && !e.noFiles
}

// interruptedError is a worker's end when the run was interrupted; it wraps the context's error.
type interruptedError struct {
	err    error
	killed bool // it did not abort within abortGrace, or said its abort failed
}

func (e *interruptedError) Error() string {
	if e.killed {
		return e.err.Error() + "; worker killed before it could remove its partial files"
	}
	return e.err.Error()
}

func (e *interruptedError) Unwrap() error { return e.err }

func (e *interruptedError) Is(target error) bool { return e.killed && target == ErrWorkerKilled }

// supervisor watches one worker process from root.
type supervisor struct {
	proc     *os.Process // signalled through its pidfd: never another process that got its pid
	stall    time.Duration
	out      *os.File      // the worker's answers: closed to stop reading one root gave up on
	exited   chan struct{} // closed by the reader once the process is reaped
	stop     chan struct{} // closed by the reader when it is done, whatever happened
	finished chan struct{} // closed when watch returns
	gaveUp   chan struct{} // closed when root stops waiting for a killed worker

	mu      sync.Mutex
	last    time.Time // last progress
	io      uint64    // rchar+wchar at last
	busy    int       // root is handling an answer
	stalled *stallError
	killed  bool // SIGKILL sent
}

func newSupervisor(proc *os.Process, stall time.Duration, out *os.File) *supervisor {
	s := &supervisor{proc: proc, stall: stall, out: out, last: time.Now(),
		exited: make(chan struct{}), stop: make(chan struct{}), finished: make(chan struct{}), gaveUp: make(chan struct{})}
	s.io, _ = procIO(proc.Pid)
	return s
}

// touch records progress.
func (s *supervisor) touch() {
	s.mu.Lock()
	s.last = time.Now()
	s.mu.Unlock()
}

// handling brackets root's handling of an answer.
func (s *supervisor) handling(on bool) {
	s.mu.Lock()
	if on {
		s.busy++
	} else {
		s.busy--
	}
	s.last = time.Now()
	s.mu.Unlock()
}

// watch kills the worker when it stalls, or asks it to abort when ctx ends and kills it if it
// does not within abortGrace. It returns once the reader is done.
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
	io, ok := procIO(s.proc.Pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok && io != s.io {
		s.io, s.last = io, now
	}
	if s.busy > 0 {
		s.last = now
	}
	if now.Sub(s.last) < s.stall {
		return false
	}
	s.stalled = &stallError{timeout: s.stall, state: procState(s.proc.Pid)}
	return true
}

// interrupt asks the worker to abort (a stopped one is continued so that it can), then kills it
// if it has not ended within abortGrace.
func (s *supervisor) interrupt() {
	_ = s.proc.Signal(syscall.SIGTERM)
	_ = s.proc.Signal(syscall.SIGCONT)
	t := time.NewTimer(abortGrace)
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

// kill sends SIGKILL and waits reapWait for the worker to be gone; then root gives up on it:
// its answers are no longer read, and the caller returns without reaping it.
func (s *supervisor) kill() {
	s.mu.Lock()
	s.killed = true
	s.mu.Unlock()
	_ = s.proc.Kill()
	t := time.NewTimer(reapWait)
	defer t.Stop()
	select {
	case <-s.exited:
		s.mu.Lock()
		if s.stalled != nil {
			s.stalled.gone = true
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
func (s *supervisor) result() (*stallError, bool) {
	<-s.finished
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stalled, s.killed
}

// procIO returns the bytes pid has read and written through system calls so far.
func procIO(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, false
	}
	var sum uint64
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(": "))
		if !ok || (string(k) != "rchar" && string(k) != "wchar") {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			return 0, false
		}
		sum += n
		found++
	}
	return sum, found == 2
}

// procState describes pid's scheduling state, from /proc/PID/stat, for the stall message.
func procState(pid int) string {
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
			return "running without reading or writing"
		}
	}
	return "stopped?"
}
