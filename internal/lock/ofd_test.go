package lock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOFDLocksConflict(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "alice")
	if err := os.WriteFile(path, []byte("From a Mon Jan  1 00:00:00 2024\n\nx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := File(ctx, a, time.Second, true); err != nil {
		t.Fatalf("first lock: %v", err)
	}
	err = File(ctx, b, 200*time.Millisecond, false)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("second lock on another open file = %v, want ErrTimeout", err)
	}
	a.Close()
	if err := File(ctx, b, time.Second, true); err != nil {
		t.Fatalf("lock after the holder closed: %v", err)
	}
}

func TestClassicLockBlocksUs(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bob")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = File(context.Background(), f, 300*time.Millisecond, false)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("lock while another process holds a classic fcntl lock = %v, want ErrTimeout", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Errorf("error %q does not name the holder pid %d", err, cmd.Process.Pid)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := File(context.Background(), f, time.Second, false); err != nil {
		t.Fatalf("lock after the helper exited: %v", err)
	}
}
