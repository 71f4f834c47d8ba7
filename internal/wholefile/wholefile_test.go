package wholefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestWholeFile: nothing is at the name before Commit, the file is whole after it with the mode
// asked whatever the umask; a second file is refused without Replace and replaces the first
// with it; the temporary file of a process that no longer runs is removed by the next Create,
// and Abort leaves nothing.
func TestWholeFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.prom")
	f, err := Create(path, Options{Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("one\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("before Commit the name holds something: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one\n" {
		t.Errorf("after Commit: %q", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	if _, err := Create(path, Options{Mode: 0o644}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over a file without Replace: %v", err)
	}

	// A pid no process has: Linux pids stay below 2^22.
	stale := filepath.Join(dir, TempName("report.prom", 1<<22+1))
	if err := os.WriteFile(stale, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err = Create(path, Options{Mode: 0o600, Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a dead process's temporary file was left: %v", err)
	}
	f.WriteString("two\n")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two\n" {
		t.Errorf("after a replacing Commit: %q", b)
	}

	f, err = Create(path, Options{Mode: 0o600, Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("three\n")
	f.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("after Abort the directory holds %v", ents)
	}
	if b, _ := os.ReadFile(path); string(b) != "two\n" {
		t.Errorf("after Abort: %q", b)
	}
}
