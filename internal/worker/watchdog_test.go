package worker

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestWatchdogGivesUpOnUnreapedWorker: a worker in uninterruptible sleep (a hung NFS server)
// dies of SIGKILL only when its system call returns, which may be never. Root must not wait
// for that: ReapWait after the kill it stops reading the worker and reports it left behind.
// The test stands for the hung worker with a process whose end the supervisor is never told
// of, as it would not be of one that cannot die.
func TestWatchdogGivesUpOnUnreapedWorker(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "60")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	sv := newSupervisor(cmd.Process, 100*time.Millisecond, r)
	go sv.watch(context.Background())
	select {
	case <-sv.gaveUp:
	case <-time.After(time.Minute):
		t.Fatal("the supervisor never gave up on a worker it could not reap")
	}
	// The reader's end is closed, so a reader blocked on it returns.
	if _, err := r.Read(make([]byte, 1)); err == nil {
		t.Error("the worker's output is still open after root gave up on it")
	}
	close(sv.stop)
	stalled, killed := sv.result()
	if stalled == nil || !killed {
		t.Fatalf("stalled = %v, killed = %v", stalled, killed)
	}
	if !strings.Contains(stalled.Error(), "killed, but still not gone after") {
		t.Errorf("err = %q: does not say the worker was left behind", stalled)
	}
}
