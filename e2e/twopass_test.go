package e2e

// The two-pass night: a first pass days before, while users keep working on their mbox
// through Dovecot (flags, keywords, expunges, COPY, APPEND, folders, subscriptions, POP3
// deletions) and Postfix keeps delivering, then a short pass on the night. What Dovecot shows
// of the Maildir after the second pass must be what it showed of the mbox just before.

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// twoPassEnv is a real account Postfix delivers to (its spool in the instance's spool
// directory) and a Dovecot that serves that spool as the INBOX and ~/mail as folders.
type twoPassEnv struct {
	*continuityEnv
	postfix      *mailtest.Postfix
	state, audit string
}

func newTwoPassEnv(t *testing.T, base string) *twoPassEnv {
	t.Helper()
	mailtest.RequirePostfix(t)
	mailtest.RequireDovecot(t)
	mailtest.RequireUserTools(t)
	su := mailtest.AddAccount(t, base, "-s", "/usr/sbin/nologin")
	p := mailtest.StartPostfix(t)
	u := mailtest.User{Name: su.Name, Password: "pw-" + su.Name, UID: su.UID, GID: su.GID, Home: su.Home}
	u.Mkdir(t, filepath.Join(u.Home, "mail"))
	d := mailtest.StartDovecot(t, mailtest.DovecotConfig{
		MailLocation: "mbox:~/mail:INBOX=" + p.Mailbox(u.Name),
		Users:        []mailtest.User{u},
		Extra:        namespaceSlash,
	})
	dir := t.TempDir()
	return &twoPassEnv{continuityEnv: &continuityEnv{dovecot: d, user: u, spool: p.SpoolDir}, postfix: p,
		state: filepath.Join(dir, "state"), audit: filepath.Join(dir, "audit.jsonl")}
}

// deliver has Postfix deliver n messages, numbered from first, and waits for them.
func (e *twoPassEnv) deliver(t *testing.T, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		_, header, body := testMessage(e.user.Name, i)
		e.postfix.Deliver(t, e.user.Name, []byte(header+"\n"+body))
	}
	e.postfix.WaitQueueEmpty(t)
}

// pass runs `maildirmig mbox` for the account, as root, and fails the test unless it exits 0.
func (e *twoPassEnv) pass(t *testing.T, what string) result {
	t.Helper()
	r := runBinary(t, "mbox", "--spool-dir", e.spool, "--state-dir", e.state, "--audit-log", e.audit, "--user", e.user.Name)
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s%s", what, r.code, r.stdout, r.stderr)
	}
	t.Logf("%s: %s", what, strings.TrimSpace(r.stdout))
	return r
}

