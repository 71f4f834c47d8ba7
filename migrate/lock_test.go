package migrate

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
	if err := LockFile(ctx, a, time.Second, true); err != nil {
		t.Fatalf("first lock: %v", err)
	}
	err = LockFile(ctx, b, 200*time.Millisecond, false)
	if !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("second lock on another open file = %v, want ErrLockTimeout", err)
	}
	a.Close()
	if err := LockFile(ctx, b, time.Second, true); err != nil {
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
	err = LockFile(context.Background(), f, 300*time.Millisecond, false)
	if !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("lock while another process holds a classic fcntl lock = %v, want ErrLockTimeout", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Errorf("error %q does not name the holder pid %d", err, cmd.Process.Pid)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := LockFile(context.Background(), f, time.Second, false); err != nil {
		t.Fatalf("lock after the helper exited: %v", err)
	}
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	return cmd.Process.Pid
}

func TestDotlock(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	tests := []struct {
		name    string
		content string
		age     time.Duration
		wantErr error // nil: the lock is taken
	}{
		{name: "free"},
		{name: "dead pid on this host", content: fmt.Sprintf("%d:%s", deadPID(t), host)},
		{name: "live pid on this host", content: fmt.Sprintf("%d:%s", os.Getpid(), host), wantErr: ErrLockTimeout},
		{name: "dead pid elsewhere", content: fmt.Sprintf("%d:otherhost.example", deadPID(t)), wantErr: ErrLockTimeout},
		{name: "empty, as postfix writes it", content: "", wantErr: ErrLockTimeout},
		{name: "unchanged for ten minutes", content: fmt.Sprintf("%d:%s", os.Getpid(), host), age: 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "carol.lock")
			if tt.name != "free" {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if tt.age > 0 {
					old := time.Now().Add(-tt.age)
					if err := os.Chtimes(path, old, old); err != nil {
						t.Fatal(err)
					}
				}
			}
			l, err := TakeDotlock(context.Background(), path, 250*time.Millisecond)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("TakeDotlock = %v, want %v", err, tt.wantErr)
				}
				if b, _ := os.ReadFile(path); string(b) != tt.content {
					t.Errorf("the other holder's lock became %q", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%d:%s", os.Getpid(), host); string(b) != want {
				t.Errorf("lock content %q, want %q", b, want)
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("lock file still there after Release: %v", err)
			}
		})
	}
}

func TestDotlockCancel(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "dave.lock")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := TakeDotlock(ctx, path, time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("TakeDotlock on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestDotlockNoFollow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "erin.lock")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(target, old, old); err != nil {
		t.Fatal(err)
	}
	l, err := TakeDotlock(context.Background(), path, 200*time.Millisecond)
	if err == nil {
		// A symlink older than five minutes is a stale lock: it is removed, never written through.
		l.Release()
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Errorf("symlink target became %q", b)
	}
}
