package migrate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/users"
)

// Attacks of a user who owns their spool, their Maildir and their mbox folders on the passes
// root runs over them: on root's records of each pass, on what a mirror pass removes, on the
// space a pass reads and writes, and on the cost of matching a source with its records.

// pseudo is the UW-IMAP first message of a spool: folder data, not mail. last is its last UID.
func pseudo(last string) string {
	return "From MAILER-DAEMON Mon Jan  1 00:00:00 2024\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nFrom: Mail System Internal Data <MAILER-DAEMON@localhost>\n" +
		"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1704067200 " + last + "\n\nThis text is part of the internal format of your mail folder.\n\n"
}

// recordsOf returns the lines of the records root keeps of the user's spool now.
func recordsOf(t *testing.T, tr *tree, user string) []string {
	t.Helper()
	store := StateStore{Dir: tr.path("var/lib/maildirmig")}
	src := tr.path("var/mail/" + user)
	st, err := store.Load(user, KindSpool, src)
	if err != nil || st == nil {
		t.Fatalf("state of %s: %v, %v", user, st, err)
	}
	p, err := store.recordsPath(user, KindSpool, src, st.Gen)
	must(t, err)
	b, err := os.ReadFile(p)
	must(t, err)
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// A file the user plants in cur/ under a name maildirmig gives, for a message of their
// spool, but with a newline and a forged record in its host part: a mirror pass without
// records of the last pass (the spool held only its folder data) takes the file for the
// message's. Root must not write the name into its records, where it would become lines of
// the user's choosing: every later pass reads them.
func TestHostileNameInRecords(t *testing.T) {
	t.Parallel()
	// The name maildirmig gives message B, from a Maildir of its own.
	ref := newTree(t, "ref")
	ref.write("var/mail/ref", msgB, "ref")
	run(t, ref.config())
	names := ref.files("ref")
	if len(names) != 1 {
		t.Fatalf("reference Maildir: %v", names)
	}
	real := filepath.Base(names[0])
	forged := strings.Replace(real, ".testhost,", ".testhost\n7 7 forged\n8,", 1)
	if forged == real {
		t.Fatalf("no host part in %q", real)
	}

	tr := newTree(t, "rex")
	tr.write("var/mail/rex", pseudo("0"), "rex")
	if _, res := run(t, tr.config()); res["rex"].Err != nil {
		t.Fatalf("first pass: %+v", res["rex"])
	}
	tr.write("home/rex/Maildir/cur/"+forged, "From: b@example.org\nSubject: two\n\nsecond body\nFrom the desk of nobody (not a From_ line)\n", "rex")
	// The folder data changed (a client saved a UID), and B arrived: a mirror pass.
	tr.write("var/mail/rex", pseudo("1")+msgB, "rex")
	_, res := run(t, tr.config())
	t.Logf("pass over the planted name: %+v", res["rex"])
	for _, l := range recordsOf(t, tr, "rex") {
		if strings.Contains(l, "forged") || len(strings.Fields(l)) != 3 && len(strings.Fields(l)) != 6 {
			t.Errorf("root's records hold a line of the user's: %q", l)
		}
	}
	// A later pass must still work.
	tr.write("var/mail/rex", pseudo("2")+strings.Replace(msgB, "Subject: two\n", "Subject: two\nStatus: RO\n", 1), "rex")
	if _, res := run(t, tr.config()); res["rex"].Err != nil {
		t.Errorf("the pass after: %v", res["rex"].Err)
	}
}

// Root writes into its records only names of files of ours, whatever a worker says: a record
// naming anything else fails the pass before a state counts it.
func TestRecordsRefuseForeignName(t *testing.T) {
	t.Parallel()
	store := StateStore{Dir: t.TempDir()}
	good := "1704193200.M0Q0X0123456789abcdef.h,S=89,W=94"
	for _, name := range []string{good + "\n7 7 forged", "1704193200.M0P7.h,S=89,W=94:2,S", "a b"} {
		r, err := store.openRecords("u", KindSpool, "/var/mail/u", nil, true)
		must(t, err)
		r.add(MessageRecord{Index: 0, UID: 1, Name: good + ":2,S"})
		r.add(MessageRecord{Index: 1, UID: 2, Name: name})
		if err := r.sync(); err == nil || !strings.Contains(err.Error(), "not a file name maildirmig gives") {
			t.Errorf("records of %q: sync says %v; want it refused", name, err)
		}
		r.Close()
	}
}

// After the switch Dovecot delivers into the Maildir under names of its own; a rollback
// writes those messages into the spool and records their identity beside their names. Passes
// after it must go on knowing them: two mirror passes (the user flags mail through Dovecot on
// the mbox in between) both succeed, and keep the file Dovecot named.
func TestPassesAfterRollbackKeepDovecotNames(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "rob")
	tr.write("var/mail/rob", msgA+msgB, "rob")
	if _, res := run(t, tr.config()); res["rob"].Err != nil {
		t.Fatalf("migration: %+v", res["rob"])
	}
	dovecotName := "1704300000.M1P99.mx,S=38,W=42:2,"
	tr.write("home/rob/Maildir/cur/"+dovecotName, "From: c@example.org\nSubject: three\n\nx\n", "rob")
	must(t, os.Chtimes(tr.path("home/rob/Maildir/cur/"+dovecotName), time.Unix(1704300000, 0), time.Unix(1704300000, 0)))
	cfg := tr.config()
	var rerr error
	cfg.UserDone = func(r UserResult) { rerr = r.Err }
	sum, err := Rollback(context.Background(), cfg)
	if err != nil || sum.Failed != 0 {
		t.Fatalf("rollback: %+v, %v, %v", sum, err, rerr)
	}
	spool, err := os.ReadFile(tr.path("var/mail/rob"))
	must(t, err)
	for pass, status := range []string{"Status: RO\n", "Status: R\n"} {
		// A client of the mbox reads the third message (and the next time marks it old).
		b := strings.Replace(string(spool), "Subject: three\n", "Subject: three\n"+status, 1)
		if b == string(spool) {
			t.Fatalf("no third message in the rolled-back spool:\n%s", spool)
		}
		tr.write("var/mail/rob", b, "rob")
		_, res := run(t, tr.config())
		if r := res["rob"]; r.Err != nil {
			t.Fatalf("pass %d after the rollback: %v", pass+1, r.Err)
		}
	}
	if _, err := os.Stat(tr.path("home/rob/Maildir/cur/" + dovecotName)); err != nil {
		t.Errorf("Dovecot's file: %v", err)
	}
	if v := verifyOne(t, tr, "rob"); v.Result.Messages != 3 || v.Result.Found != 3 {
		t.Errorf("verify after the passes: %+v; want 3 of 3", v.Result)
	}
}

