package lock

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMarkerLiveness: a marker is alive while its process lives, and dead once the process
// is killed with SIGKILL, which runs no cleanup: the kernel dropped its lock. The prober of a
// dead marker holds it, so that a second prober takes it for alive, until it lets go.
func TestMarkerLiveness(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fd := openDir(t, dir)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), markerEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	path := filepath.Join(dir, "marker")
	if !MarkerHeld(fd, "marker") {
		t.Error("MarkerHeld says a live process's marker is not held")
	}
	alive, f, err := ProbeMarker(fd, "marker", path)
	if err != nil || !alive || f != nil {
		t.Fatalf("ProbeMarker of a live process's marker = %v, %v, %v; want alive", alive, f, err)
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	if MarkerHeld(fd, "marker") {
		t.Error("MarkerHeld says a killed process's marker is held")
	}
	alive, f, err = ProbeMarker(fd, "marker", path)
	if err != nil || alive || f == nil {
		t.Fatalf("ProbeMarker of a killed process's marker = %v, %v, %v; want dead, with the marker", alive, f, err)
	}
	if f.Name() != path {
		t.Errorf("the marker's file is named %q, want %q", f.Name(), path)
	}
	if !MarkerHeld(fd, "marker") {
		t.Error("MarkerHeld does not see the prober's own lock")
	}
	if alive, _, err := ProbeMarker(fd, "marker", path); err != nil || !alive {
		t.Errorf("a second prober = %v, %v; want alive while the first holds the marker", alive, err)
	}
	f.Close()
	alive, f, err = ProbeMarker(fd, "marker", path)
	if err != nil || alive || f == nil {
		t.Fatalf("ProbeMarker after the first prober let go = %v, %v, %v; want dead", alive, f, err)
	}
	f.Close()
}

// TestProbeMarkerRefuses: what a user can put at a marker's name is never written to,
// never blocks the prober, and is never followed.
func TestProbeMarkerRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		plant   func(t *testing.T, dir, path string)
		wantErr error
	}{
		{"hard link to another file", func(t *testing.T, dir, path string) {
			must(t, os.WriteFile(filepath.Join(dir, "precious"), []byte("precious"), 0o600))
			must(t, os.Link(filepath.Join(dir, "precious"), path))
		}, ErrNotMarker},
		{"fifo", func(t *testing.T, dir, path string) {
			must(t, unix.Mkfifo(path, 0o600))
		}, ErrNotMarker},
		{"directory", func(t *testing.T, dir, path string) {
			must(t, os.Mkdir(path, 0o700))
		}, unix.EISDIR},
		{"symlink", func(t *testing.T, dir, path string) {
			must(t, os.WriteFile(filepath.Join(dir, "precious"), []byte("precious"), 0o600))
			must(t, os.Symlink(filepath.Join(dir, "precious"), path))
		}, unix.ELOOP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fd := openDir(t, dir)
			path := filepath.Join(dir, "marker")
			tt.plant(t, dir, path)
			alive, f, err := ProbeMarker(fd, "marker", path)
			if !errors.Is(err, tt.wantErr) || alive || f != nil {
				t.Errorf("ProbeMarker = %v, %v, %v; want %v", alive, f, err, tt.wantErr)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "precious")); err == nil && string(b) != "precious" {
				t.Errorf("the file behind the marker became %q", b)
			}
		})
	}
}

// TestMarkerGone: a marker that is gone is a dead process's, with nothing to hold; a name
// that exists cannot be created again.
func TestMarkerGone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fd := openDir(t, dir)
	alive, f, err := ProbeMarker(fd, "marker", "marker")
	if err != nil || alive || f != nil {
		t.Errorf("ProbeMarker of no marker = %v, %v, %v; want dead, no file", alive, f, err)
	}
	if MarkerHeld(fd, "marker") {
		t.Error("MarkerHeld says a marker that is not there is held")
	}
	m, err := CreateMarker(fd, "marker", "marker")
	must(t, err)
	defer m.Close()
	if _, err := CreateMarker(fd, "marker", "marker"); !errors.Is(err, unix.EEXIST) {
		t.Errorf("CreateMarker of an existing name = %v, want EEXIST", err)
	}
}
