package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/maildir"
	"golang.org/x/sys/unix"
)

// now is the check time of every test: fixed, so that file ages do not depend on the clock.
var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	curName = "1700000000.M1Q1X0123456789abcdef.host,S=5,W=6:2,S"
	newName = "1700000001.M2Q2X0123456789abcdef.host,S=3,W=3"
	subName = "1700000002.M3Q3X0123456789abcdef.host,S=4,W=4:2,"
)

// healthy builds a home with a Maildir Dovecot would be happy with: a message in cur/ and in
// new/, a valid dovecot-uidlist, a Maildir++ folder, and an old, already migrated spool.
func healthy(t *testing.T) (User, Config) {
	t.Helper()
	root := t.TempDir()
	home := filepath.Join(root, "home", "alice")
	md := filepath.Join(home, "Maildir")
	for _, d := range []string{"cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"} {
		mkdir(t, filepath.Join(md, d))
	}
	write(t, filepath.Join(md, "cur", curName), "hello", 0o600)
	write(t, filepath.Join(md, "new", newName), "abc", 0o600)
	write(t, filepath.Join(md, ".Sent", "cur", subName), "sent", 0o600)
	write(t, filepath.Join(md, "dovecot-uidlist"), "3 V1700000000 N3 G0123456789abcdef0123456789abcdef\n1 :"+curName+"\n2 :"+strings.TrimSuffix(newName, "")+"\n", 0o600)
	spool := filepath.Join(root, "spool")
	mkdir(t, spool)
	write(t, filepath.Join(spool, "alice"), "From a@b Sat Jan  1 00:00:00 2000\n\nold\n", 0o600)
	old := now.Add(-48 * time.Hour)
	must(t, os.Chtimes(filepath.Join(spool, "alice"), old, old))
	// Messages carry their From_ dates, long before the migration.
	for _, m := range []string{"cur/" + curName, "new/" + newName, ".Sent/cur/" + subName} {
		must(t, os.Chtimes(filepath.Join(md, m), now.AddDate(0, -1, 0), now.AddDate(0, -1, 0)))
	}
	for _, d := range []string{"", "cur", "new"} {
		must(t, os.Chtimes(filepath.Join(md, d), now.Add(-time.Hour), now.Add(-time.Hour)))
	}
	u := User{Name: "alice", UID: os.Getuid(), GID: os.Getgid(), Home: home}
	return u, Config{Users: []User{u}, SpoolDir: spool, Mailbox: "Mailbox", Now: now}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	must(t, os.MkdirAll(p, 0o700))
	must(t, os.Chmod(p, 0o700))
}

