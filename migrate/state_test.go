package migrate

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStateSaveLoad(t *testing.T) {
	t.Parallel()
	s := StateStore{Dir: filepath.Join(t.TempDir(), "state")}
	if st, err := s.Load("alice", KindSpool, "/var/mail/alice"); err != nil || st != nil {
		t.Fatalf("Load without state = %v, %v; want nil, nil", st, err)
	}
	want := &State{User: "alice", UID: 1001, Kind: KindSpool, Source: "/var/mail/alice", Dev: 7, Inode: 42, Size: 100, Offset: 90,
		SHA256: "ab", Messages: 3, Maildir: "/home/alice/Maildir", UIDValidity: 5, Time: time.Unix(1700000000, 0).UTC()}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("alice", KindSpool, "/var/mail/alice")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
	fi, err := os.Stat(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %o, want 700", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(s.Dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d files, want 1 (no temporary left)", len(entries))
	}
	// The same user's ~/Mailbox is another source, with a state of its own.
	if st, err := s.Load("alice", KindMailbox, "/home/alice/Mailbox"); err != nil || st != nil {
		t.Errorf("Load of the Mailbox after saving the spool = %+v, %v; want nil, nil", st, err)
	}
	mb := *want
	mb.Kind, mb.Source, mb.Offset = KindMailbox, "/home/alice/Mailbox", 10
	must(t, s.Save(&mb))
	if got, err := s.Load("alice", KindSpool, "/var/mail/alice"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("spool state after saving the Mailbox's = %+v, %v", got, err)
	}
	if got, err := s.Load("alice", KindSpool, "/var/spool/mail/alice"); err != nil || got != nil {
		t.Errorf("state of another spool path = %+v, %v; want none", got, err)
	}
	for _, bad := range []string{"", "../x", ".hidden", "a/b"} {
		if err := s.Save(&State{User: bad}); err == nil {
			t.Errorf("Save(user %q) succeeded", bad)
		}
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	const first = "From a Mon Jan  1 00:00:00 2024\n\none\n\n"
	const second = "From b Mon Jan  1 00:00:01 2024\n\ntwo\n\n"
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	tests := []struct {
		name      string
		state     *State
		content   string
		otherFile bool
		wantStart int64
		wantIndex int64
		wantErr   error
	}{
		{name: "no state", content: first, wantStart: 0},
		{name: "appended", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 1}, content: first + second, wantStart: int64(len(first)), wantIndex: 1},
		{name: "unchanged", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 1}, content: first, wantStart: int64(len(first)), wantIndex: 1},
		{name: "prefix edited", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 1}, content: "From a Mon Jan  1 00:00:00 2024\n\nONE\n\n" + second, wantErr: ErrSourceChanged},
		{name: "shrunk", state: &State{Offset: int64(len(first + second)), SHA256: sum(first + second), Messages: 2}, content: first, wantErr: ErrSourceChanged},
		{name: "other inode", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 1}, content: first, otherFile: true, wantErr: ErrSourceChanged},
		{name: "after truncate", state: &State{Offset: 0, SHA256: emptySHA256, Messages: 4, BaseIndex: 4}, content: second, wantStart: 0, wantIndex: 4},
		// A crash between --after and the state saying it was done.
		{name: "truncated before a crash", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 3, Intent: AfterTruncate}, content: "", wantStart: 0, wantIndex: 3},
		{name: "truncated, then delivered to", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 3, Intent: AfterTruncate}, content: second, wantStart: 0, wantIndex: 3},
		{name: "truncation never happened", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 3, Intent: AfterTruncate}, content: first + second, wantStart: int64(len(first)), wantIndex: 3},
		{name: "rename never happened", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 3, Intent: AfterRename, IntentTo: "/nonexistent"}, content: first, wantStart: int64(len(first)), wantIndex: 3},
		{name: "renamed elsewhere than announced", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 3, Intent: AfterRename, IntentTo: "/nonexistent"}, content: second, otherFile: true, wantErr: ErrSourceChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "mbox")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			if tt.state != nil {
				tt.state.Source = path
				tt.state.Dev, tt.state.Inode = uint64(st.Dev), st.Ino
				if tt.otherFile {
					tt.state.Inode++
				}
			}
			start, index, h, err := tt.state.Resume(f, st)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Resume = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if start != tt.wantStart || index != tt.wantIndex {
				t.Errorf("Resume = start %d index %d, want %d %d", start, index, tt.wantStart, tt.wantIndex)
			}
			if got, want := hex.EncodeToString(h.Sum(nil)), sum(tt.content[:start]); got != want {
				t.Errorf("hash covers something else than the first %d bytes", start)
			}
		})
	}
}

