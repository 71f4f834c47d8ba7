package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestCheckFolderRoot(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dir string
		ok  bool
	}{
		{"", true}, {"mail", true}, {"Mail/folders", true},
		{"/var/mail", false}, {"..", false}, {"../other", false}, {"mail/../..", false}, {"mail/", false}, {".", false}, {"./mail", false},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			if err := CheckFolderRoot(tc.dir); (err == nil) != tc.ok {
				t.Errorf("CheckFolderRoot(%q) = %v, want ok %v", tc.dir, err, tc.ok)
			}
		})
	}
}

// TestRunFoldersLocked: a folder another program holds locked (an fcntl write lock, as a
// Dovecot expunge or a procmail delivery takes, or a fresh dotlock beside it) fails its user
// with a lock timeout while the other folders are migrated; the next run migrates it alone.
func TestRunFoldersLocked(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"fcntl", "dotlock"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			tr := newTree(t, "alice")
			tr.write("var/mail/alice", msgA, "alice")
			tr.mkdir("home/alice/mail", 0o700, "alice")
			tr.write("home/alice/mail/Archive", msgB, "alice")
			tr.write("home/alice/mail/Busy", msgC, "alice")
			var release func()
			switch how {
			case "fcntl":
				f, err := os.OpenFile(tr.path("home/alice/mail/Busy"), os.O_RDWR, 0)
				must(t, err)
				must(t, unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}))
				release = func() { f.Close() }
			case "dotlock":
				host, _ := os.Hostname()
				tr.write("home/alice/mail/Busy.lock", fmt.Sprintf("%d:%s", os.Getpid(), host), "alice")
				release = func() { must(t, os.Remove(tr.path("home/alice/mail/Busy.lock"))) }
			}
			cfg := tr.config()
			cfg.LockTimeout = 300 * time.Millisecond
			_, res := run(t, cfg)
			r := res["alice"]
			if r.Outcome != OutcomeLockTimeout || !errors.Is(r.Err, ErrLockTimeout) {
				t.Fatalf("alice: outcome %q, err %v", r.Outcome, r.Err)
			}
			got := map[string]string{}
			for _, f := range r.Folders {
				got[f.Name] = f.Outcome
				// The administrator must be told which file, not a descriptor of the worker's.
				if f.Err != nil && strings.Contains(f.Err.Error(), "/proc/self/fd") {
					t.Errorf("folder %s: error %q names a descriptor, not the folder", f.Name, f.Err)
				}
			}
			if got["Archive"] != OutcomeMigrated || got["Busy"] != OutcomeLockTimeout {
				t.Fatalf("folders: %v", got)
			}
			if n := countFiles(t, tr.path("home/alice/Maildir/.Busy")); n != 0 {
				t.Errorf(".Busy holds %d messages before its lock was free", n)
			}

			release()
			_, res = run(t, cfg)
			r = res["alice"]
			if r.Err != nil || r.Outcome != OutcomeMigrated {
				t.Fatalf("second run: outcome %q, err %v", r.Outcome, r.Err)
			}
			for _, f := range r.Folders {
				want := int64(0)
				if f.Name == "Busy" {
					want = 1
				}
				if f.Stats.Written != want {
					t.Errorf("second run, %s: %d written, want %d", f.Name, f.Stats.Written, want)
				}
			}
			if n := countFiles(t, tr.path("home/alice/Maildir/.Busy")); n != 1 {
				t.Errorf(".Busy holds %d messages, want 1", n)
			}
			if _, err := os.Lstat(tr.path("home/alice/mail/Archive.lock")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Archive.lock left behind: %v", err)
			}
		})
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		must(t, err)
		n += len(entries)
	}
	return n
}

// TestServeFoldersDotlockTakenOver: a folder whose dotlock was replaced by another program
// while it was migrated fails with that reason, as the INBOX does, for the dotlock it leaves
// behind holds Dovecot back; the folder beside it is migrated.
func TestServeFoldersDotlockTakenOver(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "ada")
	tr.mkdir("home/ada/mail", 0o700, "ada")
	tr.write("home/ada/mail/Archive", msgA, "ada")
	tr.write("home/ada/mail/Busy", msgB, "ada")
	var fi unix.Stat_t
	must(t, unix.Stat(tr.path("home/ada"), &fi))
	req := &workerRequest{Op: opFolders, Home: tr.path("home/ada"), Owner: int(fi.Uid), Maildir: "Maildir", FolderRoot: "mail",
		LockTimeout: time.Second}
	lock := tr.path("home/ada/mail/Busy.lock")
	failed := map[string]string{}
	done := map[string]bool{}
	err := serveFolders(context.Background(), req, nil, func(m workerMsg) {
		switch m.T {
		case "record":
			if m.Folder == "Busy" {
				// Another program breaks our lock as stale and takes it.
				must(t, os.Remove(lock))
				must(t, os.WriteFile(lock, []byte("1:elsewhere"), 0o600))
			}
		case msgFolderFailed:
			failed[m.Folder] = m.Err
		case msgFolderDone:
			done[m.Folder] = true
		}
	})
	must(t, err)
	if !done["Archive"] || done["Busy"] || !strings.Contains(failed["Busy"], "taken over") {
		t.Fatalf("done %v, failed %v; want Busy failed for its dotlock taken over", done, failed)
	}
	if b, err := os.ReadFile(lock); err != nil || string(b) != "1:elsewhere" {
		t.Errorf("the other program's dotlock: %q, %v", b, err)
	}
}