func write(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	must(t, os.WriteFile(p, []byte(content), mode))
	must(t, os.Chmod(p, mode))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, cfg Config) Report {
	t.Helper()
	if cfg.AsUser == nil {
		cfg.AsUser = testAsUser
	}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHealthy(t *testing.T) {
	t.Parallel()
	_, cfg := healthy(t)
	r := run(t, cfg)
	if len(r.Problems) != 0 || r.Status() != OK {
		t.Fatalf("healthy tree: status %v, problems %+v", r.Status(), r.Problems)
	}
	if r.Users != 1 || r.Maildirs != 1 || r.Folders != 1 || r.Messages != 3 || r.Bytes != 12 {
		t.Errorf("counts: %d users, %d maildirs, %d folders, %d messages, %d bytes; want 1, 1, 1, 3, 12",
			r.Users, r.Maildirs, r.Folders, r.Messages, r.Bytes)
	}
	var out bytes.Buffer
	must(t, WriteText(&out, &r, true))
	if out.Len() != 0 {
		t.Errorf("quiet text output on a healthy tree: %q", out.String())
	}
}

// TestProblems plants each problem on its own in a healthy tree and expects exactly it.
func TestProblems(t *testing.T) {
	t.Parallel()
	md := func(u User, p ...string) string { return filepath.Join(append([]string{u.Home, "Maildir"}, p...)...) }
	tests := []struct {
		name  string
		plant func(t *testing.T, u User, cfg *Config)
		kind  Kind
		sev   Severity
		path  []string // beneath the Maildir
		root  bool     // needs root (chown, mknod)
	}{
		{"missing cur", func(t *testing.T, u User, _ *Config) {
			must(t, os.RemoveAll(md(u, "cur")))
		}, Missing, Critical, []string{"cur"}, false},
		{"missing folder tmp", func(t *testing.T, u User, _ *Config) {
			must(t, os.RemoveAll(md(u, ".Sent", "tmp")))
		}, Missing, Critical, []string{".Sent", "tmp"}, false},
		{"new is a symlink", func(t *testing.T, u User, _ *Config) {
			outside := filepath.Join(t.TempDir(), "new")
			must(t, os.Rename(md(u, "new"), outside))
			must(t, os.Symlink(outside, md(u, "new")))
		}, Symlink, Critical, []string{"new"}, false},
		{"Maildir is a symlink", func(t *testing.T, u User, _ *Config) {
			outside := filepath.Join(t.TempDir(), "Maildir")
			must(t, os.Rename(md(u), outside))
			must(t, os.Symlink(outside, md(u)))
		}, Symlink, Critical, nil, false},
		{"folder is a symlink", func(t *testing.T, u User, _ *Config) {
			must(t, os.Symlink("/etc", md(u, ".Trash")))
		}, Symlink, Critical, []string{".Trash"}, false},
		{"tmp is a file", func(t *testing.T, u User, _ *Config) {
			must(t, os.Remove(md(u, "tmp")))
			write(t, md(u, "tmp"), "x", 0o600)
		}, NotDir, Critical, []string{"tmp"}, false},
		{"cur mode 0755", func(t *testing.T, u User, _ *Config) {
			must(t, os.Chmod(md(u, "cur"), 0o755))
		}, Mode, Warning, []string{"cur"}, false},
		{"Maildir mode 0500", func(t *testing.T, u User, _ *Config) {
			must(t, os.Chmod(md(u), 0o500))
			// Without root, t.TempDir's cleanup could not empty it.
			t.Cleanup(func() { os.Chmod(md(u), 0o700) })
		}, Mode, Critical, nil, false},
		{"message mode 0644", func(t *testing.T, u User, _ *Config) {
			must(t, os.Chmod(md(u, "cur", curName), 0o644))
		}, Mode, Warning, []string{"cur", curName}, false},
		{"message mode 0200", func(t *testing.T, u User, _ *Config) {
			must(t, os.Chmod(md(u, "cur", curName), 0o200))
		}, Mode, Critical, []string{"cur", curName}, false},
		{"message owned by someone else", func(t *testing.T, u User, _ *Config) {
			must(t, os.Chown(md(u, "cur", curName), 12345, 12345))
		}, Owner, Critical, []string{"cur", curName}, true},
		{"new owned by someone else", func(t *testing.T, u User, _ *Config) {
			must(t, os.Chown(md(u, "new"), 12345, 12345))
		}, Owner, Critical, []string{"new"}, true},
		{"dovecot index owned by root", func(t *testing.T, u User, _ *Config) {
			write(t, md(u, "dovecot.index.log"), "x", 0o600)
			must(t, os.Chown(md(u, "dovecot.index.log"), 12345, 12345))
		}, Owner, Critical, []string{"dovecot.index.log"}, true},
		{"FIFO among messages", func(t *testing.T, u User, _ *Config) {
			must(t, syscall.Mkfifo(md(u, "cur", "1700000005.fifo,S=1:2,S"), 0o600))
		}, NotRegular, Critical, []string{"cur", "1700000005.fifo,S=1:2,S"}, false},
		{"device among messages", func(t *testing.T, u User, _ *Config) {
			// A character device like /dev/null: opening it could have side effects, so it is
			// only ever looked at.
			must(t, unix.Mknod(md(u, "cur", "1700000005.dev:2,S"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
		}, NotRegular, Critical, []string{"cur", "1700000005.dev:2,S"}, true},
		{"symlink among messages", func(t *testing.T, u User, _ *Config) {
			must(t, os.Symlink("/etc/shadow", md(u, "new", "1700000005.link")))
		}, NotRegular, Critical, []string{"new", "1700000005.link"}, false},
		{"empty message", func(t *testing.T, u User, _ *Config) {
			write(t, md(u, "cur", "1700000005.empty,S=0:2,S"), "", 0o600)
		}, Empty, Warning, []string{"cur", "1700000005.empty,S=0:2,S"}, false},
		{"invalid name", func(t *testing.T, u User, _ *Config) {
			write(t, md(u, "cur", "1700000005.x:2,S:2,T"), "x", 0o600)
		}, BadName, Warning, []string{"cur", "1700000005.x:2,S:2,T"}, false},
		{"S= wrong", func(t *testing.T, u User, _ *Config) {
			write(t, md(u, "cur", "1700000005.x,S=99:2,S"), "x", 0o600)
		}, SizeMismatch, Critical, []string{"cur", "1700000005.x,S=99:2,S"}, false},
		{"flags in new", func(t *testing.T, u User, _ *Config) {
			write(t, md(u, "new", "1700000005.x,S=1:2,S"), "x", 0o600)
		}, InfoInNew, Warning, []string{"new", "1700000005.x,S=1:2,S"}, false},
		{"stale tmp file", func(t *testing.T, u User, cfg *Config) {
			p := md(u, "tmp", "1700000005.partial")
			write(t, p, "x", 0o600)
			// Nobody can set a ctime back: the check looks from 40 hours on.
			cfg.Now = ctimeOf(t, p).Add(40 * time.Hour)
		}, StaleTmp, Warning, []string{"tmp", "1700000005.partial"}, false},
		{"uidlist does not parse", func(t *testing.T, u User, _ *Config) {
			write(t, md(u, "dovecot-uidlist"), "3 V1 N3\n2 :b\n1 :a\n", 0o600)
		}, BadUIDList, Critical, []string{"dovecot-uidlist"}, false},
		{"uidlist with a GUID Dovecot refuses", func(t *testing.T, u User, _ *Config) {
			write(t, md(u, "dovecot-uidlist"), "3 V1 N3 G00\n1 :"+curName+"\n", 0o600)
		}, BadUIDList, Critical, []string{"dovecot-uidlist"}, false},
		{"uidlist is a FIFO", func(t *testing.T, u User, _ *Config) {
			must(t, os.Remove(md(u, "dovecot-uidlist")))
			must(t, syscall.Mkfifo(md(u, "dovecot-uidlist"), 0o600))
		}, BadUIDList, Critical, []string{"dovecot-uidlist"}, false},
		{"spool still receiving", func(t *testing.T, _ User, cfg *Config) {
			p := filepath.Join(cfg.SpoolDir, "alice")
			must(t, os.Chtimes(p, now.Add(-time.Minute), now.Add(-time.Minute)))
		}, SpoolReceiving, Warning, nil, false},
		{"home Mailbox still receiving", func(t *testing.T, u User, _ *Config) {
			p := filepath.Join(u.Home, "Mailbox")
			write(t, p, "From a@b Sat Jan  1 00:00:00 2000\n\nnew\n", 0o600)
			must(t, os.Chtimes(p, now.Add(-time.Minute), now.Add(-time.Minute)))
		}, SpoolReceiving, Warning, nil, false},
		{"never migrated", func(t *testing.T, u User, _ *Config) {
			must(t, os.RemoveAll(md(u)))
		}, NotMigrated, Warning, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.root && os.Geteuid() != 0 {
				t.Skip("needs root to chown a file to another user")
			}
			u, cfg := healthy(t)
			tt.plant(t, u, &cfg)
			r := run(t, cfg)
			if len(r.Problems) != 1 {
				t.Fatalf("want one %s problem, got %+v", tt.kind, r.Problems)
			}
			p := r.Problems[0]
			if p.Kind != tt.kind || p.Severity != tt.sev || p.User != "alice" {
				t.Errorf("got %s %s for user %q, want %s %s for alice: %+v", p.Severity, p.Kind, p.User, tt.sev, tt.kind, p)
			}
			if tt.path != nil && p.Path != md(u, tt.path...) {
				t.Errorf("path %s, want %s", p.Path, md(u, tt.path...))
			}
			if r.Status() != tt.sev || r.Counts[tt.kind] != 1 {
				t.Errorf("status %v, counts %v", r.Status(), r.Counts)
			}
		})
	}
}

// TestUIDListDovecotReads: files Dovecot 2.3 reads without renumbering anything are healthy,
// among them a version 3 list whose UIDs reach its next UID (Dovecot raises the next UID) and
// one whose last line is still being appended.
func TestUIDListDovecotReads(t *testing.T) {
	t.Parallel()
	for name, text := range map[string]string{
		"UID at next":        "3 V1700000000 N2 G0123456789abcdef0123456789abcdef\n1 :" + curName + "\n2 :" + newName + "\n",
		"append in progress": "3 V1700000000 N3 G0123456789abcdef0123456789abcdef\n1 :" + curName + "\n2 :17",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			u, cfg := healthy(t)
			write(t, filepath.Join(u.Home, "Maildir", "dovecot-uidlist"), text, 0o600)
			if r := run(t, cfg); len(r.Problems) != 0 {
				t.Errorf("problems %+v", r.Problems)
			}
		})
	}
}

// TestSpoolAfterState: with the record of the last pass, mail that arrived since is told by
// bytes, never by times: what lies past the migrated bytes, or another file in the spool's
// place, whatever the mtimes say.
func TestSpoolAfterState(t *testing.T) {
	t.Parallel()
	_, cfg := healthy(t)
	spool := filepath.Join(cfg.SpoolDir, "alice")
	var st unix.Stat_t
	must(t, unix.Stat(spool, &st))
	m := &Migration{Dev: uint64(st.Dev), Inode: st.Ino, Offset: st.Size}
	var asked []string
	cfg.Migrated = func(user, src string, mailbox bool) (*Migration, error) {
		asked = append(asked, fmt.Sprint(user, " ", src, " ", mailbox))
		c := *m
		return &c, nil
	}
	// Migrated whole: healthy, even when the spool's mtime is newer than everything.
	must(t, os.Chtimes(spool, now.Add(-time.Second), now.Add(-time.Second)))
	if r := run(t, cfg); len(r.Problems) != 0 {
		t.Errorf("spool migrated whole: problems %+v", r.Problems)
	}
	if want := "alice " + spool + " false"; len(asked) != 1 || asked[0] != want {
		t.Errorf("Migrated asked %q, want %q", asked, want)
	}
	// A message delivered within the same second as the pass: found, by its bytes.
	late := "\nFrom carol@example.org Sun Jun  2 00:00:00 2024\nSubject: late\n\nstill here\n"
	f, err := os.OpenFile(spool, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.WriteString(late)
	must(t, err)
	must(t, f.Close())
	must(t, os.Chtimes(spool, now.Add(-72*time.Hour), now.Add(-72*time.Hour)))
	r := run(t, cfg)
	if r.Counts[SpoolReceiving] != 1 || !strings.Contains(r.Problems[0].Detail, fmt.Sprintf("%d bytes (1 messages) arrived after the last pass", len(late))) {
		t.Errorf("spool delivered to after the pass: problems %+v", r.Problems)
	}
	// Another file in the spool's place: all it holds arrived since.
	m.Inode++
	r = run(t, cfg)
	if r.Counts[SpoolReceiving] != 1 || !strings.Contains(r.Problems[0].Detail, "another file is there since the last pass") {
		t.Errorf("spool replaced since the pass: problems %+v", r.Problems)
	}
	// A state that cannot be read is said, not guessed around.
	cfg.Migrated = func(string, string, bool) (*Migration, error) { return nil, errors.New("state unreadable") }
	if r := run(t, cfg); r.Counts[Unchecked] != 1 || r.Status() != Unknown {
		t.Errorf("unreadable state: problems %+v", r.Problems)
	}
}

func TestExplicitPath(t *testing.T) {
	t.Parallel()
	u, _ := healthy(t)
	p := filepath.Join(u.Home, "Maildir")
	r := run(t, Config{Paths: []string{p, filepath.Join(u.Home, "nothing")}, Now: now})
	if r.Maildirs != 1 || len(r.Problems) != 1 || r.Problems[0].Kind != Missing || r.Problems[0].User != "" {
		t.Fatalf("maildirs %d, problems %+v", r.Maildirs, r.Problems)
	}
}

func TestMaxListed(t *testing.T) {
	t.Parallel()
	u, cfg := healthy(t)
	for i := range 30 {
		write(t, filepath.Join(u.Home, "Maildir", "cur", "1700000005.x"+string(rune('a'+i%26))+strings.Repeat("y", i/26)+",S=9:2,S"), "x", 0o600)
	}
	cfg.MaxListed = 5
	r := run(t, cfg)
	if len(r.Problems) != 5 || r.Unlisted != 25 || r.Counts[SizeMismatch] != 30 {
		t.Errorf("listed %d, unlisted %d, counted %d; want 5, 25, 30", len(r.Problems), r.Unlisted, r.Counts[SizeMismatch])
	}
}

// TestMaxListedRollUp: the problems not listed are rolled up a line per kind, each with its
// own severity: warnings left out are no critical because a critical kind was left out too.
func TestMaxListedRollUp(t *testing.T) {
	t.Parallel()
	u, cfg := healthy(t)
	md := filepath.Join(u.Home, "Maildir")
	for i := range 8 {
		write(t, filepath.Join(md, "cur", fmt.Sprintf("1700000005.x%d,S=99:2,S", i)), "x", 0o600)
		stale := filepath.Join(md, "tmp", fmt.Sprintf("1700000005.partial%d", i))
		write(t, stale, "x", 0o600)
		must(t, os.Chtimes(stale, now.Add(-40*time.Hour), now.Add(-40*time.Hour)))
	}
	for i := range 30 {
		stale := filepath.Join(md, ".Sent", "tmp", fmt.Sprintf("1700000005.partial%d", i))
		write(t, stale, "x", 0o600)
		must(t, os.Chtimes(stale, now.Add(-40*time.Hour), now.Add(-40*time.Hour)))
	}
	cfg.MaxListed = 5
	// tmp/ files are aged by their ctime, which a test cannot set: the check looks from later.
	cfg.Now = time.Now().Add(40 * time.Hour)
	r := run(t, cfg)
	var b strings.Builder
	must(t, WriteText(&b, &r, true))
	var rollup []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, " more not listed ") {
			rollup = append(rollup, l)
		}
	}
	want := []string{"critical: 3 more not listed [size-mismatch]", "warning: 33 more not listed [stale-tmp]"}
	if strings.Join(rollup, "\n") != strings.Join(want, "\n") || r.Unlisted != 36 {
		t.Errorf("unlisted %d, roll-up:\n%s\nwant:\n%s", r.Unlisted, strings.Join(rollup, "\n"), strings.Join(want, "\n"))
	}
}