// A state an earlier build kept as <user>.json is read for the source it describes, whatever
// the kind asked, and removed once its successor is saved.
func TestStateLegacyFile(t *testing.T) {
	t.Parallel()
	s := StateStore{Dir: t.TempDir()}
	legacy := filepath.Join(s.Dir, "bob.json")
	must(t, os.WriteFile(legacy, []byte(`{"user":"bob","source":"/var/mail/bob","offset":12,"messages":1,"maildir":"/home/bob/Maildir"}`), 0o600))
	if st, err := s.Load("bob", KindMailbox, "/home/bob/Mailbox"); err != nil || st != nil {
		t.Errorf("Mailbox state from a legacy spool state = %+v, %v; want none", st, err)
	}
	st, err := s.Load("bob", KindSpool, "/var/mail/bob")
	if err != nil || st == nil || st.Offset != 12 || st.Messages != 1 {
		t.Fatalf("legacy state = %+v, %v", st, err)
	}
	st.Kind = KindSpool
	must(t, s.Save(st))
	if _, err := os.Lstat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy state still there after Save: %v", err)
	}
	if got, err := s.Load("bob", KindSpool, "/var/mail/bob"); err != nil || got == nil || got.Offset != 12 {
		t.Errorf("state after migrating the file = %+v, %v", got, err)
	}
}

// A source renamed by --after rename before a crash kept the state from saying so: the next
// run finds it where the intent said and starts the new file after its messages.
func TestResumeAfterRenameIntent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "mbox")
	must(t, os.WriteFile(path, []byte("From a Mon Jan  1 00:00:00 2024\n\none\n\n"), 0o600))
	var old unix.Stat_t
	must(t, unix.Stat(path, &old))
	to := path + ".migrated"
	must(t, os.Rename(path, to))
	must(t, os.WriteFile(path, []byte("From b Mon Jan  1 00:00:01 2024\n\ntwo\n\n"), 0o600))
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	var st unix.Stat_t
	must(t, unix.Fstat(int(f.Fd()), &st))
	s := &State{Source: path, Dev: uint64(old.Dev), Inode: old.Ino, Offset: 10, SHA256: "x", Messages: 5, Intent: AfterRename, IntentTo: to}
	start, index, _, err := s.Resume(f, st)
	if err != nil || start != 0 || index != 5 {
		t.Errorf("Resume = %d, %d, %v; want 0, 5", start, index, err)
	}
	s.IntentTo = path + ".elsewhere"
	if _, _, _, err := s.Resume(f, st); !errors.Is(err, ErrSourceChanged) {
		t.Errorf("Resume with the renamed file not where announced = %v, want ErrSourceChanged", err)
	}
}

// stateHelperEnv makes the test binary a run that saves alice's state into the directory it
// names and is killed in the middle of the write: it says "ready" once its temporary file is
// there, and waits.
const stateHelperEnv = "MIGRATE_TEST_STATE_HELPER"

func stateWriteHelper(dir string) int {
	stateWriting = func(string) {
		fmt.Println("ready")
		time.Sleep(time.Hour)
	}
	err := StateStore{Dir: dir}.Save(&State{User: "alice", Source: "/var/mail/alice"})
	fmt.Fprintln(os.Stderr, "the state write was not killed:", err)
	return 1
}

func TestParseStateTemp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		pid        int
		legacy, ok bool
	}{
		{".alice.spool-0123456789ab.json.P4321.998877.tmp", 4321, false, true},
		{".al.ice.json.P12.3.tmp", 12, false, true},
		{".alice.998877.tmp", 0, true, true},
		{".x.P12.998877.tmp", 12, false, true}, // a legacy file of user x.P12 looks like pid 12's
		{".alice.json.P12.abc.tmp", 0, false, false},
		{"alice.json", 0, false, false},
		{".alice.tmp", 0, false, false},
		{"alice.1.tmp", 0, false, false},
	} {
		pid, legacy, ok := parseStateTemp(c.name)
		if pid != c.pid || legacy != c.legacy || ok != c.ok {
			t.Errorf("parseStateTemp(%q) = %d %v %v, want %d %v %v", c.name, pid, legacy, ok, c.pid, c.legacy, c.ok)
		}
	}
}

