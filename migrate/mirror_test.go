package migrate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/maildirmig/maildirmig/maildir"
)

// The mirror pass, tried on the rewrites Dovecot and mail clients make of an mbox between
// two passes. Each case says what a client did and what the Maildir must show after a plain
// pass.

// uidlistOf returns the user's dovecot-uidlist: its header fields and "UID base" per line.
func uidlistOf(t *testing.T, tr *tree, rel string) (head string, lines []string) {
	t.Helper()
	b, err := os.ReadFile(tr.path(rel))
	must(t, err)
	all := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for _, l := range all[1:] {
		uid, name, _ := strings.Cut(l, " :")
		lines = append(lines, uid+" "+name)
	}
	return all[0], lines
}

// inode returns the inode of a user's message file named by its sub/name.
func inode(t *testing.T, tr *tree, user, file string) uint64 {
	t.Helper()
	fi, err := os.Stat(tr.path(filepath.Join("home", user, "Maildir", file)))
	must(t, err)
	return fi.Sys().(*syscall.Stat_t).Ino
}

// A client flags one message and reads another: the pass renames both files (the same
// inodes, nothing written), verify proves the mirror, and a pass after writes nothing.
func TestMirrorFlags(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "fay")
	tr.write("var/mail/fay", msgA+msgB, "fay")
	run(t, tr.config())
	before := tr.files("fay")
	if len(before) != 2 || !strings.HasPrefix(before[0], "cur/") || !strings.HasSuffix(before[0], ":2,S") || !strings.HasPrefix(before[1], "new/") {
		t.Fatalf("first pass: %v", before)
	}
	inodes := []uint64{inode(t, tr, "fay", before[0]), inode(t, tr, "fay", before[1])}
	flaggedA := strings.Replace(msgA, "Status: RO\n", "Status: RO\nX-Status: F\nX-Keywords: $Important\n", 1)
	readB := strings.Replace(msgB, "Subject: two\n", "Subject: two\nStatus: O\n", 1)
	tr.write("var/mail/fay", flaggedA+readB, "fay")
	_, res := run(t, tr.config())
	r := res["fay"]
	if r.Err != nil || r.Outcome != OutcomeMigrated || r.Stats.Written != 0 || r.Stats.Changed != 2 || r.Stats.Removed != 0 {
		t.Fatalf("pass after the flags changed: %+v", r)
	}
	after := tr.files("fay")
	if len(after) != 2 || !strings.HasSuffix(after[0], ":2,FSa") || !strings.HasSuffix(after[1], ":2,") {
		t.Fatalf("files after the pass: %v; want B seen by a client (cur/, no flag) and A flagged with its keyword", after)
	}
	if got := []uint64{inode(t, tr, "fay", after[0]), inode(t, tr, "fay", after[1])}; !slices.Equal(got, inodes) {
		t.Errorf("the files were written again (inodes %v, before %v), not renamed", got, inodes)
	}
	kw, err := os.ReadFile(tr.path("home/fay/Maildir/dovecot-keywords"))
	if err != nil || string(kw) != "0 $Important\n" {
		t.Errorf("dovecot-keywords: %q, %v", kw, err)
	}
	v := verifyOne(t, tr, "fay")
	if v.Result.Found != 2 || len(v.Result.Flags) != 0 || len(v.Result.Orphans) != 0 {
		t.Fatalf("verify: %+v", v.Result)
	}
	flags := 0
	for _, e := range tr.audit() {
		if e["event"] == EventChange && e["change"] == ChangeFlags {
			flags++
		}
	}
	if flags != 2 {
		t.Errorf("%d message-changed events for flags, want 2", flags)
	}
	if _, res := run(t, tr.config()); res["fay"].Outcome != OutcomeUpToDate || res["fay"].Stats.Changed != 0 {
		t.Fatalf("a pass with nothing changed: %+v", res["fay"])
	}
	// verify reports flags the Maildir does not have: here, one a client of the Maildir set.
	must(t, os.Rename(tr.path("home/fay/Maildir/"+after[0]), tr.path("home/fay/Maildir/"+after[0]+"T")))
	if v := verifyOne(t, tr, "fay"); len(v.Result.Flags) != 1 || v.Result.Found != 2 {
		t.Fatalf("verify with a flag the source lacks: %+v", v.Result)
	}
}

