package host

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAbs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	h, err := Host{Passwd: "pw", SpoolDir: "spool", StateDir: "state", AuditLog: "log/a.jsonl"}.Abs()
	if err != nil {
		t.Fatal(err)
	}
	want := Host{Passwd: filepath.Join(dir, "pw"), SpoolDir: filepath.Join(dir, "spool"), StateDir: filepath.Join(dir, "state"), AuditLog: filepath.Join(dir, "log/a.jsonl")}
	if h != want {
		t.Errorf("without a root: %+v, want %+v", h, want)
	}
	// Under a root, the other paths are the host's: beneath the root, never the working
	// directory.
	h, err = Host{Root: "tree", SpoolDir: "var/mail", StateDir: "/var/lib/x"}.Abs()
	if err != nil {
		t.Fatal(err)
	}
	if h.Root != filepath.Join(dir, "tree") || h.SpoolDir != "var/mail" || h.Spool() != filepath.Join(dir, "tree/var/mail") || h.State() != filepath.Join(dir, "tree/var/lib/x") {
		t.Errorf("under a root: %+v, spool %s, state %s", h, h.Spool(), h.State())
	}
}

func TestDefaults(t *testing.T) {
	var h Host
	if h.State() != DefaultStateDir || h.Audit() != DefaultAuditLog || h.Under("/etc/passwd") != "/etc/passwd" {
		t.Errorf("the zero Host: state %s, audit log %s", h.State(), h.Audit())
	}
	root := t.TempDir()
	h = Host{Root: root}
	if h.State() != filepath.Join(root, DefaultStateDir) || h.Audit() != filepath.Join(root, DefaultAuditLog) {
		t.Errorf("under %s: state %s, audit log %s", root, h.State(), h.Audit())
	}
	if j := DefaultJobs(); j < 2 || j > 8 {
		t.Errorf("DefaultJobs() = %d, want 2 to 8", j)
	}
}

// TestSpool: /var/spool/mail where it is a directory; /var/mail where /var/spool/mail is a
// link to it (Debian) or missing.
func TestSpool(t *testing.T) {
	root := t.TempDir()
	h := Host{Root: root}
	if got := h.Spool(); got != filepath.Join(root, "/var/mail") {
		t.Errorf("neither exists: %s", got)
	}
	if err := os.MkdirAll(filepath.Join(root, "var/mail"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "var/spool"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../mail", filepath.Join(root, "var/spool/mail")); err != nil {
		t.Fatal(err)
	}
	if got := h.Spool(); got != filepath.Join(root, "/var/mail") {
		t.Errorf("/var/spool/mail a link to /var/mail: %s", got)
	}
	if err := os.Remove(filepath.Join(root, "var/spool/mail")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "var/spool/mail"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := h.Spool(); got != filepath.Join(root, DefaultSpoolDir) {
		t.Errorf("/var/spool/mail a directory: %s", got)
	}
	if got := (Host{Root: root, SpoolDir: "/srv/mail"}).Spool(); got != filepath.Join(root, "/srv/mail") {
		t.Errorf("--spool-dir /srv/mail: %s", got)
	}
}