func TestFix(t *testing.T) {
	t.Parallel()
	u, cfg := healthy(t)
	md := filepath.Join(u.Home, "Maildir")
	must(t, os.RemoveAll(filepath.Join(md, "tmp")))
	must(t, os.RemoveAll(filepath.Join(md, ".Sent", "new")))
	must(t, os.Chmod(filepath.Join(md, "cur"), 0o755))
	must(t, os.Chmod(filepath.Join(md, "cur", curName), 0o000))
	must(t, os.Chmod(filepath.Join(md, "new", newName), 0o644))
	stale := filepath.Join(md, ".Sent", "tmp", "1700000005.partial")
	write(t, stale, "x", 0o600)
	cfg.Now = ctimeOf(t, stale).Add(40 * time.Hour)
	// Not safe to repair: reported, left alone.
	write(t, filepath.Join(md, "cur", "1700000005.x,S=99:2,S"), "x", 0o600)

	cfg.Fix = true
	r := run(t, cfg)
	if r.Fixed != 6 || r.Counts[SizeMismatch] != 1 || len(r.Counts) != 1 || r.Status() != Critical {
		t.Fatalf("fixed %d, counts %v, status %v: %+v", r.Fixed, r.Counts, r.Status(), r.Problems)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{"tmp", os.ModeDir | 0o700}, {".Sent/new", os.ModeDir | 0o700}, {"cur", os.ModeDir | 0o700},
		{"cur/" + curName, 0o600}, {"new/" + newName, 0o600},
	} {
		fi, err := os.Lstat(filepath.Join(md, c.path))
		if err != nil || fi.Mode() != c.mode {
			t.Errorf("%s: %v %v, want %v", c.path, fi.Mode(), err, c.mode)
		}
	}
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("stale tmp file still there: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(md, "cur", curName)); err != nil || string(b) != "hello" {
		t.Errorf("message content after fix: %q %v", b, err)
	}
	cfg.Fix = false
	if r := run(t, cfg); r.Counts[SizeMismatch] != 1 || len(r.Problems) != 1 {
		t.Errorf("after the fix: %+v", r.Problems)
	}
}