// maildirFiles lists the files of the account's Maildir and its folders, with their
// flags, as relative paths.
func (e *twoPassEnv) maildirFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	root := filepath.Join(e.user.Home, "Maildir")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if dir := filepath.Base(filepath.Dir(p)); !d.IsDir() && (dir == "cur" || dir == "new") {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// appendFromLines is a message an IMAP client APPENDs, whose body has lines that begin with
// "From " and ">From ", CRLF as IMAP sends it.
const appendFromLines = "From: Writer <writer@example.org>\r\nTo: someone@example.org\r\nSubject: appended with From lines\r\n" +
	"Date: Tue, 2 Jan 2024 09:30:00 +0000\r\nMessage-ID: <appended@mdmt.test>\r\n\r\n" +
	"From the start of a line, this is body text.\r\n>From a quoted line too.\r\nThe end.\r\n"

// TestTwoPassNight: pass 1 while Dovecot serves the mbox, then a day of IMAP and POP3 use and
// Postfix deliveries, then the night's pass 2. Dovecot on the Maildir shows what it showed of
// the mbox (folders, subscriptions, UIDVALIDITY, UIDNEXT, UIDs, flags, keywords, dates, sizes,
// bodies, POP3 UIDLs); verify proves it; a pass 3 writes nothing.
func TestTwoPassNight(t *testing.T) {
	e := newTwoPassEnv(t, "night")
	e.deliver(t, 0, 10)
	e.imap(t,
		`SELECT INBOX`,
		`FETCH 1:10 (FLAGS)`,
		`STORE 2 +FLAGS (\Seen Later)`,
		`STORE 5 +FLAGS (\Answered)`,
		`CREATE Work`,
		`COPY 6:7 Work`,
		`SUBSCRIBE Work`,
		`CREATE Old`,
		`COPY 8 Old`,
	)
	e.pass(t, "pass 1, with Dovecot serving the mbox")

	// A day of use: flags and keywords set and cleared, an expunge, a COPY, an APPEND with
	// "From " lines, a new subscribed folder, an unsubscribe, a folder deleted.
	e.imap(t,
		`SELECT INBOX`,
		`STORE 1 +FLAGS (\Flagged $Work)`,
		`STORE 2 -FLAGS (\Seen Later)`,
		`STORE 3 +FLAGS (\Deleted)`,
		`EXPUNGE`,
		`COPY 3 Work`,
		fmt.Sprintf("APPEND INBOX (\\Seen $Draft) {%d+}\r\n%s", len(appendFromLines), appendFromLines),
		`CREATE Projects`,
		`COPY 1 Projects`,
		`SUBSCRIBE Projects`,
		`UNSUBSCRIBE Work`,
		`DELETE Old`,
		`SELECT Work`,
		`STORE 1 +FLAGS (\Deleted)`,
		`EXPUNGE`,
	)
	// A POP3 client downloads the INBOX's fourth message and deletes it.
	e.dovecot.POP3(t, e.user.Name, "RETR 4", "DELE 4")
	e.deliver(t, 10, 2)

	before := e.record(t)
	// The night: Dovecot stops, pass 2 runs, Dovecot comes back on the Maildir.
	e.dovecot.Stop(t)
	r := e.pass(t, "pass 2, on the night")
	if !strings.Contains(r.stdout, " removed") || !strings.Contains(r.stdout, "renamed for their flags") {
		t.Errorf("pass 2 says neither removals nor renames: %s", r.stdout)
	}
	verify := runBinary(t, "verify", "--spool-dir", e.spool, "--state-dir", e.state, "--user", e.user.Name)
	if verify.code != 0 {
		t.Fatalf("verify after pass 2: exit %d\n%s%s", verify.code, verify.stdout, verify.stderr)
	}
	if _, err := os.Stat(filepath.Join(e.user.Home, "Maildir", ".Old")); !os.IsNotExist(err) {
		t.Errorf("the Maildir++ folder of the deleted Old: %v", err)
	}
	files := e.maildirFiles(t)
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	e.dovecot.Start(t)
	after := e.record(t)
	compare(t, before, after)
	t.Logf("%d folders, %d subscribed, %d INBOX UIDLs compared", len(before.Folders), len(before.Subscribed), len(before.UIDL))

	// Pass 3: nothing changed in the mbox since pass 2, nothing is written.
	r = e.pass(t, "pass 3")
	if !strings.Contains(r.stdout, ": up to date") {
		t.Errorf("pass 3: %s; want the user up to date", r.stdout)
	}
	// Dovecot's own files aside (it has served the Maildir since), nothing moved.
	if got := e.maildirFiles(t); !reflect.DeepEqual(got, files) {
		t.Errorf("pass 3 changed the Maildir:\n%v\nwas\n%v", got, files)
	}
}

// TestTwoPassAfterSwitch: pass 1, then the switch, and the user works on the Maildir through
// Dovecot (a flag, an expunge) while a stray delivery reaches the spool and a local client
// rewrites the mbox. The pass after adds the delivered message and undoes nothing the user
// did in the Maildir.
func TestTwoPassAfterSwitch(t *testing.T) {
	e := newTwoPassEnv(t, "switch")
	e.deliver(t, 0, 6)
	e.imap(t, `SELECT INBOX`, `FETCH 1:6 (FLAGS)`)
	e.pass(t, "pass 1")
	e.dovecot.Stop(t)
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	e.dovecot.Start(t)
	e.imap(t,
		`SELECT INBOX`,
		`STORE 1 +FLAGS (\Flagged)`,
		`STORE 2 +FLAGS (\Deleted)`,
		`EXPUNGE`,
	)
	onMaildir := e.record(t)
	// The spool lives on: Postfix delivers one more, and a local client marks the third
	// message answered in the mbox.
	e.deliver(t, 6, 1)
	spool := e.postfix.Mailbox(e.user.Name)
	b, err := os.ReadFile(spool)
	if err != nil {
		t.Fatal(err)
	}
	third := "Subject: message 2 for " + e.user.Name + "\n"
	if !strings.Contains(string(b), third) {
		t.Fatalf("the spool lacks %q", third)
	}
	e.user.WriteFile(t, spool, []byte(strings.Replace(string(b), third, third+"X-Status: A\n", 1)))

	r := e.pass(t, "pass after the switch")
	if !strings.Contains(r.stderr, "in use") {
		t.Errorf("the pass did not say the Maildir is in use: %s", r.stderr)
	}
	after := e.record(t)
	inbox, was := after.Mailboxes["INBOX"], onMaildir.Mailboxes["INBOX"]
	if len(inbox.Messages) != len(was.Messages)+1 {
		t.Fatalf("INBOX holds %d messages, want the %d the user kept and the one delivered", len(inbox.Messages), len(was.Messages))
	}
	for i, m := range was.Messages {
		if !reflect.DeepEqual(inbox.Messages[i], m) {
			t.Errorf("message UID %d changed:\n%+v\nwas\n%+v", m.UID, inbox.Messages[i], m)
		}
	}
	if last := inbox.Messages[len(inbox.Messages)-1]; last.UID < was.Status.UIDNext {
		t.Errorf("the delivered message got UID %d, below the UIDNEXT %d clients knew", last.UID, was.Status.UIDNext)
	}
	if inbox.Status.UIDValidity != was.Status.UIDValidity {
		t.Errorf("UIDVALIDITY %d, was %d", inbox.Status.UIDValidity, was.Status.UIDValidity)
	}
	n := 0
	b, err = os.ReadFile(e.audit)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"kind":"maildir-live"`) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d maildir-live notices in the audit log, want 1", n)
	}
}