// TestSweepStateTempsAfterKill: a run killed with SIGKILL in the middle of a state write leaves
// its temporary file; removeDeadStateTemps removes it, and an old one of an earlier build, but not
// the temporary file of a live run (this one, or another process) nor a fresh file of an
// earlier build.
func TestSweepStateTempsAfterKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), stateHelperEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	killed, err := filepath.Glob(filepath.Join(dir, fmt.Sprintf(".alice.*.json.P%d.*.tmp", cmd.Process.Pid)))
	must(t, err)
	if len(killed) != 1 {
		t.Fatalf("the killed write left %v, want one temporary file", killed)
	}

	mine, err := os.CreateTemp(dir, stateTempPattern(filepath.Join(dir, "bob.json")))
	must(t, err)
	mine.Close()
	keep := []string{filepath.Base(mine.Name()), ".carol.json.P1.123.tmp", ".dave.4455.tmp", "erin.json"}
	oldLegacy := ".frank.6677.tmp"
	for _, n := range keep[1:] {
		must(t, os.WriteFile(filepath.Join(dir, n), nil, 0o600))
	}
	must(t, os.WriteFile(filepath.Join(dir, oldLegacy), nil, 0o600))
	old := time.Now().Add(-2 * legacyTempAge)
	must(t, os.Chtimes(filepath.Join(dir, oldLegacy), old, old))

	removed, err := removeDeadStateTemps(dir)
	must(t, err)
	sort.Strings(removed)
	want := []string{filepath.Base(killed[0]), oldLegacy}
	sort.Strings(want)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	for _, n := range keep {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if _, err := os.Lstat(killed[0]); err == nil {
		t.Errorf("%s left", killed[0])
	}
}

// A state saved without the directory's fsync is there to read at once, and what waits for
// its sync (the removal of older records) waits: it does not run when the sync fails.
func TestStateSyncOrder(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	store := StateStore{Dir: dir}
	var y stateSync
	st := &State{User: "alice", Source: "/var/mail/alice", Offset: 42}
	if err := store.saveUnsynced(st, &y); err != nil {
		t.Fatal(err)
	}
	if got, err := store.Load("alice", KindSpool, "/var/mail/alice"); err != nil || got == nil || got.Offset != 42 {
		t.Fatalf("Load = %+v, %v; want the state just saved", got, err)
	}
	ran := 0
	y.later(func() { ran++ })
	if ran != 0 {
		t.Fatal("ran before the sync")
	}
	if err := y.sync(dir); err != nil || ran != 1 {
		t.Fatalf("sync = %v, ran %d times; want nil and once", err, ran)
	}
	// Once done, nothing is left to do.
	if err := y.sync(dir); err != nil || ran != 1 {
		t.Fatalf("second sync = %v, ran %d times; want nil and still once", err, ran)
	}

	if err := store.saveUnsynced(st, &y); err != nil {
		t.Fatal(err)
	}
	y.later(func() { ran++ })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := y.sync(dir); err == nil || ran != 1 {
		t.Fatalf("sync of a directory gone = %v, ran %d times; want an error and nothing run", err, ran)
	}
}

// A fresh pass (--force) replaces the records of the one before, and removes the older
// generation by the end of the run, once its own state is durable.
func TestRunDropsOlderRecords(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "ona")
	tr.write("var/mail/ona", msgA+msgB, "ona")
	cfg := tr.config()
	if _, res := run(t, cfg); res["ona"].Outcome != OutcomeMigrated {
		t.Fatalf("first run: %+v", res["ona"])
	}
	store := StateStore{Dir: tr.path("var/lib/maildirmig")}
	src := tr.path("var/mail/ona")
	st, err := store.Load("ona", KindSpool, src)
	if err != nil || st == nil {
		t.Fatalf("state after the first run: %+v, %v", st, err)
	}
	old, err := store.recordsPath("ona", KindSpool, src, st.Gen)
	must(t, err)
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("records of the first run: %v", err)
	}
	cfg.Convert.KeepHeaders, cfg.Force = true, true
	if _, res := run(t, cfg); res["ona"].Outcome != OutcomeMigrated || res["ona"].Err != nil {
		t.Fatalf("with --force: %+v", res["ona"])
	}
	next, err := store.Load("ona", KindSpool, src)
	if err != nil || next == nil || next.Gen != st.Gen+1 || next.Open {
		t.Fatalf("state after --force: %+v, %v; want generation %d, closed", next, err, st.Gen+1)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("records of generation %d after the fresh pass: %v; want them removed", st.Gen, err)
	}
	cur, err := store.recordsPath("ona", KindSpool, src, next.Gen)
	must(t, err)
	if fi, err := os.Stat(cur); err != nil || fi.Size() != next.RecordsSize {
		t.Errorf("records of generation %d: %v, %v; want %d bytes", next.Gen, fi, err, next.RecordsSize)
	}
}