// ctimeOf returns the ctime of the file p.
func ctimeOf(t *testing.T, p string) time.Time {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	return time.Unix(st.Ctim.Unix())
}

// TestStaleTmpByCtime: Dovecot gives a message it saves its received date as mtime while the
// file is still in tmp/, and a large APPEND, COPY or import stays there for minutes. Such a
// file, changed a moment ago (ctime) but dated long ago (mtime), is no interrupted delivery:
// check does not report it and --fix does not remove it. Once its ctime is 36 hours old, it
// is one.
func TestStaleTmpByCtime(t *testing.T) {
	t.Parallel()
	u, cfg := healthy(t)
	saving := filepath.Join(u.Home, "Maildir", "tmp", "1700000005.M1P2.host")
	write(t, saving, "a message being saved", 0o600)
	received := time.Date(2019, 3, 1, 8, 0, 0, 0, time.UTC)
	must(t, os.Chtimes(saving, received, received))
	cfg.Now = time.Now()
	cfg.Fix = true
	if r := run(t, cfg); len(r.Problems) != 0 {
		t.Errorf("a tmp/ file changed now but dated %v: problems %+v", received, r.Problems)
	}
	if _, err := os.Lstat(saving); err != nil {
		t.Fatalf("check --fix removed a tmp/ file being written: %v", err)
	}
	cfg.Now = ctimeOf(t, saving).Add(37 * time.Hour)
	r := run(t, cfg)
	if len(r.Problems) != 1 || r.Problems[0].Kind != StaleTmp || r.Problems[0].Fixed != "removed" {
		t.Fatalf("37 hours after its last change: problems %+v", r.Problems)
	}
	if _, err := os.Lstat(saving); !os.IsNotExist(err) {
		t.Errorf("stale tmp/ file still there: %v", err)
	}
}

