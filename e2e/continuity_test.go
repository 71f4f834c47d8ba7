package e2e

// The continuity proof: what IMAP and POP3 clients see of a whole account (folders,
// subscriptions, UIDVALIDITY, UIDNEXT, UIDs, flags, keywords, INTERNALDATE, sizes, UIDLs,
// headers and bodies) is recorded from a real Dovecot serving the user's mbox, then again from
// the same Dovecot serving the Maildir maildirmig made of it. The two must be equal, or every
// client would download every message again.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/mailtest"
	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/migrate"
)

// migrateUser migrates one user's spool and ~/mail folders. migrateBatch is the product's
// batch command; migratePerFolder drives `maildirmig convert` folder by folder, for as long
// as the batch command does not migrate folders.
var migrateUser = migratePerFolder

// namespaceSlash keeps '/' as the hierarchy separator after the switch to Maildir++, as
// Dovecot's documentation advises when migrating from mbox: without it every client would
// see its folders renamed from "Lists/dovecot" to "Lists.dovecot".
const namespaceSlash = `
namespace inbox {
  inbox = yes
  separator = /
}
`

// continuityEnv is one user on a Dovecot serving mbox (INBOX in a private spool directory,
// folders in ~/mail), with what the migration needs to find them.
type continuityEnv struct {
	dovecot *mailtest.Dovecot
	user    mailtest.User
	spool   string // the spool directory; the INBOX is spool/NAME
	bin     string // the directory holding maildirmig and a copy of this test binary
}

func newContinuityEnv(t *testing.T, name string) *continuityEnv {
	t.Helper()
	mailtest.RequireDovecot(t)
	dir := mailtest.Dir(t)
	e := &continuityEnv{spool: filepath.Join(dir, "spool"), bin: filepath.Join(dir, "bin")}
	for _, d := range []string{e.spool, e.bin} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Like /var/mail, writable for the dotlocks Dovecot and maildirmig take beside a spool.
	if err := os.Chmod(e.spool, 0o1777); err != nil {
		t.Fatal(err)
	}
	e.user = mailtest.NewUser(t, dir, name)
	e.user.Mkdir(t, filepath.Join(e.user.Home, "mail"))
	e.dovecot = mailtest.StartDovecot(t, mailtest.DovecotConfig{
		MailLocation: "mbox:~/mail:INBOX=" + e.spool + "/%u",
		Users:        []mailtest.User{e.user},
		Extra:        namespaceSlash,
	})
	build := exec.Command("go", "build", "-o", filepath.Join(e.bin, "maildirmig"), "github.com/maildirmig/maildirmig/cmd/maildirmig")
	build.Dir = mailtest.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, self, filepath.Join(e.bin, "e2e.test"), 0o755)
	return e
}

// run runs name as the user and fails the test when it fails.
func (e *continuityEnv) run(t *testing.T, name string, args []string, extra ...string) []byte {
	t.Helper()
	cmd := e.user.Command(name, args, extra...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, stderr.String())
	}
	return out
}

// account is what clients see of a whole account.
type account struct {
	Folders    []string // LIST "" "*", sorted
	Subscribed []string // LSUB "" "*", sorted
	Mailboxes  map[string]mailboxView
	UIDL       []string // POP3 UIDL of the INBOX, in message order
}

type mailboxView struct {
	Status   mailtest.MailboxStatus // IMAP STATUS: MESSAGES, UIDVALIDITY, UIDNEXT
	Messages []messageView
}

type messageView struct {
	UID          uint32
	Flags        []string // system flags and keywords, \Recent left out (it belongs to a session)
	InternalDate time.Time
	Size         int64  // RFC822.SIZE
	Header       string // as Dovecot shows it (mbox-internal headers hidden)
	Body         string // SHA-256
}