// Identical messages are separate messages: a file deleted behind their back is missing, not
// found under its twin's name, and --after refuses to empty the spool.
func TestMirrorIdenticalLostAfterTruncate(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "ida")
	tr.write("var/mail/ida", msgA+msgB+msgA, "ida")
	if _, res := run(t, tr.config()); res["ida"].Stats.Written != 3 {
		t.Fatalf("first pass: %+v", res["ida"])
	}
	for _, f := range tr.files("ida") {
		if o, _ := maildir.ParseOwn(filepath.Base(f)); o.Seq == 2 {
			must(t, os.Remove(tr.path("home/ida/Maildir/"+f)))
		}
	}
	v := verifyOne(t, tr, "ida")
	if v.Result.Found != 2 || len(v.Result.Missing) != 1 || !strings.HasPrefix(v.Result.Missing[0], "message 3 ") {
		t.Fatalf("verify with the third message's file gone: %+v; want 2 of 3 and message 3 missing", v.Result)
	}
	cfg := tr.config()
	cfg.After = AfterTruncate
	_, res := run(t, cfg)
	if r := res["ida"]; r.After != "" || r.Err == nil || !strings.Contains(r.Err.Error(), "1 missing") {
		t.Fatalf("--after truncate: %+v; want it refused", r)
	}
	if b, err := os.ReadFile(tr.path("var/mail/ida")); err != nil || string(b) != msgA+msgB+msgA {
		t.Fatalf("the spool changed: %q, %v", b, err)
	}
}

// [A, B] rewritten as [A, A'] with A' identical to A: A' is a message of its own and gets a
// file of its own.
func TestMirrorIdenticalNeverStored(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "ned")
	tr.write("var/mail/ned", msgA+msgB, "ned")
	run(t, tr.config())
	tr.write("var/mail/ned", msgA+msgA, "ned")
	_, res := run(t, tr.config())
	if r := res["ned"]; r.Err != nil || r.Stats.Written != 1 || r.Stats.Existed != 1 || r.Stats.Removed != 1 {
		t.Fatalf("pass over [A, A']: %+v; want A kept, A' written, B removed", r)
	}
	if got := tr.files("ned"); len(got) != 2 {
		t.Fatalf("files: %v; want one for each A", got)
	}
	if v := verifyOne(t, tr, "ned"); v.Result.Found != 2 || v.Result.Messages != 2 {
		t.Fatalf("verify: %+v", v.Result)
	}
}

// Of two identical messages next to each other, Dovecot expunges the first: the file that goes
// is the one whose UID went, and the other keeps its UID, as X-UID says (their order alone
// cannot tell them apart).
func TestMirrorIdenticalExpungedByUID(t *testing.T) {
	t.Parallel()
	a1 := strings.Replace(msgA, "Status: RO\n", "X-IMAPbase: 1700000000 3\nX-UID: 1\nStatus: RO\n", 1)
	a2 := strings.Replace(msgA, "Status: RO\n", "X-UID: 2\nStatus: RO\n", 1)
	b := strings.Replace(msgB, "Subject: two\n", "Subject: two\nX-UID: 3\n", 1)
	tr := newTree(t, "uma")
	tr.write("var/mail/uma", a1+a2+b, "uma")
	run(t, tr.config())
	_, lines := uidlistOf(t, tr, "home/uma/Maildir/dovecot-uidlist")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "1 ") || !strings.HasPrefix(lines[1], "2 ") {
		t.Fatalf("first pass: uidlist %v", lines)
	}
	kept := strings.Fields(lines[1])[1]
	// Dovecot rewrote the file: X-IMAPbase moves to the new first message.
	a2 = strings.Replace(msgA, "Status: RO\n", "X-IMAPbase: 1700000000 3\nX-UID: 2\nStatus: RO\n", 1)
	tr.write("var/mail/uma", a2+b, "uma")
	_, res := run(t, tr.config())
	if r := res["uma"]; r.Err != nil || r.Stats.Removed != 1 || r.Stats.Written != 0 {
		t.Fatalf("pass after the expunge: %+v", r)
	}
	head, lines := uidlistOf(t, tr, "home/uma/Maildir/dovecot-uidlist")
	if len(lines) != 2 || lines[0] != "2 "+kept || !strings.HasPrefix(lines[1], "3 ") {
		t.Fatalf("uidlist after the expunge: %v; want the second A's file (%s) as 2 and B as 3", lines, kept)
	}
	if !strings.Contains(head, " V1700000000 ") || !strings.Contains(head, " N4 ") {
		t.Errorf("uidlist header %q", head)
	}
}