// A user whose spool was migrated rewrites it (a flag, so that the next pass mirrors it) and
// makes it a sparse file larger than the free space of their home's filesystem, which costs
// them nothing. Neither the plan nor the pass may read it all (a mirror pass reads the whole
// source, and would write what it read): both refuse the user for want of space, as they refuse
// a spool that grew past the free space without a mirror.
func TestMirrorSparseSpoolRefused(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "spa")
	tr.write("var/mail/spa", msgA+msgB, "spa")
	if _, res := run(t, tr.config()); res["spa"].Err != nil {
		t.Fatalf("first pass: %+v", res["spa"])
	}
	var fs unix.Statfs_t
	must(t, unix.Statfs(tr.path("home/spa"), &fs))
	// Larger than the whole filesystem, whatever else frees space on it meanwhile.
	huge := int64(fs.Blocks)*int64(fs.Bsize) + 1<<30
	spool := tr.path("var/mail/spa")
	tr.write("var/mail/spa", strings.Replace(msgA, "Status: RO\n", "Status: R\n", 1)+msgB, "spa")
	if err := os.Truncate(spool, huge); err != nil {
		t.Skipf("no sparse file of %d bytes here: %v", huge, err)
	}
	cfg := tr.config()
	plan, err := Plan(context.Background(), cfg)
	if err != nil || len(plan) != 1 {
		t.Fatalf("plan: %+v, %v", plan, err)
	}
	if e := plan[0]; e.Action != ActionRefuse || !strings.Contains(e.Reason, "bytes free") {
		// The pass would fill the filesystem: not tried.
		t.Fatalf("plan for a %d-byte spool: %s (%s); want it refused for want of space", huge, e.Action, e.Reason)
	}
	_, res := run(t, cfg)
	if r := res["spa"]; r.Err == nil || !strings.Contains(r.Err.Error(), "bytes free") || r.Stats.Messages != 0 {
		t.Errorf("pass over a %d-byte spool: %+v; want it refused for want of space, nothing read", huge, r)
	}
}