func (e *continuityEnv) record(t *testing.T) account {
	t.Helper()
	c := e.dovecot.IMAP(t, e.user.Name)
	a := account{Folders: c.List(t), Subscribed: c.Lsub(t), Mailboxes: make(map[string]mailboxView)}
	sort.Strings(a.Folders)
	sort.Strings(a.Subscribed)
	for _, name := range a.Folders {
		// \Noselect parents of nested folders hold no messages and answer STATUS with NO.
		if _, err := c.Command(`STATUS "` + name + `" (MESSAGES)`); err != nil {
			continue
		}
		v := mailboxView{Status: c.Status(t, name)}
		records := make(map[uint32]mailtest.Record)
		for _, r := range e.dovecot.Fetch(t, e.user.Name, name) {
			records[r.UID] = r
		}
		for _, m := range c.Messages(t, name) {
			var flags []string
			for _, f := range m.Flags {
				if f != `\Recent` {
					flags = append(flags, f)
				}
			}
			sort.Strings(flags)
			r := records[m.UID]
			v.Messages = append(v.Messages, messageView{UID: m.UID, Flags: flags, InternalDate: m.InternalDate.UTC(),
				Size: m.Size, Header: r.Header, Body: r.BodySHA256()})
		}
		a.Mailboxes[name] = v
	}
	a.UIDL = e.dovecot.POP3UIDL(t, e.user.Name)
	return a
}

// compare fails the test with every difference between the account before and after.
func compare(t *testing.T, before, after account) {
	t.Helper()
	if reflect.DeepEqual(before, after) {
		return
	}
	b, a := lines(before), lines(after)
	for i := 0; i < len(b) || i < len(a); i++ {
		var x, y string
		if i < len(b) {
			x = b[i]
		}
		if i < len(a) {
			y = a[i]
		}
		if x != y {
			t.Errorf("mbox:    %s\nMaildir: %s", x, y)
		}
	}
}

func lines(a account) []string {
	out := []string{fmt.Sprintf("folders %q", a.Folders), fmt.Sprintf("subscribed %q", a.Subscribed), fmt.Sprintf("uidl %q", a.UIDL)}
	var names []string
	for name := range a.Mailboxes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v := a.Mailboxes[name]
		out = append(out, fmt.Sprintf("%s status %+v", name, v.Status))
		for _, m := range v.Messages {
			j, _ := json.Marshal(m)
			out = append(out, fmt.Sprintf("%s %s", name, j))
		}
	}
	return out
}

// proveContinuity records the account over mbox, migrates, switches Dovecot to the Maildir
// and records it again.
func (e *continuityEnv) proveContinuity(t *testing.T) {
	t.Helper()
	before := e.record(t)
	if len(before.Mailboxes) < 2 {
		t.Fatalf("the mbox account shows %d mailboxes, the test needs INBOX and folders:\n%s", len(before.Mailboxes), e.dovecot.Log())
	}
	// Nothing may hold the mbox while it is read, as after a real switch of mail_location.
	e.dovecot.Stop(t)
	migrateUser(t, e)
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	e.dovecot.Start(t)
	after := e.record(t)
	compare(t, before, after)
	t.Logf("%d folders, %d subscribed, %d INBOX UIDLs compared", len(before.Folders), len(before.Subscribed), len(before.UIDL))
}

// migratePerFolder converts the INBOX with `maildirmig convert`, lets the folders helper (this
// test binary, as the user) create the Maildir++ folders and subscriptions with the migrate
// package, then converts each folder with `maildirmig convert`.
func migratePerFolder(t *testing.T, e *continuityEnv) {
	t.Helper()
	mdm := filepath.Join(e.bin, "maildirmig")
	maildirPath := filepath.Join(e.user.Home, "Maildir")
	e.run(t, mdm, []string{"convert", "-q", "--from", filepath.Join(e.spool, e.user.Name), maildirPath})
	out := e.run(t, filepath.Join(e.bin, "e2e.test"), []string{"-test.run=^TestFoldersHelper$"}, "MAILDIRMIG_E2E_FOLDERS=1")
	var folders []migrate.Folder
	if err := json.Unmarshal(lastLine(out), &folders); err != nil {
		t.Fatalf("folders helper: %v\n%s", err, out)
	}
	for _, f := range folders {
		e.run(t, mdm, []string{"convert", "-q", "--from", filepath.Join(e.user.Home, "mail", f.Source), filepath.Join(maildirPath, f.Maildir)})
	}
}