// Dovecot wrote X-IMAPbase and X-UIDs after the first pass (it read the mbox for the first
// time): the Maildir takes the source's UIDVALIDITY and UIDs.
func TestMirrorFollowsUIDs(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "ulf")
	tr.write("var/mail/ulf", msgA+msgB+msgC, "ulf")
	run(t, tr.config())
	a := strings.Replace(msgA, "Status: RO\n", "X-IMAPbase: 1234567 10\nX-UID: 5\nStatus: RO\n", 1)
	b := strings.Replace(msgB, "Subject: two\n", "Subject: two\nX-UID: 6\n", 1)
	c := strings.Replace(msgC, "Subject: three\n", "Subject: three\nX-UID: 8\n", 1)
	tr.write("var/mail/ulf", a+b+c, "ulf")
	_, res := run(t, tr.config())
	if r := res["ulf"]; r.Err != nil || r.Stats.Written != 0 || r.Stats.UIDValidity != 1234567 || r.Stats.NextUID != 11 {
		t.Fatalf("pass after Dovecot wrote UIDs: %+v", r)
	}
	head, lines := uidlistOf(t, tr, "home/ulf/Maildir/dovecot-uidlist")
	var uids []string
	for _, l := range lines {
		uids = append(uids, strings.Fields(l)[0])
	}
	if !strings.HasPrefix(head, "3 V1234567 N11 ") || !slices.Equal(uids, []string{"5", "6", "8"}) {
		t.Fatalf("uidlist %q %v; want V1234567 N11 and UIDs 5 6 8", head, uids)
	}
	if v := verifyOne(t, tr, "ulf"); v.Result.Found != 3 {
		t.Fatalf("verify: %+v", v.Result)
	}
}