// A user makes an mbox folder of theirs a sparse file far larger than their home's free
// space: the folder is refused for want of space before it is read, the other folders and
// the INBOX are migrated, and nothing of it fills the home. The home is a small tmpfs, so
// that a pass that does read it fills only that.
func TestSparseFolderRefused(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs as the home")
	}
	tr := newTree(t, "fol")
	home := tr.path("home/fol")
	uid := tr.UID("fol")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=8m,mode=0755,uid=%d,gid=%d", uid, uid), "tmpfs", home).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", home).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", home, err, out)
		}
	})
	tr.write("var/mail/fol", msgA, "fol")
	tr.mkdir("home/fol/mail", 0o700, "fol")
	tr.write("home/fol/mail/Small", msgB, "fol")
	tr.write("home/fol/mail/Big", msgC, "fol")
	const huge = 64 << 20
	must(t, os.Truncate(tr.path("home/fol/mail/Big"), huge))
	_, res := run(t, tr.config())
	r := res["fol"]
	var big, small *FolderResult
	for i := range r.Folders {
		switch r.Folders[i].Name {
		case "Big":
			big = &r.Folders[i]
		case "Small":
			small = &r.Folders[i]
		}
	}
	if big == nil || small == nil {
		t.Fatalf("folders: %+v", r.Folders)
	}
	if big.Outcome != OutcomeFailed || big.Err == nil || !strings.Contains(big.Err.Error(), "bytes free") {
		t.Errorf("the sparse folder: %s, %v; want it refused for want of space", big.Outcome, big.Err)
	}
	if small.Outcome != OutcomeMigrated || r.Stats.Written != 1 {
		t.Errorf("the INBOX and the other folder: %+v, %+v", r.Stats, small)
	}
	var fs unix.Statfs_t
	must(t, unix.Statfs(home, &fs))
	if used := int64(fs.Blocks-fs.Bfree) * int64(fs.Bsize); used > 1<<20 {
		t.Errorf("the home holds %d bytes after the pass: the sparse folder was read into it", used)
	}
}