// A folder message the user deleted through Dovecot (its file and its dovecot-uidlist line
// gone) is reported deleted by verify, as an INBOX message is; one whose file alone is gone
// is still missing.
func TestVerifyFolderDeletedByUser(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		listed  bool // the uidlist line stays
		deleted bool
	}{
		{"expunged through Dovecot", false, true},
		{"file removed, still listed", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := newTree(t, "fay")
			tr.mkdir("home/fay/mail", 0o700, "fay")
			tr.write("home/fay/mail/Archive", msgA+msgB, "fay")
			if _, res := run(t, tr.config()); res["fay"].Err != nil {
				t.Fatalf("run: %+v", res["fay"])
			}
			dir := tr.path("home/fay/Maildir/.Archive")
			// The first message (read, in cur/), by its position in the name (Q0).
			matches, err := filepath.Glob(filepath.Join(dir, "cur", "*Q0X*"))
			must(t, err)
			if len(matches) != 1 || countFiles(t, dir) != 2 {
				t.Fatalf(".Archive: %d messages, first %v", countFiles(t, dir), matches)
			}
			name := filepath.Base(matches[0])
			must(t, os.Remove(matches[0]))
			if !tc.listed {
				p := filepath.Join(dir, "dovecot-uidlist")
				b, err := os.ReadFile(p)
				must(t, err)
				base, _, _ := strings.Cut(name, ":")
				var out strings.Builder
				for _, l := range strings.SplitAfter(string(b), "\n") {
					if !strings.Contains(l, base) {
						out.WriteString(l)
					}
				}
				must(t, os.WriteFile(p, []byte(out.String()), 0o600))
			}
			var v []UserVerify
			must(t, Verify(context.Background(), tr.config(), func(u UserVerify) { v = append(v, u) }))
			if len(v) != 1 || v[0].Err != nil || len(v[0].Folders) != 1 || v[0].Folders[0].Err != nil {
				t.Fatalf("verify: %+v", v)
			}
			r := v[0].Folders[0].Result
			if tc.deleted && (r.Found != 1 || len(r.Deleted) != 1 || len(r.Missing) != 0) ||
				!tc.deleted && (r.Found != 1 || len(r.Deleted) != 0 || len(r.Missing) != 1) {
				t.Fatalf("verify: %+v; deleted by the user: %v", r, tc.deleted)
			}
		})
	}
}

// An interrupted folder keeps its state at the last resume point, as the INBOX does: the
// next run migrates only the rest, writes no message twice, and verify finds them all.
func TestRunFolderInterruptedSavesState(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "lia")
	const n = interruptible
	src, at := bigMailbox(n)
	tr.mkdir("home/lia/mail", 0o700, "lia")
	tr.write("home/lia/mail/Big", src, "lia")
	runInterrupted(t, tr.config())
	states, err := folderStates{Dir: tr.path("var/lib/maildirmig/folders")}.Load("lia")
	must(t, err)
	st := states["Big"]
	if st == nil || st.Offset == int64(len(src)) || at[st.Offset] != st.Messages {
		t.Fatalf("state after the interruption: %+v; want one at a message boundary before the end", st)
	}
	dir := tr.path("home/lia/Maildir/.Big")
	before := countFiles(t, dir)
	_, res := run(t, tr.config())
	r := res["lia"]
	if r.Err != nil || len(r.Folders) != 1 {
		t.Fatalf("re-run: %+v", r)
	}
	f := r.Folders[0]
	if f.Outcome != OutcomeMigrated || f.Stats.Messages != n-st.Messages || f.Stats.Written != int64(n-before) || countFiles(t, dir) != n {
		t.Fatalf("re-run after the interruption at %d (%d files): %+v, %d files", st.Offset, before, f, countFiles(t, dir))
	}
	b, err := os.ReadFile(filepath.Join(dir, "dovecot-uidlist"))
	must(t, err)
	if got := strings.Count(string(b), "\n") - 1; got != n {
		t.Errorf("uidlist lists %d messages, want %d", got, n)
	}
	var v []UserVerify
	must(t, Verify(context.Background(), tr.config(), func(u UserVerify) { v = append(v, u) }))
	if len(v) != 1 || len(v[0].Folders) != 1 || v[0].Folders[0].Err != nil || v[0].Folders[0].Result.Found != n {
		t.Fatalf("verify: %+v", v)
	}
}

