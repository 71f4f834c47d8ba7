package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rollback runs Rollback with cfg and returns its summary and each user's result.
func rollback(t *testing.T, cfg Config) (Summary, map[string]UserResult) {
	t.Helper()
	results := map[string]UserResult{}
	cfg.UserDone = func(r UserResult) { results[r.User] = r }
	sum, err := Rollback(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	return sum, results
}

// snap describes every file and symlink beneath each of paths: mode, owner, inode, mtime and
// the sha256 of its bytes; a file rewritten, replaced or touched shows. Directories show by
// their entries.
func snap(t *testing.T, paths ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range paths {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return nil
			}
			if err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			desc := fmt.Sprintf("%o %d:%d", st.Mode, st.Uid, st.Gid)
			if !d.IsDir() {
				desc += fmt.Sprintf(" ino %d mtime %d.%09d", st.Ino, st.Mtim.Sec, st.Mtim.Nsec)
			}
			if d.Type().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(b)
				desc += " " + hex.EncodeToString(sum[:8])
			}
			out[p] = desc
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sameSnap fails the test with what differs between two snaps.
func sameSnap(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var diff []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diff = append(diff, p+": gone")
		} else if g != w {
			diff = append(diff, fmt.Sprintf("%s: %s, was %s", p, g, w))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			diff = append(diff, fmt.Sprintf("%s: new (%s)", p, g))
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Errorf("%s:\n%s", what, strings.Join(diff, "\n"))
	}
}

func (tr *tree) read(rel string) string {
	b, err := os.ReadFile(tr.path(rel))
	must(tr.t, err)
	return string(b)
}

func (tr *tree) stateDir() string { return tr.path("var/lib/maildirmig") }

// TestRollbackKeepsTail: mail that reached the spool after the last pass is kept, byte for
// byte, after the Maildir's messages, and the next pass migrates it alone.
func TestRollbackKeepsTail(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "alice")
	tr.write("var/mail/alice", msgA+msgB, "alice")
	run(t, tr.config())
	maildir := snap(t, tr.path("home/alice/Maildir"))
	tr.appendTo("var/mail/alice", msgC)

	_, res := rollback(t, tr.config())
	r := res["alice"]
	if r.Outcome != OutcomeRolledBack || r.Err != nil || r.Stats.Messages != 2 || r.Stats.Existed != int64(len(msgC)) {
		t.Fatalf("rollback: %+v; want 2 messages written back and the %d bytes since kept", r, len(msgC))
	}
	spool := tr.read("var/mail/alice")
	head, tail := spool[:len(spool)-len(msgC)], spool[len(spool)-len(msgC):]
	if tail != msgC || int64(len(head)) != r.Stats.Bytes {
		t.Fatalf("the spool does not end with the late mail after the Maildir's %d bytes:\n%s", r.Stats.Bytes, spool)
	}
	for _, want := range []string{"X-IMAPbase: ", "X-UID: 1\n", "X-UID: 2\n", "Subject: one", "Subject: two"} {
		if !strings.Contains(head, want) {
			t.Errorf("the Maildir's part lacks %q:\n%s", want, head)
		}
	}
	sameSnap(t, "the Maildir after the rollback", snap(t, tr.path("home/alice/Maildir")), maildir)

	// The way forward again: the two written back are found, the late one migrated.
	_, res = run(t, tr.config())
	if r := res["alice"]; r.Err != nil || r.Stats.Written != 1 || len(tr.files("alice")) != 3 {
		t.Fatalf("the pass after the rollback: %+v, files %v; want the late mail alone written", r, tr.files("alice"))
	}
}

// TestRollbackRefusesChangedSource: a spool whose migrated part changed since the last pass
// (a byte of a message, cut short, another file in its place) is refused with
// ErrRollbackChanged; the spool is left byte for byte and inode as it was, with nothing
// beside it, and the state and the Maildir are untouched.
func TestRollbackRefusesChangedSource(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(tr *tree)
	}{
		{"a byte changed", func(tr *tree) {
			tr.write("var/mail/alice", strings.Replace(msgA+msgB, "first body", "First body", 1), "alice")
		}},
		{"cut short", func(tr *tree) { must(t, os.Truncate(tr.path("var/mail/alice"), int64(len(msgA)+5))) }},
		{"another file", func(tr *tree) {
			must(t, os.Rename(tr.path("var/mail/alice"), tr.path("var/mail/alice.old")))
			tr.write("var/mail/alice", msgA+msgB, "alice")
			must(t, os.Remove(tr.path("var/mail/alice.old")))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := newTree(t, "alice")
			tr.write("var/mail/alice", msgA+msgB, "alice")
			run(t, tr.config())
			tc.change(tr)
			before := snap(t, tr.path("var/mail"), tr.path("home/alice"), tr.stateDir())
			_, res := rollback(t, tr.config())
			r := res["alice"]
			if r.Outcome != OutcomeFailed || !errors.Is(r.Err, ErrRollbackChanged) || !strings.Contains(r.Err.Error(), tr.path("var/mail/alice")) {
				t.Fatalf("rollback: outcome %s, err %v; want it refused, naming the spool", r.Outcome, r.Err)
			}
			sameSnap(t, "after the refusal", snap(t, tr.path("var/mail"), tr.path("home/alice"), tr.stateDir()), before)
		})
	}
}

