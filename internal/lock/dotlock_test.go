package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

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
		{name: "live pid on this host", content: fmt.Sprintf("%d:%s", os.Getpid(), host), wantErr: ErrTimeout},
		{name: "dead pid elsewhere", content: fmt.Sprintf("%d:otherhost.example", deadPID(t)), wantErr: ErrTimeout},
		{name: "empty, as postfix writes it", content: "", wantErr: ErrTimeout},
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

// TestDotlockForeign plants things at the lock's name that a user who can write the directory
// could plant: the lock must time out (never block), and say nothing of what it points at.
func TestDotlockForeign(t *testing.T) {
	t.Parallel()
	const secret = "root:$y$j9T$notarealhash:19000:0:99999:7:::"
	host, _ := os.Hostname()
	tests := []struct {
		name      string
		plant     func(t *testing.T, dir, path string)
		wantOwner string
	}{
		{"symlink to a root-only file", func(t *testing.T, dir, path string) {
			target := filepath.Join(dir, "shadow")
			must(t, os.WriteFile(target, []byte(secret), 0o600))
			must(t, os.Symlink(target, path))
		}, "an unreadable lock"},
		{"fifo", func(t *testing.T, dir, path string) {
			must(t, unix.Mkfifo(path, 0o600))
		}, "an unreadable lock"},
		{"symlink to /dev/zero", func(t *testing.T, dir, path string) {
			must(t, os.Symlink("/dev/zero", path))
		}, "an unreadable lock"},
		{"a file too long for a lock", func(t *testing.T, dir, path string) {
			must(t, os.WriteFile(path, []byte(strings.Repeat(secret, 4)), 0o600))
		}, "an unreadable lock"},
		{"a file that is not pid:host", func(t *testing.T, dir, path string) {
			must(t, os.WriteFile(path, []byte(secret), 0o600))
		}, "an unreadable lock"},
		{"a live pid:host", func(t *testing.T, dir, path string) {
			must(t, os.WriteFile(path, []byte(fmt.Sprintf("%d:%s\n", os.Getpid(), host)), 0o600))
		}, strconv.Quote(fmt.Sprintf("%d:%s", os.Getpid(), host))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "mallory.lock")
			tt.plant(t, dir, path)
			var before unix.Stat_t
			must(t, unix.Lstat(path, &before))
			done := make(chan error, 1)
			go func() {
				_, err := TakeDotlock(context.Background(), path, 300*time.Millisecond)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatal("TakeDotlock still blocked a minute after its timeout")
			}
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("TakeDotlock = %v, want ErrTimeout", err)
			}
			if strings.Contains(err.Error(), "notarealhash") {
				t.Errorf("the error quotes what the lock points at: %v", err)
			}
			if !strings.Contains(err.Error(), "held by "+tt.wantOwner) {
				t.Errorf("error %q does not say held by %s", err, tt.wantOwner)
			}
			var after unix.Stat_t
			must(t, unix.Lstat(path, &after))
			if after.Ino != before.Ino {
				t.Error("the planted lock was replaced")
			}
		})
	}
}

// TestDotlockHeldByFD swaps the lock's name after it was taken: refreshing touches the file we
// made, not the name, and Release leaves a name that is no longer ours alone.
func TestDotlockHeldByFD(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "frank.lock")
	target := filepath.Join(dir, "target")
	must(t, os.WriteFile(target, []byte("precious"), 0o600))
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	must(t, os.Chtimes(target, old, old))
	l, err := TakeDotlock(context.Background(), path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.Rename(path, filepath.Join(dir, "moved")))
	must(t, os.Symlink(target, path))
	must(t, l.h.Touch())
	fi, err := os.Stat(target)
	must(t, err)
	if !fi.ModTime().Equal(old) {
		t.Errorf("refreshing touched the symlink's target: mtime %v, want %v", fi.ModTime(), old)
	}
	err = l.Release()
	if err == nil || !strings.Contains(err.Error(), "taken over by an unreadable lock") {
		t.Errorf("Release after the name was swapped = %v, want taken over by an unreadable lock", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Release removed a lock name that was no longer ours: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Errorf("target became %q", b)
	}
}

func TestParseDotlock(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		wantPid   int
		wantOwner string
	}{
		{"123:mail.example.org", 123, "123:mail.example.org"},
		{"123:mail.example.org\n", 123, "123:mail.example.org"},
		{"", 0, ""},
		{"123", 0, ""},
		{":host", 0, ""},
		{"0:host", 0, ""},
		{"-1:host", 0, ""},
		{"12a:host", 0, ""},
		{"123:host name", 0, ""},
		{"123:host\x1b[2J", 0, ""},
		{"123:host\n\n", 0, ""},
		{"99999999999:host", 0, ""},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			pid, _, owner := parseDotlock(tt.in)
			if pid != tt.wantPid || owner != tt.wantOwner {
				t.Errorf("parseDotlock(%q) = %d, %q; want %d, %q", tt.in, pid, owner, tt.wantPid, tt.wantOwner)
			}
		})
	}
}

// TestDotlockNeverEmpty takes and releases a dotlock over and over while another goroutine
// looks at the lock's name: whenever a lock is there, it already names its holder. An empty
// lock would be taken for a holder's for five minutes by everyone, after a kill at that moment.
func TestDotlockNeverEmpty(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "u.lock")
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(fd)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			l, err := TakeDotlock(context.Background(), path, time.Second)
			if err != nil {
				done <- err
				return
			}
			if err := l.Release(); err != nil {
				done <- err
				return
			}
		}
	}()
	seen, empty := 0, 0
	for start := time.Now(); seen < 3000 && time.Since(start) < time.Minute; {
		var st unix.Stat_t
		if unix.Fstatat(fd, "u.lock", &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			continue
		}
		seen++
		if st.Size == 0 {
			empty++
		}
	}
	close(stop)
	must(t, <-done)
	if seen < 100 {
		t.Fatalf("the lock was seen only %d times in a minute: the test watched the wrong name", seen)
	}
	if empty > 0 {
		t.Errorf("the lock was seen %d times of %d without its holder in it", empty, seen)
	}
}
