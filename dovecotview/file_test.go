package dovecotview

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/mailtest"
	"github.com/maildirmig/maildirmig/internal/wholefile"
)

// helperEnv makes the test binary a recorder that is killed mid-way (see TestKilledRecording).
const helperEnv = "DOVECOTVIEW_TEST_KILLED_WRITER"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		killedWriter(path)
	}
	os.Exit(m.Run())
}

// killedWriter starts a recording to path, writes part of it to its temporary file, says so
// on stdout and waits to be killed.
func killedWriter(path string) {
	w, err := Create(path, true)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if err := w.WriteHeader(Header{Time: time.Now()}); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if err := w.WriteUser(alice()); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if err := w.bw.Flush(); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("written")
	select {}
}

func writeRecording(t *testing.T, path string, force bool, users ...*User) error {
	t.Helper()
	w, err := Create(path, force)
	if err != nil {
		return err
	}
	h := header()
	h.Time, h.Host = t0, "mail1"
	if err := w.WriteHeader(h); err != nil {
		w.Abort()
		return err
	}
	for _, u := range users {
		if err := w.WriteUser(u); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit(t0.Add(time.Minute))
}

// TestRoundTrip writes users that were recorded, unknown to Dovecot and failed, and reads
// them back as they were, from a file of mode 0600.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "before.jsonl")
	users := []*User{alice(), {Name: "root", Unknown: "userdb lookup: user root doesn't exist"}, {Name: "bob", Error: "doveadm fetch: exit status 75"}}
	if err := writeRecording(t, path, false, users...); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	want := header()
	want.Kind, want.Format, want.Time, want.Host = kindRecording, FormatVersion, t0, "mail1"
	if !reflect.DeepEqual(f.Header, want) {
		t.Errorf("header %+v, want %+v", f.Header, want)
	}
	if got := f.Users(); !reflect.DeepEqual(got, []string{"alice", "root", "bob"}) {
		t.Errorf("users %q", got)
	}
	if f.Mailboxes != 3 || f.Messages != 5 {
		t.Errorf("totals: %d mailboxes, %d messages; want 3, 5", f.Mailboxes, f.Messages)
	}
	for _, u := range users {
		got, err := f.User(u.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, u) {
			t.Errorf("user %s read back as\n%+v\nwant\n%+v", u.Name, got, u)
		}
	}
	if _, err := f.User("carol"); err == nil {
		t.Errorf("User(carol) of a recording without carol: no error")
	}
	// One line per message, readable by grep: an administrator can follow one message.
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `{"kind":"message","user":"alice","mailbox":"INBOX","uid":3,"flags":["$Work","\\Flagged"],"received":"2024-01-01T13:00:00Z","size":103,"uidl":"000000036553F100","sha256":"`) {
		t.Errorf("no readable line for alice's INBOX UID 3 in\n%s", b)
	}
}

// TestCreateRefusesExisting: a recording never replaces a file unless forced, so that a typo
// cannot destroy the recording taken before the switch; forced, it replaces it whole, 0600.
func TestCreateRefusesExisting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "before.jsonl")
	old := []byte("the recording taken before the switch\n")
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	err := writeRecording(t, path, false, alice())
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Create over an existing file: %v; want an error naming %s that matches fs.ErrExist", err, path)
	}
	if b, _ := os.ReadFile(path); string(b) != string(old) {
		t.Fatalf("the existing file changed: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files in the directory, want the recording alone", len(ents))
	}
	if err := writeRecording(t, path, true, alice()); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if _, err := Open(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("forced: %v, mode %v", err, st.Mode().Perm())
	}
	if err := os.Symlink(path, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := writeRecording(t, filepath.Join(dir, "link"), false, alice()); !errors.Is(err, fs.ErrExist) {
		t.Errorf("a symlink at the name: %v; want it refused as existing", err)
	}
	if err := writeRecording(t, dir, true, alice()); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("a directory at the name, forced: %v", err)
	}
	missing := filepath.Join(dir, "no-such-dir", "before.jsonl")
	if err := writeRecording(t, missing, false, alice()); err == nil || err.Error() != "dovecotview: create "+missing+": no such file or directory" {
		t.Errorf("in a directory that does not exist: %v", err)
	}
}

