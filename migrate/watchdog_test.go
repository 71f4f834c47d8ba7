package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/worker"
	"github.com/maildirmig/maildirmig/maildir"
)

// Test-only worker operations: each stands for a way a real worker can block, be slow, or loop.
const (
	opTestReadFIFO = "test-read-fifo" // read req.Path to its end: a FIFO nobody writes to blocks
	opTestTrickle  = "test-trickle"   // read req.Path one byte every 50ms, reporting the work as a real worker does
	opTestSpin     = "test-spin"      // loop for req.Size ms rewriting req.Path, as a worker rewrites its run marker
	opTestChatter  = "test-chatter"   // loop for req.Size ms answering every 10ms, reporting no new work
)

// addWatchdogOps registers the test operations above.
func addWatchdogOps() {
	workerOps[opTestReadFIFO] = testOp(func(req *workerRequest, emit func(workerMsg)) error {
		_, err := os.ReadFile(req.Path)
		return err
	})
	workerOps[opTestTrickle] = testOp(func(req *workerRequest, emit func(workerMsg)) error {
		f, err := os.Open(req.Path)
		if err != nil {
			return err
		}
		defer f.Close()
		work := newWorkMeter(emit)
		r := work.reader(f)
		var b [1]byte
		n := 0
		for {
			if _, err := r.Read(b[:]); err != nil {
				break
			}
			n++
			// An eighth of the stall timeout of TestWatchdogKeepsSlowWorker a byte.
			time.Sleep(raceSlowdown * 50 * time.Millisecond)
		}
		emit(workerMsg{T: msgProgress, N: int64(n)})
		return nil
	})
	// Both loop until req.Size milliseconds have passed, so that a watchdog that does not catch them
	// sees them end, and the test fails instead of hanging.
	workerOps[opTestSpin] = testOp(func(req *workerRequest, emit func(workerMsg)) error {
		f, err := os.OpenFile(req.Path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		line := []byte("dovecot-uidlist.lock 1.P1I00000000L0.host 1 2\n")
		for end := time.Now().Add(time.Duration(req.Size) * time.Millisecond); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if _, err := f.WriteAt(line, 0); err != nil {
				return err
			}
			if _, err := f.ReadAt(line, 0); err != nil {
				return err
			}
			if err := f.Truncate(0); err != nil {
				return err
			}
		}
		return nil
	})
	workerOps[opTestChatter] = testOp(func(req *workerRequest, emit func(workerMsg)) error {
		for end := time.Now().Add(time.Duration(req.Size) * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			emit(workerMsg{T: msgEvent, Event: &Event{Kind: "test", Detail: "still here"}})
			emit(workerMsg{T: msgProgress})
			emit(workerMsg{T: msgWork})
		}
		return nil
	})
}