// A client renames the folder Lists/dovecot to Lists.dovecot between two passes (Dovecot's
// mbox storage allows both names). Both are the Maildir++ folder .Lists.dovecot: the pass
// finds the new mbox's messages there already, and the old mbox gone. Removing the Maildir++
// folder of the gone mbox would remove the new one's messages, which its mbox still holds.
func TestFolderRenamedOntoSameMaildirFolder(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "ren")
	tr.write("var/mail/ren", msgA, "ren")
	tr.mkdir("home/ren/mail", 0o700, "ren")
	tr.mkdir("home/ren/mail/Lists", 0o700, "ren")
	tr.write("home/ren/mail/Lists/dovecot", msgB+msgC, "ren")
	if _, res := run(t, tr.config()); res["ren"].Err != nil {
		t.Fatalf("first pass: %+v", res["ren"])
	}
	folder := tr.path("home/ren/Maildir/.Lists.dovecot")
	count := func() int { return countFiles(t, folder) }
	if n := count(); n != 2 {
		t.Fatalf("first pass: %d files in .Lists.dovecot, want 2", n)
	}
	must(t, os.Rename(tr.path("home/ren/mail/Lists/dovecot"), tr.path("home/ren/mail/Lists.dovecot")))
	must(t, os.Remove(tr.path("home/ren/mail/Lists")))
	_, res := run(t, tr.config())
	t.Logf("pass after the rename: %+v", res["ren"])
	if n := count(); n != 2 {
		t.Errorf("after the rename: %d files in .Lists.dovecot, want the 2 its mbox Lists.dovecot holds", n)
	}
	kept := 0
	for _, e := range tr.audit() {
		if e["kind"] == EventFolderKept && strings.Contains(fmt.Sprint(e["detail"]), "Maildir++ folder of") {
			kept++
		}
	}
	if kept != 1 {
		t.Errorf("%d folder-kept notices for the gone Lists/dovecot, want 1", kept)
	}
	if _, res := run(t, tr.config()); res["ren"].Err != nil || count() != 2 {
		t.Errorf("the pass after: %+v, %d files", res["ren"], count())
	}
	v := verifyOne(t, tr, "ren")
	if len(v.Folders) != 1 {
		t.Fatalf("verify: folders %+v", v.Folders)
	}
	if f := v.Folders[0]; f.Err != nil || f.Source != "Lists.dovecot" || f.Result.Messages != 2 || f.Result.Found != 2 {
		t.Errorf("verify of folder %s: %+v, %v; want 2 of 2", f.Source, f.Result, f.Err)
	}
}

// The user moves a directory of mbox folders elsewhere and leaves a symlink in its place
// (Dovecot follows it, and still shows the folders). maildirmig does not follow it and skips
// the directory; the folders beneath it are not gone, and their Maildir++ folders stay.
func TestFolderDirectoryBecomesSymlink(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "sym")
	tr.write("var/mail/sym", msgA, "sym")
	tr.mkdir("home/sym/mail", 0o700, "sym")
	tr.mkdir("home/sym/mail/Sub", 0o700, "sym")
	tr.write("home/sym/mail/Sub/x", msgB+msgC, "sym")
	if _, res := run(t, tr.config()); res["sym"].Err != nil {
		t.Fatalf("first pass: %+v", res["sym"])
	}
	folder := tr.path("home/sym/Maildir/.Sub.x")
	count := func() int { return countFiles(t, folder) }
	if n := count(); n != 2 {
		t.Fatalf("first pass: %d files in .Sub.x, want 2", n)
	}
	tr.mkdir("home/sym/archive", 0o700, "sym")
	must(t, os.Rename(tr.path("home/sym/mail/Sub"), tr.path("home/sym/archive/Sub")))
	must(t, os.Symlink("../archive/Sub", tr.path("home/sym/mail/Sub")))
	tr.chown(tr.path("home/sym/mail/Sub"), "sym")
	_, res := run(t, tr.config())
	t.Logf("pass after the move: %+v", res["sym"])
	if res["sym"].Err != nil {
		t.Fatalf("pass after the move: %v", res["sym"].Err)
	}
	if n := count(); n != 2 {
		t.Errorf("after ~/mail/Sub became a symlink: %d files in .Sub.x, want the 2 its mbox still holds", n)
	}
}

// The spool and ~/Mailbox are migrated into one Maildir. The spool's last pass recorded no
// message (it held only its folder data: Dovecot keeps UIDVALIDITY there once every message
// is expunged); then mail arrives and Dovecot updates the folder data, so the next pass
// mirrors the spool without records. It must not take ~/Mailbox's files for the spool's and
// remove them: their mbox still holds them.
func TestMirrorWithoutRecordsSparesOtherSource(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "two")
	tr.write("home/two/Mailbox", msgC, "two")
	mcfg := tr.config()
	mcfg.Source = SourceMailbox
	if _, res := run(t, mcfg); res["two"].Err != nil || res["two"].Stats.Written != 1 {
		t.Fatalf("~/Mailbox: %+v", res["two"])
	}
	spoolPassSparesMailbox(t, tr, "two")
}