func TestFixDoesNotFollowSymlinks(t *testing.T) {
	t.Parallel()
	u, cfg := healthy(t)
	outside := filepath.Join(t.TempDir(), "secret")
	write(t, outside, "secret", 0o644)
	must(t, os.Symlink(outside, filepath.Join(u.Home, "Maildir", "cur", "1700000005.l:2,S")))
	cfg.Fix = true
	r := run(t, cfg)
	if r.Counts[NotRegular] != 1 || r.Fixed != 0 {
		t.Errorf("counts %v, fixed %d", r.Counts, r.Fixed)
	}
	if fi, err := os.Stat(outside); err != nil || fi.Mode() != 0o644 {
		t.Errorf("symlink target changed: %v %v", fi.Mode(), err)
	}
}

func TestOutput(t *testing.T) {
	t.Parallel()
	u, cfg := healthy(t)
	must(t, os.Chmod(filepath.Join(u.Home, "Maildir", "cur"), 0o750))
	must(t, os.RemoveAll(filepath.Join(u.Home, "Maildir", "tmp")))
	r := run(t, cfg)

	var text bytes.Buffer
	must(t, WriteText(&text, &r, true))
	lines := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "warning: user alice: ") && !strings.HasPrefix(lines[1], "warning: user alice: ") {
		t.Errorf("text: %q", text.String())
	}

	var js bytes.Buffer
	must(t, WriteJSON(&js, &r))
	var got struct {
		Status   string
		Exit     int
		Problems []struct{ Severity, Kind, User, Path string }
	}
	must(t, json.Unmarshal(js.Bytes(), &got))
	if got.Status != "critical" || got.Exit != 2 || len(got.Problems) != 2 {
		t.Errorf("json: %s", js.String())
	}

	var prom bytes.Buffer
	must(t, WritePrometheus(&prom, &r, now))
	for _, want := range []string{
		"maildirmig_check_status 2\n", "maildirmig_check_users 1\n",
		`maildirmig_check_problems{kind="mode"} 1` + "\n", `maildirmig_check_problems{kind="missing"} 1` + "\n",
		`maildirmig_check_problems{kind="stale-tmp"} 0` + "\n", "maildirmig_check_messages 3\n",
	} {
		if !strings.Contains(prom.String(), want) {
			t.Errorf("prometheus output lacks %q:\n%s", want, prom.String())
		}
	}
}