// Uids no account uses, one per test so that a test finds its own worker by uid.
const (
	fifoUID    = 42191
	trickleUID = 42192
	stoppedUID = 42193
	spinUID    = 42194
	chatterUID = 42195
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
	err := spawnWorker(ctx, Credentials{UID: fifoUID, GID: fifoUID}, &workerRequest{Op: opTestReadFIFO, Path: fifo}, nil, nil, func(workerMsg) {})
	if !errors.Is(err, ErrStalled) || !errors.Is(err, ErrWorkerKilled) {
		t.Fatalf("worker blocked on a FIFO: err = %v, want ErrStalled", err)
	}
	want := "worker made no progress for 300ms (blocked: on a FIFO, a lock or a hung filesystem?); killed"
	if err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

// TestWatchdogKeepsSlowWorker: a worker that reads slowly but steadily, and reports that work as
// it goes as every real worker does, is making progress and must not be killed, though it takes
// many stall timeouts.
func TestWatchdogKeepsSlowWorker(t *testing.T) {
	t.Parallel()
	requireWorkerRoot(t)
	dir := searchableDir(t)
	src := filepath.Join(dir, "slow")
	if err := os.WriteFile(src, []byte(strings.Repeat("x", 30)), 0o644); err != nil {
		t.Fatal(err)
	}
	const stall = raceSlowdown * 400 * time.Millisecond
	ctx := worker.WithStallTimeout(context.Background(), stall)
	var got int64
	began := time.Now()
	err := spawnWorker(ctx, Credentials{UID: trickleUID, GID: trickleUID}, &workerRequest{Op: opTestTrickle, Path: src}, nil, nil, func(m workerMsg) {
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
	// Proof that the watchdog was put to the test: the work outlasted several timeouts.
	if took := time.Since(began); took < 3*stall {
		t.Errorf("the slow worker took %v, less than three stall timeouts (%v): nothing was proven", took, stall)
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
		done <- spawnWorker(ctx, Credentials{UID: stoppedUID, GID: stoppedUID}, &workerRequest{Op: opTestReadFIFO, Path: fifo}, nil, nil, func(workerMsg) {})
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

// TestWatchdogKillsLoopingWorker: progress is the work a worker reports, nothing else. A
// worker that loops reading and writing a file of its own (as one spinning on a lock rewrites
// its run marker, and so grows its I/O counters for ever), or that answers root again and
// again with no new work, makes no progress: root kills it after the stall timeout and says
// why. Each loops for 20 stall timeouts at most, so a watchdog fooled by it sees it end.
func TestWatchdogKillsLoopingWorker(t *testing.T) {
	t.Parallel()
	requireWorkerRoot(t)
	const stall = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		op   string
		uid  int
	}{
		{"rewriting a file", opTestSpin, spinUID},
		{"answering with no new work", opTestChatter, chatterUID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := &workerRequest{Op: tc.op, Path: filepath.Join(searchableDir(t), "marker"), Size: (20 * stall).Milliseconds()}
			dir := filepath.Dir(req.Path)
			must(t, os.Chmod(dir, 0o777))
			ctx := worker.WithStallTimeout(context.Background(), stall)
			answers := 0
			err := spawnWorker(ctx, Credentials{UID: tc.uid, GID: tc.uid}, req, nil, nil, func(workerMsg) { answers++ })
			t.Logf("%d answers before the end: %v", answers, err)
			if !errors.Is(err, ErrStalled) || !strings.HasPrefix(err.Error(), "worker made no progress for 300ms (") {
				t.Fatalf("looping worker: err = %v, want it killed for making no progress", err)
			}
		})
	}
}

// opTestSlowVerify runs the real verification of the Maildir req.Path against the mbox
// req.Maildir, read through a source that takes 150ms (under the race detector five times that) for each read: a slow disk.
const opTestSlowVerify = "test-slow-verify"

// slowReaderAt is a source on a slow disk.
type slowReaderAt struct{ r io.ReaderAt }

func (s slowReaderAt) ReadAt(p []byte, off int64) (int, error) {
	time.Sleep(raceSlowdown * 150 * time.Millisecond) // half TestWatchdogKeepsSlowVerify's stall
	return s.r.ReadAt(p, off)
}

// addSlowVerifyOp registers opTestSlowVerify.
func addSlowVerifyOp() {
	workerOps[opTestSlowVerify] = testOp(func(req *workerRequest, emit func(workerMsg)) error {
		src, err := os.Open(req.Maildir)
		if err != nil {
			return err
		}
		defer src.Close()
		fi, err := src.Stat()
		if err != nil {
			return err
		}
		d, err := maildir.Open(req.Path, false)
		if err != nil {
			return err
		}
		defer d.Close()
		res, err := verifyMaildir(context.Background(), req, slowReaderAt{src}, fi.Size(), d, newWorkMeter(emit))
		if err != nil {
			return err
		}
		emit(workerMsg{T: msgVerified, Verified: &res})
		return nil
	})
}

// TestWatchdogKeepsSlowVerify: the real verification, as a worker of another uid, reading its
// source from a slow disk for many stall timeouts: the work it reports as it reads keeps it
// alive, and it finishes with every message found.
func TestWatchdogKeepsSlowVerify(t *testing.T) {
	t.Parallel()
	requireWorkerRoot(t)
	const stall = raceSlowdown * 300 * time.Millisecond
	dir := searchableDir(t)
	var src strings.Builder
	// 8 MiB: the reader reads 1 MiB at a time, so the verification takes many stall timeouts.
	for i := range 40 {
		fmt.Fprintf(&src, "From a@example.org Mon Jan  1 10:00:00 2024\nSubject: %d\n\n%s\n\n", i, strings.Repeat("a line of the body\n", 11000))
	}
	mbox := filepath.Join(dir, "mbox")
	must(t, os.WriteFile(mbox, []byte(src.String()), 0o644))
	md := filepath.Join(dir, "Maildir")
	d, err := maildir.Open(md, true)
	must(t, err)
	convertInto(t, d, src.String())
	d.Close()
	must(t, filepath.Walk(md, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			err = os.Lchown(p, trickleUID+10, trickleUID+10)
		}
		return err
	}))
	ctx := worker.WithStallTimeout(context.Background(), stall)
	var res *VerifyResult
	began := time.Now()
	err = spawnWorker(ctx, Credentials{UID: trickleUID + 10, GID: trickleUID + 10}, &workerRequest{Op: opTestSlowVerify, Path: md, Maildir: mbox, Location: "UTC"}, nil, nil, func(m workerMsg) {
		if m.T == msgVerified {
			res = m.Verified
		}
	})
	took := time.Since(began)
	t.Logf("slow verify took %v with a stall timeout of %v", took.Round(time.Millisecond), stall)
	if err != nil {
		t.Fatalf("slow verify: %v", err)
	}
	if took < 3*stall {
		t.Errorf("the slow verify took %v, less than three stall timeouts (%v): nothing was proven", took, stall)
	}
	if res == nil || res.Found != 40 || res.Messages != 40 {
		t.Errorf("slow verify: %+v, want 40 messages found", res)
	}
}