// migrateBatch is the product's way: one batch run for the user.
func migrateBatch(t *testing.T, e *continuityEnv) {
	t.Helper()
	dir := mailtest.Dir(t)
	passwd := filepath.Join(dir, "passwd")
	line := fmt.Sprintf("%s:x:%d:%d::%s:/bin/sh\n", e.user.Name, e.user.UID, e.user.GID, e.user.Home)
	if err := os.WriteFile(passwd, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(e.bin, "maildirmig"), "mbox", "-q", "--passwd", passwd, "--spool-dir", e.spool,
		"--state-dir", filepath.Join(dir, "state"), "--audit-log", filepath.Join(dir, "audit.jsonl"), "--user", e.user.Name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("maildirmig mbox: %v\n%s", err, out)
	}
}

func lastLine(b []byte) []byte {
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	return []byte(ls[len(ls)-1])
}

// TestFoldersHelper is not a test: migratePerFolder runs this binary as the user with
// MAILDIRMIG_E2E_FOLDERS=1 to create the Maildir++ folders of ~/mail and carry the
// subscriptions over, through the migrate package, and print the folders as JSON.
func TestFoldersHelper(t *testing.T) {
	if os.Getenv("MAILDIRMIG_E2E_FOLDERS") != "1" {
		t.Skip("run by migratePerFolder only")
	}
	home := os.Getenv("HOME")
	root, err := unix.Open(filepath.Join(home, "mail"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(root)
	folders, skipped, err := migrate.DiscoverFolders(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range skipped {
		fmt.Fprintf(os.Stderr, "skipped %s: %s\n", s.Source, s.Reason)
	}
	inbox, err := maildir.Open(filepath.Join(home, "Maildir"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer inbox.Close()
	for _, f := range folders {
		d, err := migrate.OpenFolder(inbox, f.Maildir)
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
	}
	if f, err := migrate.OpenBeneath(root, ".subscriptions"); err == nil {
		names, err := migrate.ReadSubscriptions(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := migrate.WriteSubscriptions(inbox, names); err != nil {
			t.Fatal(err)
		}
	}
	j, err := json.Marshal(folders)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\n%s\n", j)
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// imap runs commands in one IMAP session as the user and fails the test on a NO or BAD.
func (e *continuityEnv) imap(t *testing.T, cmds ...string) {
	t.Helper()
	c := e.dovecot.IMAP(t, e.user.Name)
	for _, cmd := range cmds {
		if _, err := c.Command(cmd); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, e.dovecot.Log())
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestContinuityDovecotWritten migrates an account whose spool and folder Dovecot wrote
// (X-IMAPbase, X-UID, keywords, Content-Length, no >From quoting), after a client read,
// flagged, expunged, filed and subscribed over IMAP.
func TestContinuityDovecotWritten(t *testing.T) {
	corpora := mailtest.Corpora(t)
	e := newContinuityEnv(t, "dwalice")
	src := filepath.Join(corpora, "dovecot-written")
	e.user.CopyFile(t, filepath.Join(src, "dovecot-mboxcl2-inbox.mbox"), filepath.Join(e.spool, e.user.Name))
	e.user.CopyFile(t, filepath.Join(src, "dovecot-mboxcl2-Archive.mbox"), filepath.Join(e.user.Home, "mail", "Archive"))
	e.user.Mkdir(t, filepath.Join(e.user.Home, "mail", "Lists"))
	e.user.CopyFile(t, filepath.Join(src, "dovecot-mboxcl2-Archive.mbox"), filepath.Join(e.user.Home, "mail", "Lists", "dovecot"))
	e.imap(t,
		`SELECT INBOX`,
		`STORE 1 +FLAGS (\Seen \Flagged $Important)`,
		`STORE 2 +FLAGS (\Deleted)`,
		`EXPUNGE`,
		`COPY 3:4 "Lists/dovecot"`,
		`CREATE "Entw&APw-rfe"`, // Entwürfe: a new folder that no X-IMAPbase has numbered yet
		`COPY 5 "Entw&APw-rfe"`,
		`SUBSCRIBE "Archive"`,
		`SUBSCRIBE "Lists/dovecot"`,
		`SUBSCRIBE "Entw&APw-rfe"`,
		`SUBSCRIBE "Gone"`, // subscriptions to folders that do not exist are kept too
	)
	e.proveContinuity(t)
}