// The files of the other INBOX source are known from its records whatever their form: a
// rollback records each message with its identity after its file's name.
func TestForeignReadsRollbackRecords(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "frn")
	cfg := tr.config()
	cfg.defaults()
	store := StateStore{Dir: cfg.Under(cfg.StateDir)}
	u := users.User{Name: "frn", UID: tr.UID("frn"), GID: tr.UID("frn"), Home: tr.path("home/frn")}
	mc := cfg
	mc.Source = SourceMailbox
	src, _, md := mc.Paths(u)
	recs, err := store.openRecords("frn", KindMailbox, src, nil, true)
	must(t, err)
	defer recs.Close()
	own := "1704103200.M0Q1Xe37e73bf0f946129.testhost,S=45,W=49"
	recs.add(MessageRecord{Index: 1, UID: 1, Name: own + ":2,S", Key: "1704103200.M0 e37e73bf0f946129 45"})
	recs.add(MessageRecord{Index: 2, UID: 2, Name: "1704300000.M1P99.mx,S=38,W=42:2,", Key: "1704300000.M0 a2654055ecce3f9f 38"})
	must(t, recs.sync())
	st := &State{User: "frn", Kind: KindMailbox, Source: src, Maildir: md, Time: time.Now()}
	recs.note(st)
	must(t, store.Save(st))
	got, err := cfg.foreign(store, u, SourceSpool, md)
	if err != nil || !slices.Contains(got.Names, own) {
		t.Errorf("foreign: %q, %v; want %s among them", got.Names, err, own)
	}
}

// refMatch is the matcher's rule written plainly (each match looks at every candidate): the
// reference for TestMatcherSameAsRule.
type refMatch struct {
	prior []priorMsg
	last  int
}

func (m *refMatch) match(key maildir.OwnKey, xuid uint32, undated bool) int {
	var cands []int
	for i, p := range m.prior {
		if p.key == key {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 && undated {
		for i, p := range m.prior {
			if bodyKey(p.key) == bodyKey(key) {
				cands = append(cands, i)
			}
		}
	}
	pick := -1
	for _, i := range cands {
		if i > m.last && !m.prior[i].used && xuid != 0 && m.prior[i].uid == xuid {
			pick = i
			break
		}
	}
	for _, i := range cands {
		if pick < 0 && i > m.last && !m.prior[i].used {
			pick = i
		}
	}
	for _, i := range cands {
		if pick < 0 && !m.prior[i].used {
			pick = i
		}
	}
	if pick >= 0 {
		m.prior[pick].used = true
		m.last = max(m.last, pick)
	}
	return pick
}

// TestMatcherSameAsRule: the matcher, which keeps a match cheap however many messages share an
// identity (a user's spool of one message a million times, its X-UIDs rewritten, made each
// match look at every one: measured 19.9 s for a pass over 80,000, against 1.5 s now), picks
// what its rule says, on random sources with few identities, UIDs that match or not, and
// messages without a date.
func TestMatcherSameAsRule(t *testing.T) {
	t.Parallel()
	rnd := rand.New(rand.NewPCG(1, 2))
	keys := []maildir.OwnKey{{Head: "1.M0", Sum: "a", Size: 1}, {Head: "2.M0", Sum: "a", Size: 1}, {Head: "0.M0", Sum: "a", Size: 1}, {Head: "1.M0", Sum: "b", Size: 2}}
	for round := 0; round < 300; round++ {
		n := 1 + rnd.IntN(40)
		var prior []priorMsg
		for i := 0; i < n; i++ {
			prior = append(prior, priorMsg{seq: int64(i), uid: uint32(i + 1), base: fmt.Sprint(i), key: keys[rnd.IntN(len(keys))]})
		}
		ref := &refMatch{prior: slices.Clone(prior), last: -1}
		m := newMatcher(slices.Clone(prior))
		for k := 0; k < n+5; k++ {
			key := keys[rnd.IntN(len(keys))]
			var xuid uint32
			if rnd.IntN(2) == 0 {
				xuid = uint32(rnd.IntN(n + 3))
			}
			undated := key.Head == "0.M0" || rnd.IntN(4) == 0
			if got, want := m.match(key, xuid, undated), ref.match(key, xuid, undated); got != want {
				t.Fatalf("round %d, match %d (%v, uid %d, undated %v): %d, the rule says %d", round, k, key, xuid, undated, got, want)
			}
		}
	}
}

// BenchmarkMatchIdentical matches a source of n identical messages whose X-UIDs no longer
// match the records' against them.
func BenchmarkMatchIdentical(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			key := maildir.OwnKey{Head: "1.M0", Sum: "a", Size: 1}
			prior := make([]priorMsg, n)
			for i := range prior {
				prior[i] = priorMsg{seq: int64(i), uid: uint32(i + 1), key: key}
			}
			for b.Loop() {
				for i := range prior {
					prior[i].used = false
				}
				m := newMatcher(prior)
				for i := 0; i < n; i++ {
					m.match(key, uint32(n+i+1), false)
				}
			}
		})
	}
}

