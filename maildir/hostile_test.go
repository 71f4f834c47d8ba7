package maildir

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A user makes dovecot-keywords a sparse file of a terabyte, which costs them nothing: a
// Writer, a Listing and ReadKeywords refuse it by its size, naming it, and never read it (the
// whole of what they allocate stays far below the file's size).
func TestHugeKeywordsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Maildir")
	d, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p := filepath.Join(dir, keywordsName)
	if err := os.WriteFile(p, []byte("0 $Important\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 1<<40); err != nil {
		if err := os.Truncate(p, 1<<34); err != nil {
			t.Skipf("no sparse file here: %v", err)
		}
	}
	for name, open := range map[string]func() error{
		"NewWriter": func() error {
			w, err := NewWriter(d, Options{Host: "h", Fsync: FsyncNone})
			if err == nil {
				w.Close()
			}
			return err
		},
		"List": func() error {
			l, err := d.List()
			if err == nil {
				l.Close()
			}
			return err
		},
		"ReadKeywords": func() error { _, err := d.ReadKeywords(); return err },
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := open()
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%s with a sparse dovecot-keywords: %v; want it refused, naming the file", name, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
			t.Errorf("%s allocated %d bytes for a dovecot-keywords it refuses", name, got)
		}
	}
}