// Once Dovecot uses the Maildir it is the user's: a pass adds what newly arrived in the
// source and nothing else, keeps what the user deleted deleted, and says so once.
func TestMirrorLiveMaildir(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "liv")
	tr.write("var/mail/liv", msgA+msgB+msgC, "liv")
	run(t, tr.config())
	before := tr.files("liv")
	// Dovecot served it: its index is there, and the user deleted C.
	tr.write("home/liv/Maildir/dovecot.index.log", "index", "liv")
	var gone string
	for _, f := range before {
		if o, _ := maildir.ParseOwn(filepath.Base(f)); o.Seq == 2 {
			gone = f
			must(t, os.Remove(tr.path("home/liv/Maildir/"+f)))
		}
	}
	// Meanwhile the mbox changed: A flagged, B expunged, D delivered.
	const msgD = "From dan@example.org Thu Jan  4 13:00:00 2024\nFrom: d@example.org\nSubject: four\n\nfourth body\n\n"
	tr.write("var/mail/liv", strings.Replace(msgA, "Status: RO\n", "Status: RO\nX-Status: F\n", 1)+msgC+msgD, "liv")
	_, res := run(t, tr.config())
	r := res["liv"]
	if r.Err != nil || r.Stats.Written != 1 || r.Stats.Live == "" || r.Stats.Changed != 1 || r.Stats.Removed != 1 || r.Stats.Deleted != 1 {
		t.Fatalf("pass into a live Maildir: %+v", r)
	}
	after := tr.files("liv")
	for _, f := range before {
		if f != gone && !slices.Contains(after, f) {
			t.Errorf("%s was changed or removed in a live Maildir", f)
		}
	}
	if slices.Contains(after, gone) || len(after) != 3 {
		t.Errorf("files after: %v; want A and B as they were, D added, C still deleted", after)
	}
	notices := 0
	for _, e := range tr.audit() {
		if e["event"] == EventNotice && e["kind"] == EventMaildirLive {
			notices++
		}
	}
	if notices != 1 {
		t.Errorf("%d maildir-live notices, want 1", notices)
	}
	// The next pass knows C was deleted there, and D is not new any more.
	tr.appendTo("var/mail/liv", strings.Replace(msgC, "Wed Jan  3", "Fri Jan  5", 1))
	if _, res := run(t, tr.config()); res["liv"].Stats.Written != 1 || len(tr.files("liv")) != 4 {
		t.Fatalf("next pass: %+v, files %v", res["liv"], tr.files("liv"))
	}
}

// A spool and a ~/Mailbox migrated into one Maildir: a mirror pass of one leaves the other's
// files alone.
func TestMirrorLeavesTheOtherSource(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "two")
	tr.write("var/mail/two", msgA+msgB, "two")
	tr.write("home/two/Mailbox", msgC, "two")
	run(t, tr.config())
	cfg := tr.config()
	cfg.Source = SourceMailbox
	run(t, cfg)
	if n := len(tr.files("two")); n != 3 {
		t.Fatalf("%d files after both sources, want 3", n)
	}
	tr.write("var/mail/two", msgB, "two")
	_, res := run(t, tr.config())
	if r := res["two"]; r.Err != nil || r.Stats.Removed != 1 {
		t.Fatalf("pass over the spool: %+v", r)
	}
	if n := len(tr.files("two")); n != 2 {
		t.Fatalf("files: %v; want B and the Mailbox's C", tr.files("two"))
	}
	var v []UserVerify
	must(t, Verify(context.Background(), tr.config(), func(u UserVerify) { v = append(v, u) }))
	if len(v) != 1 || v[0].Err != nil || v[0].Result.Found != 2 || len(v[0].Result.Orphans) != 0 {
		t.Fatalf("verify of both sources: %+v", v)
	}
}