func TestCancelled(t *testing.T) {
	t.Parallel()
	_, cfg := healthy(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg.Jobs = 1
	cfg.Users = append(cfg.Users, cfg.Users[0], cfg.Users[0])
	if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a cancelled context: %v", err)
	}
}

// TestLiveMigrationTmpNotStale: the tmp/ files of a maildirmig still writing carry their
// messages' dates as mtime, years old; check does not call them stale, and --fix leaves them.
func TestLiveMigrationTmpNotStale(t *testing.T) {
	t.Parallel()
	u, cfg := healthy(t)
	d, err := maildir.Open(filepath.Join(u.Home, "Maildir"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w, err := maildir.NewWriter(d, maildir.Options{BatchFiles: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	old := cfg.Now.AddDate(-3, 0, 0)
	if _, err := w.Add(&maildir.Message{Date: old, New: true, Content: strings.NewReader("pending\n")}); err != nil {
		t.Fatal(err)
	}
	cfg.Fix = true
	r := run(t, cfg)
	for _, p := range r.Problems {
		t.Errorf("problem reported beside a live migration: %+v", p)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("the migration after check --fix: %v", err)
	}
}

// TestStatusError: a check that stopped early is unknown, unless it found something critical
// before, which stays critical.
func TestStatusError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ found, want Severity }{{OK, Unknown}, {Warning, Unknown}, {Critical, Critical}} {
		r := Report{Error: "interrupted", worst: tc.found}
		if got := r.Status(); got != tc.want {
			t.Errorf("found %v, then an error: status %v, want %v", tc.found, got, tc.want)
		}
	}
}

// TestWriteTextForgedName: a user names a message file with a newline followed by a healthy
// summary, and terminal controls (ESC, CSI raw and in UTF-8, DEL). check's text output, which
// cron mails and monitoring reads line by line, must keep it one escaped field of one problem
// line: as many lines as problems, then the real summary, and no control anywhere.
func TestWriteTextForgedName(t *testing.T) {
	t.Parallel()
	u, cfg := healthy(t)
	forged := "1700000005.x\nOK: 1 users, 1 maildirs, 1 folders, 3 messages, 12 bytes: no problems\x1b[2J\x9b31m\u009b\x7f,S=99:2,S"
	write(t, filepath.Join(u.Home, "Maildir", "cur", forged), "x", 0o600)
	r := run(t, cfg)
	var out bytes.Buffer
	must(t, WriteText(&out, &r, false))
	t.Logf("%s", out.String())
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(r.Problems) == 0 || len(lines) != len(r.Problems)+1 {
		t.Fatalf("%d lines for %d problems and the summary", len(lines), len(r.Problems))
	}
	escaped := `1700000005.x\nOK: 1 users, 1 maildirs, 1 folders, 3 messages, 12 bytes: no problems\x1b[2J\x9b31m\u009b\x7f,S=99:2,S`
	for _, l := range lines[:len(r.Problems)] {
		if !strings.HasPrefix(l, "critical: user alice: ") && !strings.HasPrefix(l, "warning: user alice: ") || !strings.Contains(l, "/cur/"+escaped+": ") {
			t.Errorf("problem line %q does not name the file as %q", l, escaped)
		}
	}
	if last := lines[len(lines)-1]; last != Summary(&r) {
		t.Errorf("last line %q is not the report's summary", last)
	}
	for i, c := range []byte(out.String()) {
		if c < 0x20 && c != '\n' || c == 0x7f || c == 0x9b || c == 0xc2 && out.Bytes()[i+1] == 0x9b {
			t.Fatalf("control byte %#x at %d in the output", c, i)
		}
	}
}

// TestSpoolHardLinkNotRead: a user replaces their migrated spool with a hard link to someone
// else's mbox (where protected_hardlinks is off, or to a file they may write), or to a file of
// theirs elsewhere. check, as root, says that mail arrived, but does not read the file to
// count its messages.
func TestSpoolHardLinkNotRead(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the linked file belongs to another uid")
	}
	_, cfg := healthy(t)
	spool := filepath.Join(cfg.SpoolDir, "alice")
	var st unix.Stat_t
	must(t, unix.Stat(spool, &st))
	cfg.Migrated = func(user, src string, mailbox bool) (*Migration, error) {
		return &Migration{Dev: uint64(st.Dev), Inode: st.Ino, Offset: st.Size}, nil
	}
	other := filepath.Join(t.TempDir(), "bob")
	write(t, other, "From x@y Sat Jan  1 00:00:00 2000\n\nbob's\n\nFrom x@y Sat Jan  1 00:00:01 2000\n\nbob's too\n", 0o600)
	for _, c := range []struct {
		name  string
		owner int
	}{{"another user's mbox", 42502}, {"the user's own file, linked twice", os.Getuid()}} {
		must(t, os.Chown(other, c.owner, c.owner))
		must(t, os.Remove(spool))
		must(t, os.Link(other, spool))
		r := run(t, cfg)
		if r.Counts[SpoolReceiving] != 1 {
			t.Fatalf("%s: problems %+v", c.name, r.Problems)
		}
		d := r.Problems[0].Detail
		if strings.Contains(d, "messages)") || !strings.Contains(d, "not read: not the user's own file with one link") {
			t.Errorf("%s: %q; want the file not read", c.name, d)
		}
	}
}
