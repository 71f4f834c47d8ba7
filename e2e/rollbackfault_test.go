package e2e

// The way back, killed and starved: a rollback killed with SIGKILL at each of its steps, or
// failing with EIO, ENOSPC or EDQUOT (injected, or a real full file system), must leave every
// mbox the old one or the complete new one, and one re-run must leave exactly what an
// uninterrupted rollback leaves.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// rbUIDValidity is the UIDVALIDITY of every mailbox of the rollback rig: its sources carry
// X-IMAPbase and X-UID, so that each preparation migrates into the same UIDs and a rollback
// writes the same bytes.
const rbUIDValidity = 1700000001

// rbMbox is an mbox of n test messages of owner, numbered from first, with X-IMAPbase in the
// first and X-UID in each, as Dovecot leaves a mailbox it served: every third read, every
// fifth also flagged.
func rbMbox(owner string, first, n int) []byte {
	var b bytes.Buffer
	for i := first; i < first+n; i++ {
		_, header, body := testMessage(owner, i)
		fmt.Fprintf(&b, "From sender@example.org Mon Jan  1 10:%02d:%02d 2024\n%s", (i/60)%60, i%60, header)
		if i == first {
			fmt.Fprintf(&b, "X-IMAPbase: %d %010d\n", rbUIDValidity, n)
		}
		fmt.Fprintf(&b, "X-UID: %d\n", i-first+1)
		switch {
		case i%5 == 0:
			b.WriteString("Status: RO\nX-Status: F\n")
		case i%3 == 0:
			b.WriteString("Status: RO\n")
		}
		b.WriteString("\n" + body + "\n")
	}
	return b.Bytes()
}

// lateMail is a message delivered into a source after the last pass, as local(8) appends it.
func lateMail(owner string) []byte {
	return []byte(fmt.Sprintf("From late@example.org Tue Jan  2 09:00:00 2024\nFrom: late@example.org\nTo: %s@localhost\nSubject: arrived after the last pass\nMessage-ID: <late.%s@mdmt.test>\n\nlate mail for %s\nFrom the desk of a body line\n\n", owner, owner, owner))
}

// rbUser is an account of the rollback rig: where its INBOX came from, and its folders.
type rbUser struct {
	mailtest.Account
	mailbox bool           // the INBOX is ~/Mailbox (else the spool)
	inbox   int            // messages in the INBOX
	folders map[string]int // mbox folders beneath ~/mail, with their message counts
	late    bool           // mail reaches the INBOX source after the last pass
	change  func(t *testing.T, g *rbRig, u *rbUser)
}

// rbRig is the accounts, spool directory, state and audit log the rollback suites run on.
type rbRig struct {
	spool, state, audit string
	users               []*rbUser
}

// newRBRig makes the accounts of us (with useradd, home directories beneath homes when it is
// not "") and a spool directory like /var/mail.
func newRBRig(t *testing.T, prefix string, us ...*rbUser) *rbRig {
	t.Helper()
	p := plainRig(t)
	g := &rbRig{spool: p.spool, state: p.state, audit: p.audit}
	for i, u := range us {
		u.Account = mailtest.AddAccount(t, fmt.Sprintf("%s%d", prefix, i), "-s", "/usr/sbin/nologin")
		g.users = append(g.users, u)
	}
	return g
}

// args is a command over the rig's accounts named by who (all when empty), one at a time so
// that each kill point meets the same order of work.
func (g *rbRig) args(cmd string, who []*rbUser, extra ...string) []string {
	a := []string{cmd, "-j", "1", "--spool-dir", g.spool, "--state-dir", g.state, "--audit-log", g.audit}
	if len(who) == 0 {
		who = g.users
	}
	for _, u := range who {
		a = append(a, "--user", u.Name)
	}
	return append(a, extra...)
}

// src is the user's INBOX source.
func (g *rbRig) src(u *rbUser) string {
	if u.mailbox {
		return filepath.Join(u.Home, "Mailbox")
	}
	return filepath.Join(g.spool, u.Name)
}