// A user plants among their messages a sparse file of 64 MiB, its size in its name (S= and
// W=, which Dovecot and List trust), costing them nothing. A rollback writes their Maildir into
// a new mbox beside the spool, in root's spool directory: it must not write there more than
// that filesystem has free (on a server, /var: Postfix's queue and every user's spool), but
// refuse the user before writing, saying so. The spool directory here is an 8 MiB tmpfs.
func TestRollbackSparseMessageRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs as the spool directory")
	}
	tr := newTree(t, "rbs")
	spoolDir := tr.path("var/mail")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", spoolDir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", spoolDir).Run() })
	tr.write("var/mail/rbs", msgA, "rbs")
	if _, res := run(t, tr.config()); res["rbs"].Err != nil {
		t.Fatalf("migration: %+v", res["rbs"])
	}
	const huge = 64 << 20
	name := fmt.Sprintf("1704300000.M1P99.mx,S=%d,W=%d:2,", huge, huge)
	tr.write("home/rbs/Maildir/cur/"+name, "Subject: x\n\n", "rbs")
	must(t, os.Truncate(tr.path("home/rbs/Maildir/cur/"+name), huge))
	cfg := tr.config()
	var rerr error
	cfg.UserDone = func(r UserResult) { rerr = r.Err }
	if _, err := Rollback(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Logf("rollback: %v", rerr)
	if rerr == nil || !strings.Contains(rerr.Error(), "bytes free") {
		t.Errorf("rollback of a Maildir holding a %d-byte sparse message into an 8 MiB spool filesystem: %v; want it refused before writing, for want of space", huge, rerr)
	}
	if b, err := os.ReadFile(tr.path("var/mail/rbs")); err != nil || string(b) != msgA {
		t.Errorf("the spool: %q, %v", b, err)
	}
}

