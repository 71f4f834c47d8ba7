// Package worker runs maildirmig's per-user work in a process of the user's: the program
// itself again, with the user's uid, gid and groups, so that everything it creates is the
// user's without a chown and a symlink the user planted hands it nothing the user could not
// reach already.
//
// Root starts a worker with Run (or Command, for a worker it talks with): /proc/self/exe in
// a session of its own (no controlling terminal, so no TIOCSTI into root's shell), in /,
// with a minimal environment carrying Env, killed if root dies, given a JSON request on
// stdin and, when there is one, a read-only descriptor of the source as fd 3. The worker
// answers with JSON lines on stdout. A program checks Is before anything else and then
// serves the request; it calls Harden first, which makes it non-dumpable so that the user
// cannot ptrace it or read its memory.
//
// Root watches every worker (the watchdog): one that makes no progress for the stall
// timeout (WithStallTimeout) is killed, and one that does not abort within AbortGrace of an
// interrupt too. Progress is the work a worker reports in its answers (Answer.Work): bytes of
// messages read or stored (entries looked at, for check), nothing else. What the lines mean is the caller's: this package
// moves them, and asks each only how much work it reports.
package worker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/fault"
)

// Env is set to "1" in a worker's environment.
const Env = "MAILDIRMIG_WORKER"

// Is reports whether this process was started as a worker.
func Is() bool { return os.Getenv(Env) == "1" }

// Credentials say whom a worker runs as.
type Credentials struct {
	UID, GID int
	Groups   []int
}

// Harden makes this process non-dumpable (no ptrace by its uid, no /proc/PID/mem or environ
// for it) and refuses to go on if a tracer attached in the moment before. A worker calls it
// first.
func Harden() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("worker: prctl(PR_SET_DUMPABLE): %w", err)
	}
	tracer, err := TracerPid()
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if tracer != 0 {
		return fmt.Errorf("worker: traced by pid %d, refusing to run", tracer)
	}
	return nil
}

// TracerPid reads TracerPid from /proc/self/status.
func TracerPid() (int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			var pid int
			if _, err := fmt.Sscan(strings.TrimSpace(v), &pid); err != nil {
				return 0, fmt.Errorf("TracerPid %q: %w", v, err)
			}
			return pid, nil
		}
	}
	return 0, errors.New("no TracerPid in /proc/self/status")
}

// Command is this program again, as cred, in a session of its own, with the worker's
// environment (HOME=home unless home is ""); stdin, stdout and stderr are the caller's to set
// (never a terminal). /proc/self/exe names the running binary even where its path is not
// reachable for the user (a test binary in root's private build directory), since execve
// resolves that link without walking the path.
func Command(cred Credentials, home string) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"maildirmig"}
	if len(os.Args) > 0 {
		cmd.Args[0] = filepath.Base(os.Args[0])
	}
	cmd.Dir = "/"
	cmd.Env = environ(home)
	groups := make([]uint32, len(cred.Groups))
	for i, g := range cred.Groups {
		groups[i] = uint32(g)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(cred.UID), Gid: uint32(cred.GID), Groups: groups},
		Pdeathsig:  syscall.SIGKILL,
		// A session of its own has no controlling terminal: the worker cannot open root's
		// /dev/tty (and push input into root's shell with TIOCSTI), and a terminal's Ctrl-C
		// reaches it through us, once.
		Setsid: true,
	}
	// Once the worker is gone, whatever still holds its stdin or stderr (nothing of ours) is
	// not waited for long.
	cmd.WaitDelay = ReapWait
	return cmd
}

func environ(home string) []string {
	env := []string{Env + "=1", "PATH=/usr/bin:/bin"}
	if home != "" {
		env = append(env, "HOME="+home)
	}
	// GOCOVERDIR and GORACE configure the tooling of a test build (coverage, the race
	// detector), as in the process that starts the worker.
	for _, k := range []string{"TZ", "LANG", "LC_ALL", "GOCOVERDIR", "GORACE"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, fault.Environ()...)
}

// Stderr keeps the first 64 KiB a worker writes to its stderr, for the error of a worker that
// failed; what is beyond is read and dropped, so the worker never blocks on it.
type Stderr struct {
	buf bytes.Buffer
}

