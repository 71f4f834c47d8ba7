package mailtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RepoRoot returns the directory holding go.mod, found by walking up from the working
// directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("mailtest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Corpora returns the path of the shared real-world corpora (../shared/corpora from the
// repository root), or skips the test with a log line when the folder is absent, as it is
// in a fresh clone.
func Corpora(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "..", "shared", "corpora")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Skipf("mailtest: corpora folder %s absent; skipping", dir)
	}
	return dir
}

// ParseFetchText parses doveadm's default "key: value" output (records separated by an
// empty line or a form feed), as stored in expected-doveadm-fetch files. Only single-line
// fields are supported.
func ParseFetchText(b []byte) []map[string]string {
	var recs []map[string]string
	cur := map[string]string{}
	flush := func() {
		if len(cur) > 0 {
			recs = append(recs, cur)
			cur = map[string]string{}
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" || line == "\f" {
			flush()
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		cur[key] = strings.TrimPrefix(val, " ")
	}
	flush()
	return recs
}
