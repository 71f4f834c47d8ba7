package e2e

// The continuity proof: what IMAP and POP3 clients see of a whole account (folders,
// subscriptions, UIDVALIDITY, UIDNEXT, UIDs, flags, keywords, INTERNALDATE, sizes, UIDLs,
// headers and bodies) is recorded from a real Dovecot serving the user's mbox, then again from
// the same Dovecot serving the Maildir maildirmig made of it. The two must be equal, or every
// client would download every message again.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/mailtest"
	"github.com/maildirmig/maildirmig/migrate"
)

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
}

func newContinuityEnv(t *testing.T, name string) *continuityEnv {
	t.Helper()
	mailtest.RequireDovecot(t)
	dir := mailtest.Dir(t)
	e := &continuityEnv{spool: filepath.Join(dir, "spool")}
	if err := os.Mkdir(e.spool, 0o755); err != nil {
		t.Fatal(err)
	}
	// Like /var/mail, writable for the dotlocks Dovecot and maildirmig take beside a spool.
	if err := os.Chmod(e.spool, 0o1777); err != nil {
		t.Fatal(err)
	}
	e.user = mailtest.NewUser(t, dir, name)
	e.user.Mkdir(t, filepath.Join(e.user.Home, "mail"))
	e.dovecot = mailtest.StartDovecot(t, mailtest.DovecotConfig{
		// The spool path is spelled out: doveadm -o mail_location does not expand %u.
		MailLocation: "mbox:~/mail:INBOX=" + filepath.Join(e.spool, name),
		Users:        []mailtest.User{e.user},
		Extra:        namespaceSlash,
	})
	return e
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
		// STATUS may answer from Dovecot's mailbox list index, which lags behind an mbox that
		// was just rewritten; EXAMINE syncs the mailbox first and tells the real UIDNEXT.
		v.Status.UIDNext = examineUIDNext(t, c, name)
		msgs := c.Messages(t, name)
		// doveadm numbers an mbox through its own sync, so its records are matched by position.
		// IMAP names are modified UTF-7, doveadm's are UTF-8.
		utf8Name, err := migrate.DecodeMUTF7(name)
		if err != nil {
			t.Fatal(err)
		}
		records := e.dovecot.Fetch(t, e.user.Name, utf8Name)
		if len(records) != len(msgs) {
			t.Fatalf("%s: IMAP shows %d messages, doveadm %d", name, len(msgs), len(records))
		}
		for i, m := range msgs {
			var flags []string
			for _, f := range m.Flags {
				if f != `\Recent` {
					flags = append(flags, f)
				}
			}
			sort.Strings(flags)
			r := records[i]
			v.Messages = append(v.Messages, messageView{UID: m.UID, Flags: flags, InternalDate: m.InternalDate.UTC(),
				Size: m.Size, Header: r.Header, Body: r.BodySHA256()})
		}
		a.Mailboxes[name] = v
	}
	a.UIDL = e.dovecot.POP3UIDL(t, e.user.Name)
	return a
}

func examineUIDNext(t *testing.T, c *mailtest.IMAPClient, name string) uint32 {
	t.Helper()
	resp, err := c.Command(`EXAMINE "` + name + `"`)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp {
		if _, rest, ok := strings.Cut(r, "[UIDNEXT "); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.Fields(rest)[0], "]"), 10, 32)
			if err != nil {
				t.Fatalf("EXAMINE %s: %q: %v", name, r, err)
			}
			return uint32(n)
		}
	}
	t.Fatalf("EXAMINE %s: no UIDNEXT in %q", name, resp)
	return 0
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
	migrateBatch(t, e)
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	e.dovecot.Start(t)
	after := e.record(t)
	compare(t, before, after)
	t.Logf("%d folders, %d subscribed, %d INBOX UIDLs compared", len(before.Folders), len(before.Subscribed), len(before.UIDL))
}

// migrateBatch migrates the user's spool and ~/mail folders the product's way: one batch run,
// as root, with the user's worker doing the folders.
func migrateBatch(t *testing.T, e *continuityEnv) {
	t.Helper()
	dir := mailtest.Dir(t)
	passwd := filepath.Join(dir, "passwd")
	line := fmt.Sprintf("%s:x:%d:%d::%s:/bin/sh\n", e.user.Name, e.user.UID, e.user.GID, e.user.Home)
	if err := os.WriteFile(passwd, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "mbox", "-q", "--passwd", passwd, "--spool-dir", e.spool,
		"--state-dir", filepath.Join(dir, "state"), "--audit-log", filepath.Join(dir, "audit.jsonl"), "--user", e.user.Name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("maildirmig mbox: %v\n%s", err, out)
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
	)
	// A subscription whose folder another client deleted: LSUB still shows it.
	subs := filepath.Join(e.user.Home, "mail", ".subscriptions")
	b, err := os.ReadFile(subs)
	if err != nil {
		t.Fatal(err)
	}
	e.user.WriteFile(t, subs, append(b, "Gone\n"...))
	e.proveContinuity(t)
}