// A Maildir file Dovecot would serve, whose name holds a space (its user renamed it, or a
// delivery agent's host name has one): a rollback writes the name and its identity as one
// line of root's records, "<seq> <uid> <name> <head> <sum> <size>", which the space turns
// into seven fields. Every pass after a change to the mbox then fails for good ("records: bad
// line"), unless rollback records it so that they can read it.
func TestRollbackNameWithSpaceRecorded(t *testing.T) {
	tr := newTree(t, "rbn")
	tr.write("var/mail/rbn", msgA+msgB, "rbn")
	if _, res := run(t, tr.config()); res["rbn"].Err != nil {
		t.Fatalf("migration: %+v", res["rbn"])
	}
	name := "1704300000.M1P99.mx box,S=38,W=42:2,"
	tr.write("home/rbn/Maildir/cur/"+name, "From: c@example.org\nSubject: three\n\nx\n", "rbn")
	must(t, os.Chtimes(tr.path("home/rbn/Maildir/cur/"+name), time.Unix(1704300000, 0), time.Unix(1704300000, 0)))
	cfg := tr.config()
	var rerr error
	cfg.UserDone = func(r UserResult) { rerr = r.Err }
	if _, err := Rollback(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if rerr != nil {
		t.Fatalf("rollback: %v", rerr)
	}
	spool, err := os.ReadFile(tr.path("var/mail/rbn"))
	must(t, err)
	b := strings.Replace(string(spool), "Subject: three\n", "Subject: three\nStatus: RO\n", 1)
	tr.write("var/mail/rbn", b, "rbn")
	if _, res := run(t, tr.config()); res["rbn"].Err != nil {
		t.Errorf("the pass after the rollback: %v", res["rbn"].Err)
	}
}

// The other INBOX source was migrated by a version whose records name no file ("<seq>
// <uid>"): its files are still its own, found by their sequence numbers, and a mirror pass of
// the spool must neither claim nor remove them.
func TestMirrorSparesOtherSourceOfOldRecords(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "old")
	tr.write("home/old/Mailbox", msgC, "old")
	mcfg := tr.config()
	mcfg.Source = SourceMailbox
	if _, res := run(t, mcfg); res["old"].Err != nil || res["old"].Stats.Written != 1 {
		t.Fatalf("~/Mailbox: %+v", res["old"])
	}
	// Make ~/Mailbox's records those of an earlier version: generation 0, no names.
	store := StateStore{Dir: tr.path("var/lib/maildirmig")}
	src := tr.path("home/old/Mailbox")
	st, err := store.Load("old", KindMailbox, src)
	if err != nil || st == nil || st.Gen == 0 {
		t.Fatalf("~/Mailbox's state: %+v, %v", st, err)
	}
	newer, err := store.recordsPath("old", KindMailbox, src, st.Gen)
	must(t, err)
	b, err := os.ReadFile(newer)
	must(t, err)
	var old strings.Builder
	for l := range strings.Lines(string(b)) {
		f := strings.Fields(l)
		fmt.Fprintf(&old, "%s %s\n", f[0], f[1])
	}
	gen0, err := store.recordsPath("old", KindMailbox, src, 0)
	must(t, err)
	must(t, os.WriteFile(gen0, []byte(old.String()), 0o600))
	must(t, os.Remove(newer))
	st.Gen, st.RecordsSize = 0, 0
	must(t, store.Save(st))

	spoolPassSparesMailbox(t, tr, "old")
}

// spoolPassSparesMailbox has user's spool migrated twice into the Maildir ~/Mailbox was
// migrated into (first with folder data only, then a message more), and fails unless the
// second, a mirror pass, left ~/Mailbox's message alone and verify finds both sources'.
func spoolPassSparesMailbox(t *testing.T, tr *tree, user string) {
	t.Helper()
	tr.write("var/mail/"+user, pseudo("0"), user)
	if _, res := run(t, tr.config()); res[user].Err != nil {
		t.Fatalf("the spool with folder data only: %+v", res[user])
	}
	before := tr.files(user)
	tr.write("var/mail/"+user, pseudo("1")+msgA, user)
	_, res := run(t, tr.config())
	t.Logf("mirror pass of the spool: %+v", res[user])
	after := tr.files(user)
	for _, f := range before {
		if !slices.Contains(after, f) {
			t.Errorf("%s, ~/Mailbox's message, was removed by the spool's pass (files now %v)", f, after)
		}
	}
	if len(after) != 2 {
		t.Errorf("files %v; want ~/Mailbox's and the spool's new message", after)
	}
	if v := verifyOne(t, tr, user); v.Result.Messages != 2 || v.Result.Found != 2 || len(v.Result.Orphans) != 0 {
		t.Errorf("verify: %+v; want both sources' messages found, no orphan", v.Result)
	}
}