func (s *Stderr) Write(p []byte) (int, error) {
	if room := 64<<10 - s.buf.Len(); room > 0 {
		s.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Said returns ": " and what the worker wrote, cut to 500 bytes, or "" when it wrote nothing.
func (s *Stderr) Said() string {
	if msg := strings.TrimSpace(s.buf.String()); msg != "" {
		return ": " + truncate(msg, 500)
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// End waits for the worker cmd to end: asked with SIGTERM when term (and SIGCONT, for one
// its user stopped), killed when it has not ended after patience, and given up on when it is
// still not gone ReapWait later (uninterruptible sleep on a hung filesystem). It returns what
// Wait said and whether the worker is gone.
func End(cmd *exec.Cmd, term bool, patience time.Duration) (error, bool) {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if term {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	t := time.NewTimer(patience)
	defer t.Stop()
	select {
	case err := <-done:
		return err, true
	case <-t.C:
	}
	_ = cmd.Process.Kill()
	t.Reset(ReapWait)
	select {
	case err := <-done:
		return err, true
	case <-t.C:
		return nil, false
	}
}

// Spec is one worker to run.
type Spec struct {
	Cred    Credentials
	Home    string   // the worker's HOME; "" for none
	Request any      // written to its stdin as JSON
	Source  *os.File // given to it read-only as fd 3; nil for none
	// Target is given to it as fd 4, as it is (a file root made for the worker to write
	// into); fd 3 is then /dev/null when there is no Source.
	Target *os.File
	// Patience is added to the stall timeout: a wait the worker may make without progress
	// (for a lock, up to the lock timeout).
	Patience time.Duration
	// Before, when set, is called once the worker is started and before it is given its
	// request, which it waits for and without which it does nothing: what must precede the
	// worker's work (a record made durable) overlaps its start. When Before fails, the worker
	// gets no request and Run returns Before's error.
	Before func() error
}

// gate is a worker's stdin: the request, once Before has succeeded.
type gate struct {
	before func() error
	r      io.Reader
	mu     sync.Mutex
	done   bool
	err    error
}

func (g *gate) Read(p []byte) (int, error) {
	g.mu.Lock()
	if !g.done {
		g.done = true
		g.err = g.before()
	}
	err := g.err
	g.mu.Unlock()
	if err != nil {
		return 0, io.EOF
	}
	return g.r.Read(p)
}

// failed returns Before's error, if it was called and failed.
func (g *gate) failed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Answer is a line of a worker's answer.
type Answer interface {
	// Work is how many bytes of messages the worker read or stored (or, for check, entries
	// it looked at) since its line before, as the work itself counted them: the only
	// progress the watchdog sees.
	Work() int64
}

// Run starts the worker s describes, decodes each line of its answer into an M for handle,
// and returns once it has ended. The error is a *StallError when the watchdog killed it, an
// *InterruptedError when ctx ended (the worker is asked to abort, and killed after
// AbortGrace), else what made a line unreadable or the worker's exit status, with what it
// said on stderr. Time spent in handle is never held against the worker.
func Run[M Answer](ctx context.Context, s Spec, handle func(M)) error {
	var extra []*os.File
	if s.Source != nil {
		// The worker gets a read-only descriptor on the same file: it has no business writing it.
		ro, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", s.Source.Fd()), os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("worker: reopening the source read-only: %w", err)
		}
		defer ro.Close()
		extra = append(extra, ro)
	}
	if s.Target != nil {
		if len(extra) == 0 {
			null, err := os.Open(os.DevNull)
			if err != nil {
				return fmt.Errorf("worker: %w", err)
			}
			defer null.Close()
			extra = append(extra, null)
		}
		extra = append(extra, s.Target)
	}
	body, err := json.Marshal(s.Request)
	if err != nil {
		return fmt.Errorf("worker: request: %w", err)
	}
	// Not ctx: the supervisor below ends the worker, gracefully on an interrupt.
	cmd := Command(s.Cred, s.Home)
	cmd.Stdin = bytes.NewReader(body)
	var g *gate
	if s.Before != nil {
		g = &gate{before: s.Before, r: bytes.NewReader(body)}
		cmd.Stdin = g
	}
	var stderr Stderr
	cmd.Stderr = &stderr
	cmd.ExtraFiles = extra
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("worker: starting as uid %d: %w", s.Cred.UID, err)
	}
	sv := newSupervisor(cmd.Process, StallTimeout(ctx)+s.Patience, out.(*os.File))
	go sv.watch(ctx)
	var lineErr error
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var m M
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			lineErr = fmt.Errorf("worker: said %q: %w", truncate(sc.Text(), 200), err)
			continue
		}
		if m.Work() > 0 {
			sv.progress()
		}
		sv.handling(true)
		handle(m)
		sv.handling(false)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
		close(sv.exited)
	case <-sv.gaveUp:
		// Killed, and still not gone (uninterruptible sleep): the goroutine above reaps it
		// whenever it dies; its user's locks are root's and are released by the caller.
	}
	close(sv.stop)
	stalled, killed := sv.result()
	var beforeErr error
	if g != nil {
		beforeErr = g.failed()
	}
	switch {
	case beforeErr != nil:
		return beforeErr
	case stalled != nil:
		return stalled
	case ctx.Err() != nil:
		return &InterruptedError{Err: ctx.Err(), Killed: killed}
	case lineErr != nil:
		return lineErr
	case werr != nil:
		return fmt.Errorf("worker: as uid %d: %w%s", s.Cred.UID, werr, stderr.Said())
	}
	return nil
}