// TestRollbackTwiceWritesNothing: a second rollback with nothing changed finds every mbox
// (the spool with its late mail, the folders, the subscriptions) already written and writes
// nothing: no file rewritten, replaced or touched, the state as it was.
func TestRollbackTwiceWritesNothing(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "alice")
	tr.write("var/mail/alice", msgA+msgB, "alice")
	tr.mkdir("home/alice/mail", 0o700, "alice")
	tr.write("home/alice/mail/Archive", msgC, "alice")
	run(t, tr.config())
	tr.write("home/alice/Maildir/subscriptions", "V\t2\n\nArchive\n", "alice")
	tr.appendTo("var/mail/alice", msgC)
	if _, res := rollback(t, tr.config()); res["alice"].Outcome != OutcomeRolledBack {
		t.Fatalf("first rollback: %+v", res["alice"])
	}
	before := snap(t, tr.path("var/mail"), tr.path("home/alice/mail"), tr.stateDir())
	_, res := rollback(t, tr.config())
	if r := res["alice"]; r.Outcome != OutcomeUpToDate || r.Err != nil || r.Total().Written != 0 {
		t.Fatalf("second rollback: %+v; want it up to date, nothing written", r)
	}
	sameSnap(t, "after the second rollback", snap(t, tr.path("var/mail"), tr.path("home/alice/mail"), tr.stateDir()), before)
}

// TestRollbackNewFolderAlreadyWritten: a folder made in the Maildir after the switch becomes
// a new mbox; when the rollback that wrote it died before its state was saved, the next one
// must know that mbox for its own and leave it, not take it for mail that arrived since and
// write every message twice.
func TestRollbackNewFolderAlreadyWritten(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "alice")
	tr.write("var/mail/alice", msgA, "alice")
	tr.mkdir("home/alice/mail", 0o700, "alice")
	tr.write("home/alice/mail/Archive", msgB, "alice")
	run(t, tr.config())
	// Dovecot made the folder New and copied a message into it.
	for _, d := range []string{".New", ".New/cur", ".New/new", ".New/tmp"} {
		tr.mkdir("home/alice/Maildir/"+d, 0o700, "alice")
	}
	tr.write("home/alice/Maildir/.New/cur/1704200000.M1P1.host:2,S", "From: n@example.org\nSubject: new folder\n\nin New\n", "alice")
	if _, res := rollback(t, tr.config()); res["alice"].Err != nil {
		t.Fatalf("first rollback: %+v", res["alice"])
	}
	written := tr.read("home/alice/mail/New")
	if strings.Count(written, "Subject: new folder") != 1 {
		t.Fatalf("mail/New after the rollback:\n%s", written)
	}
	// The run that wrote it died before root kept its state.
	store := folderStates{Dir: filepath.Join(tr.stateDir(), "folders")}
	m, err := store.Load("alice")
	must(t, err)
	if m["New"] == nil {
		t.Fatalf("no state for the new folder: %v", m)
	}
	delete(m, "New")
	must(t, store.Save("alice", m))
	// The rollback after comes in another second, as it would after a kill: a UIDVALIDITY
	// for New taken from the clock would differ, and the mbox with it.
	time.Sleep(1100 * time.Millisecond)

	_, res := rollback(t, tr.config())
	if r := res["alice"]; r.Err != nil {
		t.Fatalf("the rollback after: %+v", r)
	}
	if got := tr.read("home/alice/mail/New"); got != written {
		t.Fatalf("mail/New was written again:\n%s\nwas\n%s", got, written)
	}
	m, err = store.Load("alice")
	must(t, err)
	if m["New"] == nil || !m["New"].RolledBack {
		t.Errorf("the state of New after the rollback after: %+v", m["New"])
	}
}

