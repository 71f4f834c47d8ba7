package audit

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/internal/safefs"
	"golang.org/x/sys/unix"
)

func TestAudit(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "log", "maildirmig")
	path := filepath.Join(dir, "audit.jsonl")
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Event("run-start", map[string]any{"argv": []string{"maildirmig", "mbox"}, "version": "devel"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Event("user-failed", map[string]any{"outcome": "failed", "err": errors.New("boom"), "src": "/var/mail/alice", "user": "alice", "uid": 1001, "dst": nil}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Event("run-end", nil); err == nil {
		t.Error("Log after Close succeeded")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), b)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if m["run"] != a.Run() {
			t.Errorf("line %q: run %v, want %s", l, m["run"], a.Run())
		}
	}
	if !strings.HasPrefix(lines[1], `{"time":"`) || !strings.Contains(lines[1], `,"event":"user-failed","user":"alice","uid":1001,"src":"/var/mail/alice","err":"boom","outcome":"failed"}`) {
		t.Errorf("field order or content wrong: %s", lines[1])
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %o, want %o", p, fi.Mode().Perm(), want)
		}
	}
	// A second run appends.
	a2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.Event("run-end", nil); err != nil {
		t.Fatal(err)
	}
	a2.Close()
	b2, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b2), string(b)) || strings.Count(string(b2), "\n") != 3 {
		t.Errorf("second run did not append:\n%s", b2)
	}
}

func TestAuditRefusesSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "shadow")
	if err := os.WriteFile(target, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.jsonl")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil {
		t.Fatal("Open through a symlink succeeded")
	}
	if b, _ := os.ReadFile(target); string(b) != "secret" {
		t.Errorf("target changed to %q", b)
	}
}

// TestAuditRefusesExisting plants at the audit log's name what root must not append to.
func TestAuditRefusesExisting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		rootOnly bool
		plant    func(t *testing.T, dir, path string)
		want     string
	}{
		{"hard link", false, func(t *testing.T, dir, path string) {
			must(t, os.WriteFile(filepath.Join(dir, "other"), nil, 0o600))
			must(t, os.Link(filepath.Join(dir, "other"), path))
		}, "has 2 links"},
		{"fifo", false, func(t *testing.T, dir, path string) {
			must(t, unix.Mkfifo(path, 0o600))
		}, "is not a regular file"},
		{"directory", false, func(t *testing.T, dir, path string) {
			must(t, os.Mkdir(path, 0o700))
		}, "is a directory"},
		{"another owner", true, func(t *testing.T, dir, path string) {
			must(t, os.WriteFile(path, nil, 0o600))
			must(t, os.Chown(path, 42192, 42192))
		}, "owned by uid 42192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.rootOnly && os.Geteuid() != 0 {
				t.Skip("needs root to chown")
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "audit.jsonl")
			tt.plant(t, dir, path)
			a, err := Open(path)
			if err == nil {
				a.Close()
				t.Fatal("Open accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open = %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestAuditFixesMode(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	must(t, os.WriteFile(path, nil, 0o644))
	must(t, os.Chmod(path, 0o644))
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	must(t, a.Close())
	fi, err := os.Stat(path)
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if n := a.Notices(); len(n) != 1 || !strings.Contains(n[0], "had mode 0644") {
		t.Errorf("Notices() = %q, want one about mode 0644", n)
	}
	b, err := os.ReadFile(path)
	must(t, err)
	var ev map[string]any
	must(t, json.Unmarshal(b, &ev))
	if ev["event"] != EventNotice || ev["kind"] != EventAuditFixed {
		t.Errorf("first line %s, want a %s notice", b, EventAuditFixed)
	}
}

// TestAuditUnderRoot: an absolute symlink in a mounted system points inside that system, not
// at the host's directory of the same name; the same on a kernel without openat2 (before
// 5.6), where the log was once not opened at all. Not parallel: the fallback is a switch of
// package safefs.
func TestAuditUnderRoot(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		name := "openat2"
		if fallback {
			name = "without openat2"
		}
		t.Run(name, func(t *testing.T) {
			was := safefs.SetFallback(fallback)
			defer safefs.SetFallback(was)
			host := t.TempDir() // stands for the host's /data
			root := t.TempDir()
			must(t, os.Mkdir(filepath.Join(root, "data"), 0o755))
			must(t, os.Symlink("/data", filepath.Join(root, "var")))
			must(t, os.Symlink(host, filepath.Join(root, "hostlink")))
			a, err := OpenUnder(root, "/var/log/maildirmig/audit.jsonl")
			if err != nil {
				t.Fatal(err)
			}
			must(t, a.Close())
			if _, err := os.Lstat(filepath.Join(root, "data/log/maildirmig/audit.jsonl")); err != nil {
				t.Errorf("the log is not beneath the root's /data: %v", err)
			}
			// The host directory the second link names is not under root: nothing may appear in it.
			if _, err := OpenUnder(root, "/hostlink/audit.jsonl"); err == nil {
				t.Error("OpenUnder followed an absolute symlink out of the root")
			}
			if entries, _ := os.ReadDir(host); len(entries) != 0 {
				t.Errorf("files written outside the root: %v", entries)
			}
		})
	}
}

func TestMkdirUnder(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	p, err := MkdirUnder(root, "/var/lib/maildirmig")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	must(t, err)
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v, want a 0700 directory", p, fi.Mode())
	}
	// Readable by others, writable by root alone: used as it is.
	must(t, os.Chmod(p, 0o755))
	if _, err = MkdirUnder(root, "/var/lib/maildirmig"); err != nil {
		t.Errorf("MkdirUnder on a 0755 directory of ours: %v", err)
	}
	fi, err = os.Lstat(p)
	must(t, err)
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v after MkdirUnder, want 0755 as it was", fi.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		must(t, os.Chown(p, 42193, 42193))
		if _, err := MkdirUnder(root, "/var/lib/maildirmig"); err == nil || !strings.Contains(err.Error(), "owned by uid 42193") {
			t.Errorf("MkdirUnder on another uid's directory = %v", err)
		}
	}
}