// Folders follow their mbox: one changed is mirrored, one gone is removed, a new one appears,
// and the subscriptions are the mbox's exactly.
func TestMirrorFolders(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "flo")
	tr.write("var/mail/flo", msgA, "flo")
	tr.mkdir("home/flo/mail", 0o700, "flo")
	tr.write("home/flo/mail/Archive", msgA+msgB, "flo")
	tr.write("home/flo/mail/Old", msgC, "flo")
	tr.write("home/flo/mail/.subscriptions", "V\t2\n\nArchive\nOld\n", "flo")
	run(t, tr.config())
	for _, d := range []string{".Archive", ".Old"} {
		if _, err := os.Stat(tr.path("home/flo/Maildir/" + d)); err != nil {
			t.Fatalf("first pass: %v", err)
		}
	}
	tr.write("home/flo/mail/Archive", msgB, "flo")
	must(t, os.Remove(tr.path("home/flo/mail/Old")))
	tr.write("home/flo/mail/New", msgC, "flo")
	tr.write("home/flo/mail/.subscriptions", "V\t2\n\nArchive\nNew\n", "flo")
	_, res := run(t, tr.config())
	r := res["flo"]
	if r.Err != nil || r.FoldersRemoved != 1 {
		t.Fatalf("second pass: %+v", r)
	}
	entries, err := os.ReadDir(tr.path("home/flo/Maildir/.Archive/cur"))
	must(t, err)
	news, err := os.ReadDir(tr.path("home/flo/Maildir/.Archive/new"))
	must(t, err)
	if len(entries)+len(news) != 1 {
		t.Errorf(".Archive holds %d messages, want B alone", len(entries)+len(news))
	}
	if _, err := os.Stat(tr.path("home/flo/Maildir/.Old")); !os.IsNotExist(err) {
		t.Errorf(".Old after its mbox went: %v", err)
	}
	if _, err := os.Stat(tr.path("home/flo/Maildir/.New/maildirfolder")); err != nil {
		t.Errorf(".New: %v", err)
	}
	subs, err := os.ReadFile(tr.path("home/flo/Maildir/subscriptions"))
	if err != nil || string(subs) != "V\t2\n\nArchive\nNew\n" {
		t.Errorf("subscriptions %q, %v", subs, err)
	}
	removed := 0
	for _, e := range tr.audit() {
		if e["event"] == EventFolderRemoved {
			removed++
		}
	}
	if removed != 1 {
		t.Errorf("%d folder-removed events, want 1", removed)
	}
	var v []UserVerify
	must(t, Verify(context.Background(), tr.config(), func(u UserVerify) { v = append(v, u) }))
	if len(v) != 1 || v[0].Err != nil || len(v[0].Folders) != 2 {
		t.Fatalf("verify: %+v", v)
	}
	for _, f := range v[0].Folders {
		if f.Err != nil || f.Result.Found != 1 || len(f.Result.Orphans) != 0 {
			t.Errorf("verify of folder %s: %+v, %v", f.Source, f.Result, f.Err)
		}
	}
	// A folder whose Maildir++ folder holds mail from elsewhere stays, and the pass says why.
	tr.write("home/flo/Maildir/.New/new/1700000000.M1P2.elsewhere", "From: x\n\ndelivered\n", "flo")
	must(t, os.Remove(tr.path("home/flo/mail/New")))
	_, res = run(t, tr.config())
	if _, err := os.Stat(tr.path("home/flo/Maildir/.New/new/1700000000.M1P2.elsewhere")); err != nil || res["flo"].Err != nil {
		t.Fatalf("a folder holding mail maildirmig did not write was removed: %v, %+v", err, res["flo"])
	}
}

// A dry run counts what a pass would add, rename and remove, and changes nothing.
func TestMirrorPlan(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "pam")
	tr.write("var/mail/pam", msgA+msgB+msgC, "pam")
	run(t, tr.config())
	before := tr.files("pam")
	const msgD = "From dan@example.org Thu Jan  4 13:00:00 2024\nFrom: d@example.org\nSubject: four\n\nfourth body\n\n"
	tr.write("var/mail/pam", strings.Replace(msgA, "Status: RO\n", "Status: RO\nX-Status: A\n", 1)+msgC+msgD, "pam")
	plan, err := Plan(context.Background(), tr.config())
	if err != nil || len(plan) != 1 {
		t.Fatalf("plan: %+v, %v", plan, err)
	}
	if e := plan[0]; e.Action != ActionMirror || e.Added != 1 || e.Changed != 1 || e.Removed != 1 {
		t.Fatalf("plan: %+v; want 1 to add, 1 to rename, 1 to remove", e)
	}
	if after := tr.files("pam"); !slices.Equal(after, before) {
		t.Fatalf("a dry run changed the Maildir: %v, before %v", after, before)
	}
	_, res := run(t, tr.config())
	if r := res["pam"]; r.Stats.Written != 1 || r.Stats.Changed != 1 || r.Stats.Removed != 1 {
		t.Fatalf("the pass did not do what the plan said: %+v", r)
	}
	if plan, err := Plan(context.Background(), tr.config()); err != nil || plan[0].Action != ActionUpToDate {
		t.Fatalf("plan after the pass: %+v, %v", plan, err)
	}
}