// TestCommitRefusesLateFile: a file that appears under the name while the recording is made
// (another run, a typo in a second terminal) is not replaced at the end either.
func TestCommitRefusesLateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "after.jsonl")
	w, err := Create(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(header()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("other\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(t0); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Commit: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "other\n" {
		t.Errorf("the file that appeared was replaced: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the temporary file was left: %d entries", len(ents))
	}
}

// TestKilledRecording kills (SIGKILL) a process in the middle of a forced recording over an
// existing one: the existing recording is intact, the half-written one is in a temporary
// file only, and the next recording removes that file.
func TestKilledRecording(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "before.jsonl")
	if err := writeRecording(t, path, false, alice()); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path)
	pid := mailtest.KillWhenSaid(t, "written", helperEnv+"="+path)
	if b, _ := os.ReadFile(path); string(b) != string(old) {
		t.Fatalf("the recording changed under a killed run")
	}
	tmp := filepath.Join(dir, wholefile.TempName("before.jsonl", pid))
	if st, err := os.Stat(tmp); err != nil || st.Size() == 0 {
		t.Fatalf("the killed run's temporary file: %v (the test cannot tell what it proves)", err)
	}
	if _, err := Open(tmp); err == nil || !strings.Contains(err.Error(), "no end line") {
		t.Errorf("the half-written recording opens: %v", err)
	}
	if err := writeRecording(t, path, true, alice()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the killed run's temporary file is still there: %v", err)
	}
}

// TestFullDisk records onto a file system that fills up: the error says so, the recording
// being replaced is intact, and no temporary file is left.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0755"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	path := filepath.Join(dir, "before.jsonl")
	if err := writeRecording(t, path, false, alice()); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path)
	big := alice()
	for i := range 5000 {
		big.Mailboxes[1].Messages = append(big.Mailboxes[1].Messages, Message{UID: uint32(i + 10), Received: t0, Size: 1})
	}
	err := writeRecording(t, path, true, big)
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("recording onto a full file system: %v, want ENOSPC", err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(old) {
		t.Errorf("the recording being replaced changed")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files left, want the old recording alone", len(ents))
	}
}

// TestOpenRefuses: a file that is not a whole recording is refused with the line that is wrong.
func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.jsonl")
	if err := writeRecording(t, good, false, alice()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	lines := strings.SplitAfter(string(b), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	n := len(lines)
	for _, tt := range []struct {
		name, text, want string
	}{
		{"empty", "", "is empty"},
		{"cut short", strings.Join(lines[:n-3], ""), "no end line"},
		{"not a recording", `{"kind":"user","user":"x"}` + "\n", "line 1: not a maildirmig recording"},
		{"not JSON", "From alice Mon Jan  1 10:00:00 2024\n", "line 1: not JSON"},
		{"newer format", strings.Replace(lines[0], `"format":1`, `"format":2`, 1) + strings.Join(lines[1:], ""), "line 1: format 2, this maildirmig reads format 1"},
		{"a typo in a field", lines[0] + strings.Replace(lines[1], `"subscribed"`, `"subscribd"`, 1) + strings.Join(lines[2:], ""), `line 2: json: unknown field "subscribd"`},
		{"a message out of place", lines[0] + lines[1] + lines[3] + lines[2] + strings.Join(lines[4:], ""), "line 3: message 1 of user alice, mailbox \"INBOX\", outside that mailbox's lines"},
		{"UIDs out of order", lines[0] + lines[1] + lines[2] + lines[4] + lines[3] + strings.Join(lines[5:], ""), "UIDs must ascend"},
		{"a line removed", strings.Join(lines[:4], "") + strings.Join(lines[5:], ""), "the end line counts 1 users, 3 mailboxes, 5 messages; the file holds 1, 3, 4"},
		{"a user twice", strings.Join(lines[:n-1], "") + lines[1] + lines[n-1], "user alice recorded twice"},
		{"text after the end", string(b) + lines[1], "text after the end line"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
		if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v; want an error naming the file with %q", tt.name, err, tt.want)
		}
	}
}