// prepare gives every account fresh sources, migrates them (the spool with mbox, ~/Mailbox
// with Mailbox, folders with both), lets a day of use change the Maildirs (u.change) and
// late mail reach the sources, and forgets nothing else: the state is the migration's.
func (g *rbRig) prepare(t *testing.T) {
	t.Helper()
	for _, p := range []string{g.state, filepath.Dir(g.audit)} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(g.spool)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(g.spool, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	var spoolUsers, mailboxUsers []*rbUser
	for _, u := range g.users {
		ents, err := os.ReadDir(u.Home)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(u.Home, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		writeOwned(t, g.src(u), u.Account, rbMbox(u.Name, 0, u.inbox))
		if len(u.folders) > 0 {
			mkdirOwned(t, filepath.Join(u.Home, "mail"), u.Account)
		}
		for name, n := range u.folders {
			p := filepath.Join(u.Home, "mail", name)
			mkdirOwned(t, filepath.Dir(p), u.Account)
			writeOwned(t, p, u.Account, rbMbox(u.Name, 1000+len(name)*10, n))
		}
		if u.mailbox {
			mailboxUsers = append(mailboxUsers, u)
		} else {
			spoolUsers = append(spoolUsers, u)
		}
	}
	for _, c := range []struct {
		cmd string
		who []*rbUser
	}{{"mbox", spoolUsers}, {"Mailbox", mailboxUsers}} {
		if len(c.who) == 0 {
			continue
		}
		if r := runBinary(t, g.args(c.cmd, c.who)...); r.code != 0 {
			t.Fatalf("migrating with %s: exit %d\n%s%s", c.cmd, r.code, r.stdout, r.stderr)
		}
	}
	for _, u := range g.users {
		if u.change != nil {
			u.change(t, g, u)
		}
		if u.late {
			f, err := os.OpenFile(g.src(u), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(lateMail(u.Name)); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// mkdirOwned makes the directory p (and its missing parents) as the user's, 0700.
func mkdirOwned(t *testing.T, p string, u mailtest.Account) {
	t.Helper()
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	for ; strings.HasPrefix(p, u.Home+"/"); p = filepath.Dir(p) {
		if err := os.Chown(p, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
	}
}

// A day on the Maildir, as Dovecot leaves it: these change a user's Maildir after the
// migration.

// flagMessage marks the k-th message (in UID order) of the Maildir md as flagged and seen, as
// Dovecot renames a file for its flags.
func flagMessage(t *testing.T, md string, k int) {
	t.Helper()
	name := uidlistFile(t, md, k)
	for _, sub := range []string{"cur", "new"} {
		matches, _ := filepath.Glob(filepath.Join(md, sub, name+"*"))
		if len(matches) == 1 {
			if err := os.Rename(matches[0], filepath.Join(md, "cur", name+":2,FS")); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%s: no file for %s", md, name)
}

// expungeMessage removes the k-th message (in UID order) of the Maildir md, file and
// dovecot-uidlist line, as Dovecot expunges it.
func expungeMessage(t *testing.T, md string, k int) {
	t.Helper()
	name := uidlistFile(t, md, k)
	for _, sub := range []string{"cur", "new"} {
		matches, _ := filepath.Glob(filepath.Join(md, sub, name+"*"))
		for _, m := range matches {
			if err := os.Remove(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	p := filepath.Join(md, "dovecot-uidlist")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasSuffix(strings.TrimSuffix(l, "\n"), " :"+name) {
			out = append(out, l)
		}
	}
	rewriteKeepingOwner(t, p, []byte(strings.Join(out, "")))
}

// uidlistFile is the base name of the k-th message (from 0) dovecot-uidlist lists in md.
func uidlistFile(t *testing.T, md string, k int) string {
	t.Helper()
	lines, err := readUIDList(filepath.Join(md, "dovecot-uidlist"))
	if err != nil || k >= len(lines) {
		t.Fatalf("%s: message %d of %d: %v", md, k, len(lines), err)
	}
	return lines[k].base
}

// rewriteKeepingOwner replaces the content of the file p.
func rewriteKeepingOwner(t *testing.T, p string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// newFolder makes the Maildir++ folder dir of md with n messages, as Dovecot makes a folder a
// client created and then copied mail into.
func newFolder(t *testing.T, u mailtest.Account, md, dir string, n int) {
	t.Helper()
	p := filepath.Join(md, dir)
	for _, sub := range []string{"cur", "new", "tmp"} {
		mkdirOwned(t, filepath.Join(p, sub), u)
	}
	list := fmt.Sprintf("3 V%d N%d\n", rbUIDValidity+7, n+1)
	for i := 0; i < n; i++ {
		_, header, body := testMessage(u.Name, 2000+i)
		name := fmt.Sprintf("%d.M%dP1.rbhost", 1704200000+i, i)
		f := filepath.Join(p, "cur", name+":2,S")
		writeOwned(t, f, u, []byte(header+"\n"+body))
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
		when := time.Unix(1704200000+int64(i), 0)
		if err := os.Chtimes(f, when, when); err != nil {
			t.Fatal(err)
		}
		list += fmt.Sprintf("%d :%s\n", i+1, name)
	}
	writeOwned(t, filepath.Join(p, "dovecot-uidlist"), u, []byte(list))
}

// subscribe writes the Maildir's subscriptions, as Dovecot keeps them.
func subscribe(t *testing.T, u mailtest.Account, md string, names ...string) {
	t.Helper()
	writeOwned(t, filepath.Join(md, "subscriptions"), u, []byte("V\t2\n\n"+strings.Join(names, "\n")+"\n"))
}

// snapshot describes every entry beneath each of paths (missing ones included as such): kind,
// mode, owner, and for a file the sha256 of its bytes. Names matching skip are left out.
func snapshot(t *testing.T, skip *regexp.Regexp, paths ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range paths {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if os.IsNotExist(err) && p == root {
				out[p] = "missing"
				return nil
			}
			if err != nil {
				return err
			}
			if skip != nil && skip.MatchString(p) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
			switch {
			case fi.Mode().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(b)
				desc += " " + hex.EncodeToString(sum[:8])
			case fi.Mode()&fs.ModeSymlink != 0:
				to, _ := os.Readlink(p)
				desc += " -> " + to
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

// snapDiff lists what differs between two snapshots, at most a few lines.
func snapDiff(got, want map[string]string) []string {
	var d []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			d = append(d, fmt.Sprintf("%s: missing, want %s", p, w))
		} else if g != w {
			d = append(d, fmt.Sprintf("%s: %s, want %s", p, g, w))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			d = append(d, fmt.Sprintf("%s: %s, not expected", p, g))
		}
	}
	sort.Strings(d)
	return firstN(d, 6)
}

// mboxPaths are where a rollback writes for the rig's accounts: the spool directory, and in
// each home ~/Mailbox, ~/mail and what was moved aside beside it.
func (g *rbRig) mboxPaths(t *testing.T) []string {
	t.Helper()
	paths := []string{g.spool}
	for _, u := range g.users {
		paths = append(paths, filepath.Join(u.Home, "Mailbox"), filepath.Join(u.Home, "mail"))
		aside, _ := filepath.Glob(filepath.Join(u.Home, "mail.rolled-back-*"))
		paths = append(paths, aside...)
		// What a killed run may leave in the home itself.
		litter, _ := filepath.Glob(filepath.Join(u.Home, ".maildirmig-rollback.*"))
		paths = append(paths, litter...)
		locks, _ := filepath.Glob(filepath.Join(u.Home, "*.lock"))
		paths = append(paths, locks...)
	}
	sort.Strings(paths)
	return paths
}

// maildirs snapshots every account's Maildir; dovecot-uidlist is described by its lines and
// its header's UIDVALIDITY and next UID, without the GUID each new Maildir gets.
func (g *rbRig) maildirs(t *testing.T) map[string]string {
	t.Helper()
	uidlist := regexp.MustCompile(`/dovecot-uidlist$`)
	out := snapshot(t, uidlist, g.maildirPaths()...)
	for _, u := range g.users {
		_ = filepath.WalkDir(filepath.Join(u.Home, "Maildir"), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !uidlist.MatchString(p) {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			head, rest, _ := strings.Cut(string(b), "\n")
			var keep []string
			for _, f := range strings.Fields(head) {
				if f[0] == 'V' || f[0] == 'N' || f == "3" {
					keep = append(keep, f)
				}
			}
			out[p] = strings.Join(keep, " ") + "\n" + rest
			return nil
		})
	}
	return out
}

func (g *rbRig) maildirPaths() []string {
	var paths []string
	for _, u := range g.users {
		paths = append(paths, filepath.Join(u.Home, "Maildir"))
	}
	return paths
}

// passes runs the migration again over every account, as the administrator would after a
// rollback, and fails unless each exits 0.
func (g *rbRig) passes(t *testing.T, label string) {
	t.Helper()
	var spoolUsers, mailboxUsers []*rbUser
	for _, u := range g.users {
		if u.mailbox {
			mailboxUsers = append(mailboxUsers, u)
		} else {
			spoolUsers = append(spoolUsers, u)
		}
	}
	for _, c := range []struct {
		cmd string
		who []*rbUser
	}{{"mbox", spoolUsers}, {"Mailbox", mailboxUsers}} {
		if len(c.who) == 0 {
			continue
		}
		if r := runBinary(t, g.args(c.cmd, c.who)...); r.code != 0 {
			t.Errorf("%s: %s after the rollback: exit %d\n%s%s", label, c.cmd, r.code, r.stdout, r.stderr)
		}
	}
}

// rbReference is what an uninterrupted rollback of the rig's prepared accounts leaves: the
// mbox files, and the Maildirs after the migration that follows it.
type rbReference struct {
	before, mboxes, maildirs map[string]string
}

// reference prepares the accounts, rolls back without a fault, and records the result.
func (g *rbRig) reference(t *testing.T) rbReference {
	t.Helper()
	g.prepare(t)
	var ref rbReference
	ref.before = snapshot(t, nil, g.mboxPaths(t)...)
	r := runBinary(t, g.args("rollback", nil)...)
	if r.code != 0 {
		t.Fatalf("the reference rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("the reference rollback:\n%s", r.stdout)
	ref.mboxes = snapshot(t, nil, g.mboxPaths(t)...)
	g.passes(t, "the reference")
	ref.maildirs = g.maildirs(t)
	return ref
}

// checkOldOrNew asserts that each mbox file is, right now, either what it was before the
// rollback or what the reference rollback made of it, and that every file moved aside is in
// one place or the other: never a mix, never gone.
func (g *rbRig) checkOldOrNew(t *testing.T, label string, ref rbReference, now map[string]string) {
	t.Helper()
	for p, d := range now {
		if strings.Contains(p, "/.maildirmig-rollback.") || strings.HasSuffix(p, ".lock") || !strings.HasPrefix(d, "-") {
			continue // litter and locks are judged after the re-run
		}
		if d != ref.before[p] && d != ref.mboxes[p] {
			t.Errorf("%s: %s is neither the old mbox nor the new one: %s (old %s, new %s)", label, p, d, ref.before[p], ref.mboxes[p])
		}
	}
	for p, d := range ref.before {
		if !strings.HasPrefix(d, "-") || now[p] != "" && now[p] != "missing" {
			continue
		}
		if ref.mboxes[p] != "" && ref.mboxes[p] != "missing" {
			t.Errorf("%s: %s is gone (old %s, new %s)", label, p, d, ref.mboxes[p])
			continue
		}
		// Moved aside by the rollback: it must be there, whole.
		found := false
		for q, e := range now {
			found = found || strings.Contains(q, ".rolled-back-") && filepath.Base(q) == filepath.Base(p) && e == d
		}
		if !found {
			t.Errorf("%s: %s is neither in ~/mail nor moved aside whole", label, p)
		}
	}
}

// rbKillPoint is a step of a rollback: the fault, and the accounts the killed run works on
// (the re-run works on all).
type rbKillPoint struct {
	spec string
	who  []int
}

// TestKilledRollback kills `maildirmig rollback` with SIGKILL at each of its steps: the
// worker writing the new mbox (of a spool, through root's file; of ~/Mailbox and each folder,
// in the home), its fsync, root's fsync after keeping the mail that arrived since, the
// exchange (root's for a spool, the worker's in the home), root's state, a folder's mbox
// moved aside, the subscriptions written and renamed; the whole run or one worker. Right
// after the kill every mbox must be the old one or the complete new one. One plain re-run must
// then exit 0 and leave exactly what an uninterrupted rollback of the same accounts leaves:
// the same bytes, owners and modes, nothing else beside the spool or in ~/mail (no temporary
// file, no dotlock), the Maildirs untouched. A later migration must give the same Maildirs,
// UIDs included, as after the uninterrupted one.
func TestKilledRollback(t *testing.T) {
	late := &rbUser{inbox: 120, late: true, change: func(t *testing.T, g *rbRig, u *rbUser) {
		md := filepath.Join(u.Home, "Maildir")
		flagMessage(t, md, 1)
		expungeMessage(t, md, 4)
	}}
	folders := &rbUser{inbox: 3, folders: map[string]int{"Archive": 20, "Old": 5, "Lists/Go": 10, "Gone/Deep": 4}, change: func(t *testing.T, g *rbRig, u *rbUser) {
		md := filepath.Join(u.Home, "Maildir")
		flagMessage(t, filepath.Join(md, ".Archive"), 2)
		for _, gone := range []string{".Old", ".Gone.Deep"} {
			if err := os.RemoveAll(filepath.Join(md, gone)); err != nil {
				t.Fatal(err)
			}
		}
		newFolder(t, u.Account, md, ".New", 2)
		subscribe(t, u.Account, md, "Archive", "New", "Lists\tGo")
	}}
	mailbox := &rbUser{mailbox: true, inbox: 40, late: true, folders: map[string]int{"Work": 15, "Zeta": 6}, change: func(t *testing.T, g *rbRig, u *rbUser) {
		md := filepath.Join(u.Home, "Maildir")
		flagMessage(t, md, 0)
		expungeMessage(t, filepath.Join(md, ".Zeta"), 1)
		subscribe(t, u.Account, md, "Work")
	}}
	g := newRBRig(t, "rbk", late, folders, mailbox)
	ref := g.reference(t)
	// The same preparation must give the same rollback, or the comparison below proves
	// nothing; and the rollback must change every source, or "old or new" proves nothing.
	if again := g.reference(t); fmt.Sprint(again.mboxes) != fmt.Sprint(ref.mboxes) || fmt.Sprint(again.maildirs) != fmt.Sprint(ref.maildirs) {
		t.Fatalf("two uninterrupted rollbacks of the same accounts differ: %v; %v", snapDiff(again.mboxes, ref.mboxes), snapDiff(again.maildirs, ref.maildirs))
	}
	for _, u := range g.users {
		if p := g.src(u); ref.before[p] == ref.mboxes[p] {
			t.Fatalf("the rollback left %s as it was: the rig proves nothing", p)
		}
	}
	const (
		spoolU   = 0 // the spool with late mail
		foldersU = 1 // a spool of 3 messages, and folders: one to write, two gone, one new
		mailboxU = 2 // ~/Mailbox with late mail, and two folders
	)
	points := []rbKillPoint{
		// A spool: the worker writes root's file, root keeps the late mail, syncs, exchanges,
		// saves the state.
		{"export:1:kill-run", []int{spoolU}},
		{"export:6:kill-run", []int{spoolU}},
		{"export:3:kill", nil},
		{"fsync:1:kill-run", []int{spoolU}},
		{"fsync:1:kill", []int{spoolU}},
		{"fsync:2:kill-run", []int{spoolU, foldersU}}, // root's, before b's spool is exchanged
		{"swap:1:kill-run", []int{spoolU}},            // root's: exchanged, the old not yet removed
		{"state:1:kill-run", []int{spoolU}},
		{"state-saved:1:kill-run", []int{spoolU}},
		{"audit:3:kill-run", []int{spoolU}},
		// Folders: the folders worker's writes, fsyncs and exchanges, root's state of each,
		// the gone folders moved aside, the subscriptions.
		{"export:2:kill-run", []int{foldersU}},
		{"fsync:2:kill-run", []int{foldersU}},
		{"swap:2:kill-run", []int{foldersU}},
		{"swap:3:kill-run", []int{foldersU}}, // the new folder's mbox, made by a rename
		{"swap:2:kill", []int{foldersU}},
		{"state:3:kill-run", []int{foldersU}},
		{"aside:1:kill-run", []int{foldersU}}, // Gone/Deep moved, its empty parent still there
		{"aside:2:kill-run", []int{foldersU}},
		{"subscriptions:1:kill-run", []int{foldersU}},
		{"subscriptions:2:kill-run", []int{foldersU}},
		// ~/Mailbox: all in the worker, as the user.
		{"export:1:kill-run", []int{mailboxU}},
		{"fsync:2:kill-run", []int{mailboxU}},
		{"swap:1:kill-run", []int{mailboxU}},
		{"swap:1:kill", []int{mailboxU}},
		{"swap:2:kill-run", []int{mailboxU}}, // the second folder's
		{"state:1:kill-run", []int{mailboxU}},
	}
	if testing.Short() {
		var short []rbKillPoint
		for i, p := range points {
			if i%2 == 0 {
				short = append(short, p)
			}
		}
		points = short
	}
	failed := 0
	for _, kp := range points {
		var who []*rbUser
		var names []string
		for _, i := range kp.who {
			who = append(who, g.users[i])
			names = append(names, fmt.Sprint(i))
		}
		name := kp.spec
		if len(names) > 0 {
			name += "/users-" + strings.Join(names, "-")
		}
		if !t.Run(name, func(t *testing.T) { killAndRerunRollback(t, g, ref, kp.spec, who) }) {
			failed++
		}
	}
	t.Logf("rollback kill points run: %d, %d failed", len(points), failed)
}

// killAndRerunRollback prepares the rig, rolls back the accounts who with the fault spec,
// then once more plainly, and judges the result against ref.
func killAndRerunRollback(t *testing.T, g *rbRig, ref rbReference, spec string, who []*rbUser) {
	label := "rollback killed at " + spec
	g.prepare(t)
	maildirs := snapshot(t, nil, g.maildirPaths()...)
	r := runWithFault(t, spec, g.args("rollback", who)...)
	wholeRun := strings.HasSuffix(spec, ":kill-run")
	switch {
	case wholeRun && !r.signaled:
		t.Errorf("%s: the run was not killed (exit %d, frozen %v): the point was not reached\n%s%s", label, r.code, r.frozen, r.stdout, r.stderr)
	case !wholeRun && (r.code != 3 || !strings.Contains(r.stderr, "killed")):
		t.Errorf("%s: exit %d, want 3 with a worker killed: the point was not reached\n%s%s", label, r.code, r.stdout, r.stderr)
	}
	now := snapshot(t, nil, g.mboxPaths(t)...)
	g.checkOldOrNew(t, label, ref, now)
	var left []string
	for p := range now {
		if strings.Contains(p, "/.maildirmig-rollback.") || strings.HasSuffix(p, ".lock") {
			left = append(left, strings.TrimPrefix(p, filepath.Dir(filepath.Dir(p))+"/"))
		}
	}
	sort.Strings(left)
	t.Logf("%s: left by the killed run: %v", label, left)

	again := runBinary(t, g.args("rollback", nil)...)
	if again.code != 0 {
		t.Errorf("%s: re-run: exit %d, want 0\n%s%s", label, again.code, again.stdout, again.stderr)
	}
	if d := snapDiff(snapshot(t, nil, g.mboxPaths(t)...), ref.mboxes); len(d) > 0 {
		t.Errorf("%s: after one re-run, the mboxes are not what an uninterrupted rollback leaves:\n%s", label, strings.Join(d, "\n"))
	}
	if d := snapDiff(snapshot(t, nil, g.maildirPaths()...), maildirs); len(d) > 0 {
		t.Errorf("%s: the rollback changed a Maildir:\n%s", label, strings.Join(d, "\n"))
	}
	if ents, err := os.ReadDir(g.state); err == nil {
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".tmp") {
				t.Errorf("%s: state temp file %s left behind", label, e.Name())
			}
		}
	}
	// A second re-run writes nothing.
	before := snapshot(t, nil, g.mboxPaths(t)...)
	if third := runBinary(t, g.args("rollback", nil)...); third.code != 0 || strings.Contains(third.stdout, "written back") {
		t.Errorf("%s: a rollback after the re-run did something: exit %d\n%s%s", label, third.code, third.stdout, third.stderr)
	}
	if d := snapDiff(snapshot(t, nil, g.mboxPaths(t)...), before); len(d) > 0 {
		t.Errorf("%s: a rollback after the re-run changed:\n%s", label, strings.Join(d, "\n"))
	}
	g.passes(t, label)
	if d := snapDiff(g.maildirs(t), ref.maildirs); len(d) > 0 {
		t.Errorf("%s: the migration after the rollback does not give the Maildirs it gives after an uninterrupted one:\n%s", label, strings.Join(d, "\n"))
	}
}

// rbErrorRig is the accounts of the error suites: a bystander whose small spool every fault
// misses, a spool with late mail, ~/Mailbox with late mail and folders, a small spool with
// folders.
func rbErrorRig(t *testing.T, prefix string) *rbRig {
	return newRBRig(t, prefix,
		&rbUser{inbox: 3},
		&rbUser{inbox: 120, late: true, change: func(t *testing.T, g *rbRig, u *rbUser) {
			flagMessage(t, filepath.Join(u.Home, "Maildir"), 1)
		}},
		&rbUser{mailbox: true, inbox: 60, late: true, folders: map[string]int{"Work": 15, "Zeta": 6}, change: func(t *testing.T, g *rbRig, u *rbUser) {
			flagMessage(t, filepath.Join(u.Home, "Maildir"), 0)
			subscribe(t, u.Account, filepath.Join(u.Home, "Maildir"), "Work")
		}},
		&rbUser{inbox: 3, folders: map[string]int{"Archive": 20, "Lists/Go": 10}, change: func(t *testing.T, g *rbRig, u *rbUser) {
			flagMessage(t, filepath.Join(u.Home, "Maildir", ".Archive"), 0)
		}},
	)
}

// TestRollbackInjectedErrors injects EIO, ENOSPC and EDQUOT where a rollback writes the new
// mbox (the worker's writes into root's file beside a spool, beside ~/Mailbox and beside each
// folder) and where it syncs it (the worker's fsync, root's after keeping the late mail, the
// worker's in the home). Each user the fault meets must fail with an error line naming them,
// the file and the errno; every mbox must be the old one or the new one, the ones named the
// old; nothing may be left beside them; the others must be rolled back as without the fault.
// One plain re-run must then leave what an uninterrupted rollback leaves.
func TestRollbackInjectedErrors(t *testing.T) {
	g := rbErrorRig(t, "rbe")
	ref := g.reference(t)
	for _, point := range []struct {
		spec   string
		who    []int // the users of the run, all when nil
		failed []int // the users the fault meets
	}{
		// The spool's worker and the ~/Mailbox worker write more than twice; the folders
		// worker's third write is in Archive, and Lists/Go's writes come later.
		{"export:3", nil, []int{1, 2, 3}},
		// Every worker syncs the new mbox once it is written: all fail.
		{"fsync:1", nil, []int{0, 1, 2, 3}},
		// Root's second, after keeping the second spool's late mail (and its third, of the
		// last spool); the ~/Mailbox worker's, after keeping its late mail.
		{"fsync:2", nil, []int{1, 2, 3}},
		// The folders worker's second, of Archive after it was written, and every later one.
		{"fsync:2", []int{3}, []int{3}},
		// The folders worker's third: Lists/Go's, once written; Archive is rolled back.
		{"fsync:3", []int{0, 3}, []int{3}},
	} {
		for _, errno := range []string{"eio", "enospc", "edquot"} {
			spec := point.spec + ":" + errno
			name := spec
			if point.who != nil {
				name += fmt.Sprintf("/users%v", point.who)
			}
			t.Run(name, func(t *testing.T) { injectIntoRollback(t, g, ref, spec, errno, point.who, point.failed) })
		}
	}
}

// injectIntoRollback prepares the rig, rolls back with the errno fault spec, judges what the
// failed run said and left (the users failed, and nobody else), and has one re-run finish.
func injectIntoRollback(t *testing.T, g *rbRig, ref rbReference, spec, errno string, who, failed []int) {
	label := "rollback with " + spec
	g.prepare(t)
	maildirs := snapshot(t, nil, g.maildirPaths()...)
	var users []*rbUser
	for _, i := range who {
		users = append(users, g.users[i])
	}
	r := runWithFault(t, spec, g.args("rollback", users)...)
	if r.code != 3 {
		t.Errorf("%s: exit %d, want 3\n%s%s", label, r.code, r.stdout, r.stderr)
	}
	t.Logf("%s:\n%s", label, r.stderr)
	g.checkFailed(t, label, ref, r.stderr, errnoTexts[errno], who, failed)
	if d := snapDiff(snapshot(t, nil, g.maildirPaths()...), maildirs); len(d) > 0 {
		t.Errorf("%s: the rollback changed a Maildir:\n%s", label, strings.Join(d, "\n"))
	}
	again := runBinary(t, g.args("rollback", nil)...)
	if again.code != 0 {
		t.Errorf("%s: re-run: exit %d, want 0\n%s%s", label, again.code, again.stdout, again.stderr)
	}
	if d := snapDiff(snapshot(t, nil, g.mboxPaths(t)...), ref.mboxes); len(d) > 0 {
		t.Errorf("%s: after the re-run, the mboxes are not what an uninterrupted rollback leaves:\n%s", label, strings.Join(d, "\n"))
	}
}

// checkFailed judges a rollback of the users who (all when nil) that failed the users failed
// with the error errText: each has an error line naming them, an absolute file of theirs and
// errText, and each file that line names is as it was; every mbox is the old one or the new
// one; nothing but mboxes is beside them; the other users of the run are rolled back as in
// ref, and have no error line, and those not in it are as they were.
func (g *rbRig) checkFailed(t *testing.T, label string, ref rbReference, stderr, errText string, who, failed []int) {
	t.Helper()
	now := snapshot(t, nil, g.mboxPaths(t)...)
	g.checkOldOrNew(t, label, ref, now)
	for p, d := range now {
		if strings.Contains(p, "/.maildirmig-rollback.") || strings.HasSuffix(p, ".lock") {
			t.Errorf("%s: %s left behind (%s)", label, p, d)
		}
	}
	lines := strings.Split(stderr, "\n")
	for i, u := range g.users {
		var mine []string
		for _, l := range lines {
			if strings.HasPrefix(l, "maildirmig: error: user "+u.Name+": ") {
				mine = append(mine, l)
			}
		}
		if !slicesContains(failed, i) {
			if len(mine) > 0 {
				t.Errorf("%s: %s (whom the fault misses) failed: %s", label, u.Name, mine)
			}
			want, how := ref.mboxes, "as rolled back"
			if who != nil && !slicesContains(who, i) {
				want, how = ref.before, "as it was, not in the run"
			}
			for p, d := range want {
				if strings.HasPrefix(p, u.Home+"/") || p == g.src(u) {
					if now[p] != d {
						t.Errorf("%s: %s (whom the fault misses): %s is %s, want %s %s", label, u.Name, p, now[p], d, how)
					}
				}
			}
			continue
		}
		if len(mine) != 1 {
			t.Errorf("%s: %s: %d error lines, want 1: %q", label, u.Name, len(mine), mine)
			continue
		}
		l := mine[0]
		if !strings.Contains(l, errText) {
			t.Errorf("%s: %s: %q does not say %q", label, u.Name, l, errText)
		}
		// The file named is the mbox being written, or the new one beside it: not a
		// Maildir message, which was only read.
		named := 0
		for _, w := range strings.Fields(l) {
			w = strings.TrimRight(w, ":,;")
			if !strings.HasPrefix(w, "/") {
				continue
			}
			_, isMbox := ref.mboxes[w]
			tmp := strings.Contains(w, "/.maildirmig-rollback.")
			if !strings.HasPrefix(w, u.Home+"/") && !strings.HasPrefix(w, g.spool+"/") || !isMbox && !tmp {
				t.Errorf("%s: %s: %q names %s, not an mbox of theirs or the new one beside it", label, u.Name, l, w)
			}
			named++
			if before, ok := ref.before[w]; ok && now[w] != before {
				t.Errorf("%s: %s: %s, named as failed, is %s, not as it was (%s)", label, u.Name, w, now[w], before)
			}
		}
		if named == 0 {
			t.Errorf("%s: %s: %q names no file", label, u.Name, l)
		}
	}
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// mountTmpfs mounts a tmpfs of size (mount's notation) on a new directory every user can
// enter, for the rest of the test, and returns the directory; it skips the test where no
// tmpfs can be mounted.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	// Not beneath t.TempDir(), which only root may enter: the workers run as the users.
	mnt, err := os.MkdirTemp("", "mdmt-rbfull-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(mnt) })
	if err := os.Chmod(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s): no real full disk to test", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// resizeTmpfs makes the tmpfs at mnt size bytes, or what it holds and spare bytes more when
// size is 0, and returns the size set.
func resizeTmpfs(t *testing.T, mnt string, size, spare int64) int64 {
	t.Helper()
	if size == 0 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		size = int64(st.Blocks-st.Bfree)*st.Bsize + spare
	}
	size = (size + 4095) &^ 4095
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%d", size), mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount %s with %d bytes: %v: %s", mnt, size, err, out)
	}
	return size
}

// TestRollbackFullHome rolls back accounts whose homes are small tmpfs file systems that the
// new mboxes fill for real: one whose INBOX is ~/Mailbox (with late mail and a folder), one
// whose spool is in the spool directory but whose folders are in the home, and a bystander on
// the ordinary disk. The two must fail with ENOSPC, naming them and the file; their mboxes
// and Maildirs must be as they were, with nothing left beside them; the bystander must be
// rolled back. Once the file systems are larger, one re-run must leave what an
// uninterrupted rollback leaves.
func TestRollbackFullHome(t *testing.T) {
	mailtest.RequireUserTools(t)
	mailboxHome, foldersHome := mountTmpfs(t, "16m"), mountTmpfs(t, "16m")
	p := plainRig(t)
	g := &rbRig{spool: p.spool, state: p.state, audit: p.audit}
	for i, u := range []*rbUser{
		{inbox: 3},
		{mailbox: true, inbox: 60, late: true, folders: map[string]int{"Work": 15}, change: func(t *testing.T, g *rbRig, u *rbUser) {
			flagMessage(t, filepath.Join(u.Home, "Maildir"), 0)
		}},
		{inbox: 3, folders: map[string]int{"Archive": 20, "Lists/Go": 10}, change: func(t *testing.T, g *rbRig, u *rbUser) {
			flagMessage(t, filepath.Join(u.Home, "Maildir", ".Archive"), 0)
		}},
	} {
		var args []string
		switch i {
		case 1:
			args = []string{"-d", filepath.Join(mailboxHome, "rbfm")}
		case 2:
			args = []string{"-d", filepath.Join(foldersHome, "rbff")}
		}
		u.Account = mailtest.AddAccount(t, fmt.Sprintf("rbf%d", i), append(args, "-s", "/usr/sbin/nologin")...)
		g.users = append(g.users, u)
	}
	ref := g.reference(t)

	g.prepare(t)
	maildirs := snapshot(t, nil, g.maildirPaths()...)
	// Room for the locks and a page or two of the new mbox, not for all of it.
	for _, mnt := range []string{mailboxHome, foldersHome} {
		t.Logf("%s: %d bytes", mnt, resizeTmpfs(t, mnt, 0, 16<<10))
	}
	r := runBinary(t, g.args("rollback", nil)...)
	t.Logf("rollback on full homes: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 3 {
		t.Errorf("exit %d, want 3", r.code)
	}
	g.checkFailed(t, "full homes", ref, r.stderr, "no space left on device", nil, []int{1, 2})
	if d := snapDiff(snapshot(t, nil, g.maildirPaths()...), maildirs); len(d) > 0 {
		t.Errorf("the rollback changed a Maildir:\n%s", strings.Join(d, "\n"))
	}
	// Every mbox in a full home is as it was; the spool beside them, on another file
	// system, is rolled back.
	now := snapshot(t, nil, g.mboxPaths(t)...)
	for _, u := range g.users[1:] {
		for p, d := range ref.before {
			if strings.HasPrefix(p, u.Home+"/") && strings.HasPrefix(d, "-") && now[p] != d {
				t.Errorf("%s: %s is %s, want it as it was (%s)", u.Name, p, now[p], d)
			}
		}
	}
	if p := g.src(g.users[2]); now[p] != ref.mboxes[p] {
		t.Errorf("%s: the spool is %s, want it rolled back (%s)", g.users[2].Name, now[p], ref.mboxes[p])
	}

	for _, mnt := range []string{mailboxHome, foldersHome} {
		resizeTmpfs(t, mnt, 16<<20, 0)
	}
	again := runBinary(t, g.args("rollback", nil)...)
	if again.code != 0 {
		t.Errorf("re-run after space was freed: exit %d\n%s%s", again.code, again.stdout, again.stderr)
	}
	if d := snapDiff(snapshot(t, nil, g.mboxPaths(t)...), ref.mboxes); len(d) > 0 {
		t.Errorf("after the re-run, the mboxes are not what an uninterrupted rollback leaves:\n%s", strings.Join(d, "\n"))
	}
}
