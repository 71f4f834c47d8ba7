package migrate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/worker"
)

// Test-only worker operations: each stands for a way a real worker can block or be slow.
const (
	opTestReadFIFO = "test-read-fifo" // read req.Path to its end: a FIFO nobody writes to blocks
	opTestTrickle  = "test-trickle"   // read req.Path one byte every 50ms, answering nothing until done
)

func init() {
	workerOps[opTestReadFIFO] = func(req *workerRequest, emit func(workerMsg)) error {
		_, err := os.ReadFile(req.Path)
		return err
	}
	workerOps[opTestTrickle] = func(req *workerRequest, emit func(workerMsg)) error {
		f, err := os.Open(req.Path)
		if err != nil {
			return err
		}
		defer f.Close()
		var b [1]byte
		n := 0
		for {
			if _, err := f.Read(b[:]); err != nil {
				break
			}
			n++
			time.Sleep(50 * time.Millisecond)
		}
		emit(workerMsg{T: msgProgress, N: int64(n)})
		return nil
	}
}

// Uids no account uses, one per test so that a test finds its own worker by uid.
const (
	fifoUID    = 42191
	trickleUID = 42192
	stoppedUID = 42193
)

// searchableDir returns a new directory every uid may search: a worker as another uid reads in it.
func searchableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "watchdog-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestWatchdogKillsWorkerBlockedOnFIFO starts a real worker as another uid that blocks reading a
// FIFO nobody writes to: root must kill it after the stall timeout and say why.
func TestWatchdogKillsWorkerBlockedOnFIFO(t *testing.T) {
	t.Parallel()
	fifo := workerFIFO(t)
	ctx := worker.WithStallTimeout(context.Background(), 300*time.Millisecond)
	err := spawnWorker(ctx, Credentials{UID: fifoUID, GID: fifoUID}, &workerRequest{Op: opTestReadFIFO, Path: fifo}, nil, func(workerMsg) {})
	if !errors.Is(err, ErrStalled) || !errors.Is(err, ErrWorkerKilled) {
		t.Fatalf("worker blocked on a FIFO: err = %v, want ErrStalled", err)
	}
	want := "worker made no progress for 300ms (blocked: on a FIFO, a lock or a hung filesystem?); killed"
	if err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

// TestWatchdogKeepsSlowWorker: a worker that reads slowly but steadily, and says nothing to root
// meanwhile, is making progress and must not be killed, though it takes many stall timeouts.
func TestWatchdogKeepsSlowWorker(t *testing.T) {
	t.Parallel()
	requireWorkerRoot(t)
	dir := searchableDir(t)
	src := filepath.Join(dir, "slow")
	if err := os.WriteFile(src, []byte(strings.Repeat("x", 30)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := worker.WithStallTimeout(context.Background(), 400*time.Millisecond)
	var got int64
	err := spawnWorker(ctx, Credentials{UID: trickleUID, GID: trickleUID}, &workerRequest{Op: opTestTrickle, Path: src}, nil, func(m workerMsg) {
		if m.T == msgProgress {
			got = m.N
		}
	})
	if err != nil {
		t.Fatalf("slow worker: %v", err)
	}
	if got != 30 {
		t.Errorf("worker read %d bytes, want 30", got)
	}
}

// TestWatchdogStoppedWorkerInterrupted: a worker its user stopped must still end promptly when
// the run is interrupted: it is continued to abort, and killed if it does not.
func TestWatchdogStoppedWorkerInterrupted(t *testing.T) {
	t.Parallel()
	fifo := workerFIFO(t)
	ctx, cancel := context.WithCancel(worker.WithStallTimeout(context.Background(), time.Hour))
	done := make(chan error, 1)
	go func() {
		done <- spawnWorker(ctx, Credentials{UID: stoppedUID, GID: stoppedUID}, &workerRequest{Op: opTestReadFIFO, Path: fifo}, nil, func(workerMsg) {})
	}()
	// The worker blocks opening the FIFO; stop it there, as its user could, then interrupt.
	pid := waitWorker(t, stoppedUID)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if blockedOnFIFO(pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker never blocked opening the FIFO")
		}
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted worker: err = %v, want context.Canceled", err)
	}
	// Blocked in open(2) on the FIFO, the worker cannot act on SIGTERM: it was killed.
	if !errors.Is(err, ErrWorkerKilled) {
		t.Errorf("err = %v: not reported as killed", err)
	}
	if _, serr := os.Stat("/proc/" + strconv.Itoa(pid)); serr == nil {
		t.Errorf("worker %d still exists", pid)
	}
}

// waitWorker returns the pid of a process of ours running as uid.
func waitWorker(t *testing.T, uid int) int {
	t.Helper()
	me := os.Getpid()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile("/proc/" + e.Name() + "/status")
			if err != nil {
				continue
			}
			s := string(b)
			if strings.Contains(s, "\nPPid:\t"+strconv.Itoa(me)+"\n") && strings.Contains(s, "\nUid:\t"+strconv.Itoa(uid)+"\t") {
				pid, _ := strconv.Atoi(e.Name())
				return pid
			}
		}
	}
	t.Fatalf("no worker of uid %d appeared", uid)
	return 0
}

// blockedOnFIFO reports whether a thread of pid waits in open(2) for a FIFO's writer.
func blockedOnFIFO(pid int) bool {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/wchan")
	for _, p := range tasks {
		if b, _ := os.ReadFile(p); string(b) == "wait_for_partner" {
			return true
		}
	}
	return false
}

// requireWorkerRoot skips a test that starts a worker as another uid, which only root can.
func requireWorkerRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a worker as another uid")
	}
}

// workerFIFO makes a FIFO nobody writes to, where a worker of another uid can open it, for a
// worker that must block; it skips the test unless root.
func workerFIFO(t *testing.T) string {
	t.Helper()
	requireWorkerRoot(t)
	fifo := filepath.Join(searchableDir(t), "fifo")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	return fifo
}