// An entry of ~/mail that is skipped (a symlink, a file that is not an mbox) is warned about
// on the console the first time only, so that cron mails it once, while the audit log notes
// it every time and the plan keeps listing it; an entry skipped anew is warned about again.
func TestRunFoldersSkippedWarnOnce(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "sam")
	tr.mkdir("home/sam/mail", 0o700, "sam")
	tr.write("home/sam/mail/Archive", msgA, "sam")
	tr.write("home/sam/mail/notes.txt", "just notes, not mail\n", "sam")
	must(t, os.Symlink("/etc/passwd", tr.path("home/sam/mail/evil")))
	notices := func() int {
		n := 0
		for _, e := range tr.audit() {
			if e["event"] == EventNotice && (e["kind"] == EventFolderSkipped || e["kind"] == EventFolderNotMbox) {
				n++
			}
		}
		return n
	}
	runWarn := func() []string {
		var mu sync.Mutex
		var warnings []string
		cfg := tr.config()
		cfg.Warn = func(s string) {
			if strings.HasPrefix(s, "not running as root") {
				return // said on every run without root, whatever the folders
			}
			mu.Lock()
			defer mu.Unlock()
			warnings = append(warnings, s)
		}
		if _, res := run(t, cfg); res["sam"].Err != nil {
			t.Fatalf("run: %+v", res["sam"])
		}
		return warnings
	}
	for i, tc := range []struct {
		change func()
		warn   []string // substrings, one per warning expected
		audit  int      // notices in the audit log so far
	}{
		{nil, []string{"mail/evil not migrated", "folder notes.txt"}, 2},
		{nil, nil, 4},
		{func() { tr.write("home/sam/mail/more.txt", "more notes\n", "sam") }, []string{"folder more.txt"}, 7},
		{func() { must(t, os.Remove(tr.path("home/sam/mail/evil"))) }, nil, 9},
		{func() { must(t, os.Symlink("/etc/passwd", tr.path("home/sam/mail/evil"))) }, []string{"mail/evil not migrated"}, 12},
	} {
		if tc.change != nil {
			tc.change()
		}
		got := runWarn()
		ok := len(got) == len(tc.warn)
		for j := 0; ok && j < len(got); j++ {
			ok = strings.Contains(got[j], tc.warn[j])
		}
		if !ok {
			t.Errorf("run %d: warnings %q, want %q", i+1, got, tc.warn)
		}
		if n := notices(); n != tc.audit {
			t.Errorf("run %d: %d skip notices in the audit log, want %d", i+1, n, tc.audit)
		}
	}
	_, skipped, err := listFolders(tr.path("home/sam"), owner(usersUser("sam", tr.UID("sam"))), "")
	must(t, err)
	if len(skipped) != 1 || skipped[0].Source != "evil" {
		t.Errorf("plan: skipped %+v, want evil", skipped)
	}
}

// A home the worker refuses (writable by others) fails its user's folders in a run, and a dry
// run says so too: both open the home by the same rule.
func TestPlanFoldersUnsafeHome(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "uma")
	tr.mkdir("home/uma/mail", 0o700, "uma")
	tr.write("home/uma/mail/Archive", msgB, "uma")
	must(t, os.Chmod(tr.path("home/uma"), 0o777))
	plan, err := Plan(context.Background(), tr.config())
	if err != nil || len(plan) != 1 || plan[0].Action != ActionRefuse || !strings.Contains(plan[0].Reason, "writable") {
		t.Fatalf("plan: %+v, %v; want uma refused for her home", plan, err)
	}
	_, res := run(t, tr.config())
	if r := res["uma"]; r.Outcome != OutcomeFailed || !strings.Contains(fmt.Sprint(r.Err), "writable") {
		t.Fatalf("run: outcome %q, err %v; want uma failed for her home", r.Outcome, r.Err)
	}
}