// TestRollbackMovesGoneFolderAside: the mbox of a folder gone from the Maildir is moved out of
// ~/mail into ~/mail.rolled-back-DATE/, at the same path and whole, never removed; a
// directory it leaves empty goes (it would show as a folder); the audit log says so; a second
// rollback leaves it there.
func TestRollbackMovesGoneFolderAside(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "alice")
	tr.write("var/mail/alice", msgA, "alice")
	tr.mkdir("home/alice/mail", 0o700, "alice")
	tr.mkdir("home/alice/mail/Trash", 0o700, "alice")
	tr.write("home/alice/mail/Archive", msgB, "alice")
	tr.write("home/alice/mail/Old", msgC, "alice")
	tr.write("home/alice/mail/Trash/Deep", msgA+msgC, "alice")
	run(t, tr.config())
	old, deep := tr.read("home/alice/mail/Old"), tr.read("home/alice/mail/Trash/Deep")
	must(t, os.RemoveAll(tr.path("home/alice/Maildir/.Old")))
	must(t, os.RemoveAll(tr.path("home/alice/Maildir/.Trash.Deep")))

	_, res := rollback(t, tr.config())
	r := res["alice"]
	if r.Err != nil || r.FoldersRemoved != 2 {
		t.Fatalf("rollback: %+v; want 2 gone folders moved aside", r)
	}
	aside := "home/alice/mail.rolled-back-" + time.Now().UTC().Format("20060102")
	if got := tr.read(aside + "/Old"); got != old {
		t.Errorf("%s/Old: %q, want %q", aside, got, old)
	}
	if got := tr.read(aside + "/Trash/Deep"); got != deep {
		t.Errorf("%s/Trash/Deep: %q, want %q", aside, got, deep)
	}
	for _, p := range []string{"home/alice/mail/Old", "home/alice/mail/Trash"} {
		if _, err := os.Lstat(tr.path(p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	moved := 0
	for _, e := range tr.audit() {
		if e["event"] == EventNotice && e["kind"] == EventFolderMovedAside {
			moved++
		}
	}
	if moved != 2 {
		t.Errorf("%d folder-moved-aside notices in the audit log, want 2", moved)
	}
	before := snap(t, tr.path(aside), tr.path("home/alice/mail"))
	if _, res := rollback(t, tr.config()); res["alice"].Err != nil || res["alice"].FoldersRemoved != 0 {
		t.Fatalf("second rollback: %+v", res["alice"])
	}
	sameSnap(t, "after a second rollback", snap(t, tr.path(aside), tr.path("home/alice/mail")), before)
}

// TestRollbackSubscriptions: ~/mail/.subscriptions becomes the Maildir's subscriptions, in
// Dovecot's mbox format, whichever format the Maildir's file has; a folder made in the
// Maildir after the switch gets its mbox.
func TestRollbackSubscriptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, maildir, want string }{
		{"v2", "V\t2\n\nArchive\nLists\tGo\nNew\n", "V\t2\n\nArchive\nLists\tGo\nNew\n"},
		{"before v2", "Archive\nLists.Go\nNew\n", "V\t2\n\nArchive\nLists\tGo\nNew\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := newTree(t, "alice")
			tr.write("var/mail/alice", msgA, "alice")
			tr.mkdir("home/alice/mail", 0o700, "alice")
			tr.mkdir("home/alice/mail/Lists", 0o700, "alice")
			tr.write("home/alice/mail/Archive", msgB, "alice")
			tr.write("home/alice/mail/Lists/Go", msgC, "alice")
			run(t, tr.config())
			for _, d := range []string{".New", ".New/cur", ".New/new", ".New/tmp"} {
				tr.mkdir("home/alice/Maildir/"+d, 0o700, "alice")
			}
			tr.write("home/alice/Maildir/subscriptions", tc.maildir, "alice")
			if _, res := rollback(t, tr.config()); res["alice"].Err != nil {
				t.Fatalf("rollback: %+v", res["alice"])
			}
			if got := tr.read("home/alice/mail/.subscriptions"); got != tc.want {
				t.Errorf(".subscriptions: %q, want %q", got, tc.want)
			}
			if _, err := os.Stat(tr.path("home/alice/mail/New")); err != nil {
				t.Errorf("the new folder has no mbox: %v", err)
			}
			if litter, _ := filepath.Glob(tr.path("home/alice/mail/" + rollbackTempPrefix + "*")); len(litter) > 0 {
				t.Errorf("left behind: %v", litter)
			}
		})
	}
}