// TestSharedDirectoriesRefused: an administrator's slip such as --state-dir /tmp or
// --audit-log /tmp/audit.jsonl names a directory others can write in, where they could remove
// or replace what root keeps. It is refused with an error that names it and its mode, and its
// mode is left as it was (it was once narrowed to 1700, which broke /tmp for everyone). The
// state directory must be writable by root alone; the audit log's may be group-writable, as
// Ubuntu's /var/log (root:syslog 0775) is, but not writable by others.
func TestSharedDirectoriesRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		mode  uint32
		state string // the error of MkdirUnder, "" for none
		log   string // the error of OpenUnder, "" for none
	}{
		{"sticky world-writable like /tmp", 0o1777, "has mode 1777: its group or others can write in it", "has mode 1777: others can write in it"},
		{"world-writable", 0o777, "has mode 0777: its group or others can write in it", "has mode 0777: others can write in it"},
		{"group-writable", 0o775, "has mode 0775: its group or others can write in it", ""},
		{"private", 0o700, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "shared")
			must(t, os.Mkdir(dir, 0o700))
			must(t, unix.Chmod(dir, tc.mode))
			_, err := MkdirUnder("", dir)
			if tc.state == "" && err != nil || tc.state != "" && (err == nil || !strings.Contains(err.Error(), dir+" "+tc.state)) {
				t.Errorf("MkdirUnder(%s) = %v, want %q", dir, err, tc.state)
			}
			a, err := Open(filepath.Join(dir, "audit.jsonl"))
			if tc.log == "" && err != nil || tc.log != "" && (err == nil || !strings.Contains(err.Error(), dir+" "+tc.log)) {
				t.Errorf("Open(%s/audit.jsonl) = %v, want %q", dir, err, tc.log)
			}
			if err == nil {
				must(t, a.Close())
			} else if _, serr := os.Lstat(filepath.Join(dir, "audit.jsonl")); !os.IsNotExist(serr) {
				t.Errorf("a refused audit log was created (%v)", serr)
			}
			var st unix.Stat_t
			must(t, unix.Stat(dir, &st))
			if st.Mode&0o7777 != tc.mode {
				t.Errorf("mode %04o after the refusal, want %04o as it was", st.Mode&0o7777, tc.mode)
			}
		})
	}
}

// TestAuditAfterCutLine: a run that ran out of space in the middle of a line left the log
// without a final newline; the next run starts its lines on a new line, so that every whole
// line still parses as JSON. The space runs out for real, on a small tmpfs.
func TestAuditAfterCutLine(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=8k,mode=0700"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	path := filepath.Join(dir, "audit.jsonl")
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; i < 10000 && werr == nil; i++ {
		werr = a.Event("message", map[string]any{"user": "alice", "index": i, "name": strings.Repeat("x", 300)})
	}
	if !errors.Is(werr, unix.ENOSPC) {
		t.Fatalf("filling the log: %v, want ENOSPC", werr)
	}
	a.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || b[len(b)-1] == '\n' {
		t.Fatalf("the full file system left the log ending %q: no line was cut", b[max(0, len(b)-20):])
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, "size=64k"); err != nil {
		t.Fatalf("remount with more space: %v", err)
	}
	a, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"run-start", "run-end"} {
		if err := a.Event(e, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	cut := 0
	var events []string
	for _, l := range lines {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			cut++
			continue
		}
		if m["run"] == a.Run() {
			events = append(events, m["event"].(string))
		}
	}
	if cut != 1 {
		t.Errorf("%d lines do not parse, want only the one cut short", cut)
	}
	if strings.Join(events, " ") != "run-start"+" "+"run-end" {
		t.Errorf("the second run's lines: %q, want run-start and run-end, each on its own line", events)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRegistry: an event or a field the registry does not describe is refused in a test
// binary, so that no test can write a line the manual does not explain; the registry names
// each event once, each with a meaning.
func TestRegistry(t *testing.T) {
	t.Parallel()
	a, err := Open(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Event("user-vanished", map[string]any{"user": "alice"}); err == nil {
		t.Error("an event not in the registry was written")
	}
	if err := a.Event(EventUserDone, map[string]any{"user": "alice", "mood": "happy"}); err == nil {
		t.Error("a field not in the registry was written")
	}
	if err := a.Event(EventUserDone, map[string]any{"user": "alice", "written": 2}); err != nil {
		t.Errorf("a registered event and field: %v", err)
	}
	seen := map[string]bool{}
	for _, e := range Events {
		if seen[e.Name] || e.Meaning == "" || len(e.Fields) == 0 {
			t.Errorf("event %q: twice, or without meaning or fields", e.Name)
		}
		seen[e.Name] = true
	}
}
