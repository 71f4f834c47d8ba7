package check

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// reportHelperEnv names the report file the helper process of TestReportFileKilled writes.
const reportHelperEnv = "CHECK_REPORT_HELPER"

// reportHelper writes half a report to path, says so on stdout, and waits to be killed.
func reportHelper(path string) {
	err := WriteReportFile(path, func(w io.Writer) error {
		fmt.Fprint(w, "maildirmig_check_status 2\n# half of a new report")
		if err := w.(*bufio.Writer).Flush(); err != nil {
			return err
		}
		fmt.Println("written")
		select {}
	})
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// reportDir returns a directory for report files that WriteReportFile accepts: this user's,
// writable by its owner only.
func reportDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeString(path, s string) error {
	return WriteReportFile(path, func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	})
}

// TestReportFile: the report replaces the old one whole, mode 0644 whatever the umask, and no
// temporary file is left; a report whose writing fails leaves the old one as it was.
func TestReportFile(t *testing.T) {
	path := filepath.Join(reportDir(t), "maildirmig.prom")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	if err := writeString(path, "new\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("the file holds %q", b)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != ReportFileMode {
		t.Errorf("mode %v (%v), want %o", fi.Mode(), err, ReportFileMode)
	}
	boom := errors.New("boom")
	err := WriteReportFile(path, func(w io.Writer) error {
		io.WriteString(w, "half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("a failed write: %v, want boom", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("after a failed write the file holds %q", b)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the directory holds %v, want the report alone", entries)
	}
}

// TestReportFileRefused: a directory others may write to, a symlink anywhere in the path, and
// (as root) a directory of another user are refused, and nothing is written.
func TestReportFileRefused(t *testing.T) {
	base := reportDir(t)
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		filepath.Join(shared, "r.prom"):                      "writable by others",
		filepath.Join(base, "link", "r.prom"):                "symlink",
		filepath.Join(base, "link", "..", "real", "ok.prom"): "",
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(base, "theirs")
		if err := os.Mkdir(theirs, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(theirs, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		cases[filepath.Join(theirs, "r.prom")] = "owned by uid 4242"
	}
	for path, want := range cases {
		err := writeString(path, "x\n")
		if want == "" {
			// filepath.Abs cleans link/.. away without reading the link: the real directory.
			if err != nil {
				t.Errorf("%s: %v", path, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", path, err, want)
		}
		if _, serr := os.Lstat(path); serr == nil {
			t.Errorf("%s was written", path)
		}
	}
	if entries, _ := os.ReadDir(shared); len(entries) != 0 {
		t.Errorf("the shared directory got %v", entries)
	}
}

// TestReportFileKilled: a process killed with SIGKILL in the middle of writing a report
// leaves the old report whole; its temporary file is not a *.prom file, and the next report
// removes it.
func TestReportFileKilled(t *testing.T) {
	dir := reportDir(t)
	path := filepath.Join(dir, "maildirmig.prom")
	oldReport := "maildirmig_check_status 0\n"
	if err := os.WriteFile(path, []byte(oldReport), 0o644); err != nil {
		t.Fatal(err)
	}
	mailtest.KillWhenSaid(t, "written", reportHelperEnv+"="+path)

	if b, _ := os.ReadFile(path); string(b) != oldReport {
		t.Errorf("after the kill the report holds %q, want the old one", b)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*.prom"))
	if len(matches) != 1 {
		t.Errorf("*.prom matches %v, want the report alone", matches)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".maildirmig.prom.*.tmp"))
	if len(left) != 1 {
		t.Fatalf("the killed write left %v, want its temporary file", left)
	}
	if b, _ := os.ReadFile(left[0]); !strings.Contains(string(b), "half of a new report") {
		t.Errorf("the temporary file holds %q: the kill did not come in the middle", b)
	}

	if err := writeString(path, "maildirmig_check_status 1\n"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("after the next report the directory holds %v, want the report alone", entries)
	}
}