// TestRollbackNeverMigrated: users the state does not know are named (never-migrated) and
// left alone, their spool as it was; the others are rolled back.
func TestRollbackNeverMigrated(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "alice", "bob", "carol")
	tr.write("var/mail/alice", msgA, "alice")
	cfg := tr.config()
	cfg.Users = []string{"alice"}
	run(t, cfg)
	tr.write("var/mail/bob", msgB, "bob")
	before := snap(t, tr.path("var/mail/bob"), tr.path("home/bob"), tr.path("home/carol"))
	sum, res := rollback(t, tr.config())
	if res["alice"].Outcome != OutcomeRolledBack || res["bob"].Outcome != OutcomeNeverMigrated || res["carol"].Outcome != OutcomeNeverMigrated || sum.Failed != 0 {
		t.Fatalf("alice %s, bob %s, carol %s, summary %+v", res["alice"].Outcome, res["bob"].Outcome, res["carol"].Outcome, sum)
	}
	sameSnap(t, "bob and carol", snap(t, tr.path("var/mail/bob"), tr.path("home/bob"), tr.path("home/carol")), before)
	skipped := map[string]string{}
	for _, e := range tr.audit() {
		if e["event"] == EventUserSkip {
			skipped[e["user"].(string)], _ = e["reason"].(string)
		}
	}
	if skipped["bob"] != "never migrated" || skipped["carol"] != "never migrated" || len(skipped) != 2 {
		t.Errorf("user-skipped events: %v; want bob and carol, never migrated", skipped)
	}
}

// TestRollbackMailbox: a user migrated from ~/Mailbox gets ~/Mailbox back, written by their
// worker beside it, with its owner and mode; their spool, never migrated, is left alone.
func TestRollbackMailbox(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "kim")
	tr.write("home/kim/Mailbox", msgA+msgB, "kim")
	must(t, os.Chmod(tr.path("home/kim/Mailbox"), 0o640))
	tr.write("var/mail/kim", msgC, "kim")
	cfg := tr.config()
	cfg.Source = SourceMailbox
	run(t, cfg)
	spool := snap(t, tr.path("var/mail"))
	var st unix.Stat_t
	must(t, unix.Stat(tr.path("home/kim/Mailbox"), &st))

	_, res := rollback(t, tr.config())
	r := res["kim"]
	if r.Outcome != OutcomeRolledBack || r.Err != nil || r.Src != tr.path("home/kim/Mailbox") || r.Stats.Messages != 2 {
		t.Fatalf("rollback: %+v", r)
	}
	var now unix.Stat_t
	must(t, unix.Stat(tr.path("home/kim/Mailbox"), &now))
	if now.Ino == st.Ino || now.Uid != st.Uid || now.Gid != st.Gid || now.Mode != st.Mode {
		t.Errorf("~/Mailbox: inode %d (was %d), %d:%d %o (was %d:%d %o); want a new file with the old owner and mode", now.Ino, st.Ino, now.Uid, now.Gid, now.Mode, st.Uid, st.Gid, st.Mode)
	}
	if mb := tr.read("home/kim/Mailbox"); !strings.HasPrefix(mb, "From ") || !strings.Contains(mb, "X-UID: 2\n") {
		t.Errorf("~/Mailbox:\n%s", mb)
	}
	sameSnap(t, "the spool", snap(t, tr.path("var/mail")), spool)
	if litter, _ := filepath.Glob(tr.path("home/kim/" + rollbackTempPrefix + "*")); len(litter) > 0 {
		t.Errorf("left behind: %v", litter)
	}
	if _, res := rollback(t, tr.config()); res["kim"].Outcome != OutcomeUpToDate {
		t.Errorf("second rollback: %+v", res["kim"])
	}
}

// TestRollbackDryRun: --dry-run says what would be written back and writes nothing: not the
// spool, ~/mail, the home, the Maildir nor the state.
func TestRollbackDryRun(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "alice")
	tr.write("var/mail/alice", msgA+msgB, "alice")
	tr.mkdir("home/alice/mail", 0o700, "alice")
	tr.write("home/alice/mail/Archive", msgC, "alice")
	tr.write("home/alice/mail/Old", msgC, "alice")
	run(t, tr.config())
	must(t, os.RemoveAll(tr.path("home/alice/Maildir/.Old")))
	tr.write("home/alice/Maildir/subscriptions", "V\t2\n\nArchive\n", "alice")
	tr.appendTo("var/mail/alice", msgC)
	before := snap(t, tr.path("var/mail"), tr.path("home"), tr.stateDir())
	cfg := tr.config()
	cfg.DryRun = true
	_, res := rollback(t, cfg)
	if r := res["alice"]; r.Err != nil || r.Outcome != OutcomeRolledBack || r.Total().Messages != 3 {
		t.Fatalf("dry run: %+v; want 3 messages that would be written back", r)
	}
	sameSnap(t, "after a dry run", snap(t, tr.path("var/mail"), tr.path("home"), tr.stateDir()), before)
}