// TestContinuityPostfixSpool migrates an INBOX that the real Postfix local(8) wrote (no
// X-IMAPbase, no X-UID until Dovecot adds them) after a client read, flagged, tagged,
// expunged and filed messages over IMAP, with a folder of its own.
func TestContinuityPostfixSpool(t *testing.T) {
	corpora := mailtest.Corpora(t)
	mailtest.RequirePostfix(t)
	p := mailtest.StartPostfix(t)
	rcpt := mailtest.SystemUser(t, mailtest.Dir(t), "nobody")
	paths, err := filepath.Glob(filepath.Join(corpora, "notmuch-corpora", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	delivered := 0
	for _, m := range paths {
		if st, err := os.Lstat(m); err != nil || !st.Mode().IsRegular() || delivered == 12 {
			continue
		}
		raw, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		p.Deliver(t, rcpt.Name, raw)
		delivered++
	}
	if delivered < 12 {
		t.Fatalf("notmuch-corpora: %d messages, want 12", delivered)
	}
	p.WaitQueueEmpty(t)
	p.Stop(t)

	e := newContinuityEnv(t, "pfbob")
	e.user.CopyFile(t, p.Mailbox(rcpt.Name), filepath.Join(e.spool, e.user.Name))
	e.imap(t,
		`SELECT INBOX`,
		`FETCH 1:6 (BODY[])`, // read: \Seen
		`STORE 2 +FLAGS (\Answered $Forwarded)`,
		`STORE 3 +FLAGS (\Flagged Work)`,
		`STORE 4 +FLAGS (\Deleted)`,
		`EXPUNGE`,
		`CREATE Saved`,
		`COPY 5:7 Saved`,
		`SUBSCRIBE Saved`,
	)
	e.proveContinuity(t)
}

// TestContinuityUW migrates an INBOX and a folder written by UW-IMAP's c-client (mailutil
// from uw-mailutils): each begins with the "DON'T DELETE THIS MESSAGE" pseudo-message that
// carries X-IMAP, which Dovecot hides and maildirmig must skip, keeping its UIDVALIDITY.
func TestContinuityUW(t *testing.T) {
	corpora := mailtest.Corpora(t)
	mailutil, err := exec.LookPath("mailutil")
	if err != nil {
		t.Skip("mailutil (uw-mailutils) is not installed")
	}
	mailtest.RequireRoot(t)
	// c-client refuses absolute names, the name INBOX and users missing from passwd: nobody
	// works in a scratch home with relative names.
	work := mailtest.Dir(t)
	if err := os.Chmod(work, 0o777); err != nil {
		t.Fatal(err)
	}
	uw := mailtest.SystemUser(t, work, "nobody")
	uw.CopyFile(t, filepath.Join(corpora, "perl-Mail-Box", "mbox.src"), filepath.Join(uw.Home, "src"))
	uw.CopyFile(t, filepath.Join(corpora, "gnu-mailutils", "teaparty.mbox"), filepath.Join(uw.Home, "src2"))
	for _, c := range [][]string{{"copy", "src", "uwinbox"}, {"copy", "src2", "mail/Tea"}} {
		cmd := uw.Command(mailutil, c)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mailutil %q: %v\n%s", c, err, out)
		}
	}
	for _, f := range []string{"uwinbox", "mail/Tea"} {
		b, err := os.ReadFile(filepath.Join(uw.Home, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b[:min(len(b), 1000)]), "X-IMAP: ") {
			t.Fatalf("mailutil wrote %s without the pseudo-message", f)
		}
	}

	e := newContinuityEnv(t, "uwcarol")
	e.user.CopyFile(t, filepath.Join(uw.Home, "uwinbox"), filepath.Join(e.spool, e.user.Name))
	e.user.CopyFile(t, filepath.Join(uw.Home, "mail", "Tea"), filepath.Join(e.user.Home, "mail", "Tea"))
	e.proveContinuity(t)
}