// TestRunFoldersFIFOFlood: a user puts 20,000 FIFOs with long names in ~/mail. Each is an
// entry that is not migrated, and each once gave a warning on root's console and a notice in
// the audit log on every run, and a record of skipped entries of several MB that the next run
// could not read ("unexpected end of JSON input"), failing the user every night after. Now a
// run names the first few on the console and counts the rest in one line, logs the first
// maxSkippedLogged and counts the rest, and keeps a record the next run reads; the next run,
// with nothing changed, warns about nothing.
func TestRunFoldersFIFOFlood(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "flo")
	tr.mkdir("home/flo/mail", 0o700, "flo")
	tr.write("home/flo/mail/Archive", msgA, "flo")
	const fifos = 20000
	for i := range fifos {
		p := tr.path(fmt.Sprintf("home/flo/mail/fifo-%05d-%s", i, strings.Repeat("x", 200)))
		must(t, unix.Mkfifo(p, 0o600))
		tr.chown(p, "flo")
	}
	notices := func() (n int, counted string) {
		for _, e := range tr.audit() {
			if e["event"] == EventNotice && e["kind"] == EventFolderSkipped {
				n++
				if d, _ := e["detail"].(string); strings.Contains(d, "not logged one by one") {
					counted = d
				}
			}
		}
		return n, counted
	}
	runWarn := func() []string {
		var mu sync.Mutex
		var warnings []string
		cfg := tr.config()
		cfg.Warn = func(s string) {
			if strings.HasPrefix(s, "not running as root") {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			warnings = append(warnings, s)
		}
		if _, res := run(t, cfg); res["flo"].Err != nil {
			t.Fatalf("run: %v", res["flo"].Err)
		}
		return warnings
	}
	root := tr.path("home/flo/mail")
	got := runWarn()
	t.Logf("first run: %d warnings, the last %q", len(got), got[len(got)-1])
	if len(got) != maxSkippedNamed+1 || got[maxSkippedNamed] != fmt.Sprintf("user flo: %d more entries beneath %s not migrated", fifos-maxSkippedNamed, root) {
		t.Errorf("first run: %d warnings, want %d named and one count", len(got), maxSkippedNamed)
	}
	n, counted := notices()
	if want := fmt.Sprintf("%d more entries beneath %s not migrated, not logged one by one", fifos-maxSkippedLogged, root); n != maxSkippedLogged+1 || counted != want {
		t.Errorf("first run: %d skip notices in the audit log (count %q), want %d and %q", n, counted, maxSkippedLogged+1, want)
	}
	store := folderStates{Dir: filepath.Join(tr.path("var/lib/maildirmig"), "folders")}
	p, err := store.skippedPath("flo")
	must(t, err)
	fi, err := os.Stat(p)
	must(t, err)
	kept, more, err := store.LoadSkipped("flo")
	t.Logf("record of skipped entries: %d bytes, %d kept, %d more", fi.Size(), len(kept), more)
	if err != nil || len(kept)+more != fifos {
		t.Fatalf("the record of skipped entries: %d kept, %d more, %v; want %d in all", len(kept), more, err, fifos)
	}
	if got := runWarn(); len(got) != 0 {
		t.Errorf("second run, nothing changed: warnings %q", got)
	}
	if n, _ := notices(); n != 2*(maxSkippedLogged+1) {
		t.Errorf("second run: %d skip notices in the audit log in all, want %d", n, 2*(maxSkippedLogged+1))
	}
}

// TestStateFileLimit: the reader and the writer of state files keep to one limit. A user
// with thousands of mbox folders (3,000 here) has a folder state of more than 1 MiB, which a
// reader once refused after the writer had written it, failing the user on every later run;
// it is read back now. A state beyond the limit is refused by the writer, with the old state
// left as it was, never written for the reader to refuse.
func TestStateFileLimit(t *testing.T) {
	t.Parallel()
	store := folderStates{Dir: t.TempDir()}
	states := map[string]*State{}
	for i := range 3000 {
		src := fmt.Sprintf("Archive/%04d/Projects and correspondence of the year", i)
		states[src] = &State{User: "ann", UID: 1000, Source: "/home/ann/mail/" + src, Maildir: "/home/ann/Maildir/.Archive." + strconv.Itoa(i),
			Offset: 123456789, Messages: 4321, SHA256: strings.Repeat("ab", 32), UIDValidity: 1700000000, Zone: "Europe/Berlin"}
	}
	must(t, store.Save("ann", states))
	p, err := store.path("ann")
	must(t, err)
	fi, err := os.Stat(p)
	must(t, err)
	got, err := store.Load("ann")
	t.Logf("folder state of %d folders: %d bytes", len(states), fi.Size())
	if err != nil || len(got) != len(states) {
		t.Fatalf("loading the state of %d folders (%d bytes): %d, %v", len(states), fi.Size(), len(got), err)
	}
	huge := map[string]string{"x": strings.Repeat("y", maxStateFile)}
	err = writeStateFile(store.Dir, p, huge)
	if err == nil || !strings.Contains(err.Error(), "more than the 16777216 a state file may hold") {
		t.Errorf("writing a state beyond the limit: %v", err)
	}
	if got, err := store.Load("ann"); err != nil || len(got) != len(states) {
		t.Errorf("the state after a refused write: %d folders, %v", len(got), err)
	}
}