// TestSettleRefusesSourceWrittenWhileLocked: a source appended to or truncated by a program
// that ignores the locks, after it was locked and before the new mbox takes its place, is
// left as that program left it, and the new mbox goes.
func TestSettleRefusesSourceWrittenWhileLocked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(f *os.File)
	}{
		{"appended", func(f *os.File) { _, err := f.WriteAt([]byte(msgC), int64(len(msgA+msgB))); must(t, err) }},
		{"truncated", func(f *os.File) { must(t, f.Truncate(0)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "alice")
			must(t, os.WriteFile(src, []byte(msgA+msgB), 0o600))
			old, err := os.OpenFile(src, os.O_RDWR, 0)
			must(t, err)
			defer old.Close()
			var st unix.Stat_t
			must(t, unix.Fstat(int(old.Fd()), &st))
			dirfd, err := openSpoolDir(src)
			must(t, err)
			defer unix.Close(dirfd)
			tmp, tmpName, err := createBeside(dirfd, dir, "alice", old, &st, os.Getuid(), os.Getgid())
			must(t, err)
			defer tmp.Close()
			part := []byte("From x@example.org Mon Jan  1 10:00:00 2024\nX-IMAPbase: 1 2\nX-UID: 1\n\nthe Maildir's\n\n")
			_, err = tmp.Write(part)
			must(t, err)
			tc.change(old)
			want, err := os.ReadFile(src)
			must(t, err)
			// The state says msgA was migrated; msgB arrived since.
			sum := sha256.Sum256([]byte(msgA))
			_, err = settleRollback(dirfd, "alice", old, &st, tmpName, tmp, int64(len(part)), sha256.Sum256(part), int64(len(msgA)), hex.EncodeToString(sum[:]), int64(len(msgA)))
			if err == nil || !strings.Contains(err.Error(), src+" changed while it was locked") {
				t.Fatalf("settleRollback: %v; want it refused, naming %s", err, src)
			}
			if got, err := os.ReadFile(src); err != nil || !bytes.Equal(got, want) {
				t.Errorf("the source: %q, %v; want %q", got, err, want)
			}
		})
	}
}

// TestSweepRollbackTemps: the file of a rollback whose process is gone (or a zombie, killed
// and not yet reaped) is removed; that of a live one, and other names, are left.
func TestSweepRollbackTemps(t *testing.T) {
	t.Parallel()
	zombie := exec.Command("true")
	must(t, zombie.Start())
	// Not waited for until the end: it stays a zombie.
	defer zombie.Wait()
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(zombie.Process.Pid) + "/stat")
		must(t, err)
		if i := bytes.LastIndexByte(b, ')'); b[i+2] == 'Z' {
			break
		}
		time.Sleep(time.Millisecond)
	}
	live := exec.Command("sleep", "60")
	must(t, live.Start())
	defer func() { live.Process.Kill(); live.Wait() }()
	dead := exec.Command("true")
	must(t, dead.Run())
	if unix.Kill(dead.Process.Pid, 0) != unix.ESRCH {
		t.Skip("the pid of an ended process is in use again")
	}
	dir := t.TempDir()
	name := func(pid int) string { return fmt.Sprintf("%salice.P%d", rollbackTempPrefix, pid) }
	files := map[string]bool{ // name → swept
		name(zombie.Process.Pid): true,
		name(dead.Process.Pid):   true,
		name(live.Process.Pid):   false,
		name(os.Getpid()):        false,
		fmt.Sprintf("%sbob.P%d", rollbackTempPrefix, dead.Process.Pid): false,
		"alice": false,
	}
	for n := range files {
		must(t, os.WriteFile(filepath.Join(dir, n), nil, 0o600))
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(fd)
	sweepRollbackTemps(fd, "alice")
	for n, swept := range files {
		_, err := os.Lstat(filepath.Join(dir, n))
		if gone := errors.Is(err, os.ErrNotExist); gone != swept {
			t.Errorf("%s: swept %v, want %v", n, gone, swept)
		}
	}
}
