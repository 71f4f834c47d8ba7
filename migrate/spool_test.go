package migrate

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenSpool(t *testing.T) {
	t.Parallel()
	me := os.Geteuid()
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir, path string)
		uid     int
		wantErr error
	}{
		{name: "regular", setup: func(t *testing.T, dir, path string) { write(t, path, "From x\n") }, uid: me},
		{name: "missing", setup: func(t *testing.T, dir, path string) {}, uid: me, wantErr: ErrNoMailbox},
		{name: "symlink to a secret", setup: func(t *testing.T, dir, path string) {
			write(t, filepath.Join(dir, "shadow"), "root:secret")
			must(t, os.Symlink(filepath.Join(dir, "shadow"), path))
		}, uid: me, wantErr: ErrUnsafeSpool},
		{name: "hard link", setup: func(t *testing.T, dir, path string) {
			write(t, filepath.Join(dir, "shadow"), "root:secret")
			must(t, os.Link(filepath.Join(dir, "shadow"), path))
		}, uid: me, wantErr: ErrUnsafeSpool},
		{name: "fifo", setup: func(t *testing.T, dir, path string) { must(t, unix.Mkfifo(path, 0o600)) }, uid: me, wantErr: ErrUnsafeSpool},
		{name: "directory", setup: func(t *testing.T, dir, path string) { must(t, os.Mkdir(path, 0o700)) }, uid: me, wantErr: ErrUnsafeSpool},
		{name: "socket", setup: func(t *testing.T, dir, path string) {
			l, err := net.Listen("unix", path)
			must(t, err)
			t.Cleanup(func() { l.Close() })
		}, uid: me, wantErr: ErrUnsafeSpool},
		{name: "someone else's", setup: func(t *testing.T, dir, path string) { write(t, path, "From x\n") }, uid: me + 1, wantErr: ErrUnsafeSpool},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "alice")
			tt.setup(t, dir, path)
			f, _, err := OpenSpool(path, tt.uid)
			if f != nil {
				defer f.Close()
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("OpenSpool = %v, want %v", err, tt.wantErr)
			}
			if tt.name == "directory" || tt.name == "socket" || tt.name == "fifo" {
				if want := path + " is not a regular file"; !strings.Contains(err.Error(), want) {
					t.Errorf("OpenSpool = %q, want it to say %q", err, want)
				}
			}
		})
	}
}

func TestRecheckSpool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "alice")
	write(t, path, "From x\n")
	f, _, err := OpenSpool(path, os.Geteuid())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := RecheckSpool(f, path, os.Geteuid()); err != nil {
		t.Fatalf("unchanged spool: %v", err)
	}
	must(t, os.Rename(path, path+".old"))
	write(t, path, "From y\n")
	if _, err := RecheckSpool(f, path, os.Geteuid()); !errors.Is(err, ErrUnsafeSpool) {
		t.Fatalf("replaced spool: %v, want ErrUnsafeSpool", err)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(s), 0o600))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDupCloexec(t *testing.T) {
	t.Parallel()
	fd, err := unix.Open(t.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	dup, err := dupCloexec(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)
	flags, err := unix.FcntlInt(uintptr(dup), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("duplicate fd %d has no FD_CLOEXEC (flags %#x)", dup, flags)
	}
}
