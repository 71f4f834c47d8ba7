//go:build faultinject

package fault

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Enabled reports whether this binary was built with the faultinject tag.
const Enabled = true

type action uint8

const (
	actErrno action = iota + 1
	actKill
	actKillRun
	actStop
)

// spec is the fault this process injects, from Env; point 0 means none.
var spec struct {
	point  Point
	n      int64
	action action
	errno  unix.Errno
}

var hits [numPoints]atomic.Int64

func init() {
	v, ok := os.LookupEnv(Env)
	if !ok || v == "" {
		return
	}
	if err := parse(v); err != nil {
		fmt.Fprintf(os.Stderr, "maildirmig: error: %s=%q: %v\n", Env, v, err)
		os.Exit(1)
	}
}

// parse reads POINT:N:ACTION into spec.
func parse(v string) error {
	f := strings.Split(v, ":")
	if len(f) != 3 {
		return fmt.Errorf("want POINT:N:ACTION")
	}
	var p Point
	for i, name := range names {
		if name != "" && name == f[0] {
			p = Point(i)
		}
	}
	if p == 0 {
		return fmt.Errorf("unknown point %q", f[0])
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || n < 1 {
		return fmt.Errorf("count %q is not a positive number", f[1])
	}
	spec.point, spec.n = p, n
	switch f[2] {
	case "eio":
		spec.action, spec.errno = actErrno, unix.EIO
	case "enospc":
		spec.action, spec.errno = actErrno, unix.ENOSPC
	case "edquot":
		spec.action, spec.errno = actErrno, unix.EDQUOT
	case "kill":
		spec.action = actKill
	case "kill-run":
		spec.action = actKillRun
	case "stop":
		spec.action = actStop
	default:
		return fmt.Errorf("unknown action %q", f[2])
	}
	if spec.action == actErrno && p.killOnly() {
		return fmt.Errorf("point %s takes no errno, only kill, kill-run and stop", p)
	}
	return nil
}

// fire counts a pass at p and injects what spec says when it is due.
func (p Point) fire() error {
	if spec.point != p {
		return nil
	}
	n := hits[p].Add(1)
	switch {
	case spec.action == actErrno && n >= spec.n:
		return spec.errno
	case n != spec.n:
		return nil
	case spec.action == actKill:
		killSelf()
	case spec.action == actKillRun:
		killRun()
	case spec.action == actStop:
		stopSelf()
	}
	return nil
}

// Err returns err, or the injected errno when the fault is due here.
func (p Point) Err(err error) error {
	if ferr := p.fire(); ferr != nil && err == nil {
		return ferr
	}
	return err
}

// On returns the point's hook for a call on f: an injected errno comes as the os package
// reports one, in an *os.PathError naming op and the file.
func (p Point) On(f *os.File, op string) File { return File{p: p, f: f, op: op} }

// File is a point's hook for a call on a file.
type File struct {
	p  Point
	f  *os.File
	op string
}

// Err returns err, or the injected errno when the fault is due here.
func (h File) Err(err error) error {
	if ferr := h.p.fire(); ferr != nil && err == nil {
		return &os.PathError{Op: h.op, Path: h.f.Name(), Err: ferr}
	}
	return err
}

// N returns n and err, or n and the injected errno when the fault is due here.
func (h File) N(n int, err error) (int, error) { return n, h.Err(err) }

// N64 returns n and err, or n and the injected errno when the fault is due here.
func (h File) N64(n int64, err error) (int64, error) { return n, h.Err(err) }

// Hit passes a kill-only point.
func (p Point) Hit() { _ = p.fire() }

// Environ returns the variable a worker must inherit to inject the same fault.
func Environ() []string {
	if v, ok := os.LookupEnv(Env); ok {
		return []string{Env + "=" + v}
	}
	return nil
}

func killSelf() {
	_ = unix.Kill(os.Getpid(), unix.SIGKILL)
	select {} // the signal is on its way
}

// stopSelf stops this process until someone continues it.
func stopSelf() {
	// Through this very thread, as killRun does: it then stops before its next instruction.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = unix.Tgkill(os.Getpid(), unix.Gettid(), unix.SIGSTOP)
}

// killRun kills every child of this process and then the process itself. A process that may
// not signal root (a worker runs as the user) stops instead, for the test to kill the run.
func killRun() {
	if os.Geteuid() != 0 {
		// Stopped through this very thread, which then stops before its next
		// instruction: a signal to the process may be taken by another thread,
		// and this one would run on in the meantime.
		runtime.LockOSThread()
		_ = unix.Tgkill(os.Getpid(), unix.Gettid(), unix.SIGSTOP)
		killSelf() // continued by someone other than the test: die all the same
	}
	me := strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		if f := strings.Fields(rest); len(f) > 1 && f[1] == me {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	killSelf()
}
