package dovecotview

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/mailtest"
	"github.com/maildirmig/maildirmig/migrate"
)

// namespaceSlash keeps "/" as the separator, as the README says to on the switch.
const namespaceSlash = "namespace inbox {\n  inbox = yes\n  separator = /\n}\n"

// server is a private Dovecot serving one user, on mbox: the INBOX in a spool directory, the
// folders in ~/mail.
type server struct {
	dovecot *mailtest.Dovecot
	user    mailtest.User
	spool   string
}

// inbox is the user's spool: messages as Postfix writes them, one with bytes that are not
// UTF-8, one with CRLF line ends, one with a line that looks like a From_ line.
var inbox = "From a@example.org Mon Jan  1 10:00:00 2024\nFrom: a@example.org\nSubject: one\nMessage-ID: <1@example.org>\n\nbody one\n\n" +
	"From b@example.org Mon Jan  1 11:00:00 2024\nFrom: b@example.org\nSubject: =?iso-8859-1?q?caf=E9?=\nMessage-ID: <2@example.org>\nContent-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9 cr\xe8me \x0c form feed\n\n" +
	"From c@example.org Mon Jan  1 12:00:00 2024\r\nFrom: c@example.org\r\nSubject: crlf\r\nMessage-ID: <3@example.org>\r\n\r\nbody three\r\n>From the desk of\r\n\r\n" +
	"From d@example.org Tue Jan  2 09:30:00 2024\nFrom: d@example.org\nSubject: four\nMessage-ID: <4@example.org>\n\nbody four\n\n"

var folder = "From e@example.org Wed Jan  3 08:00:00 2024\nFrom: e@example.org\nSubject: list mail\n\nlist body\n\n"

func newServer(t testing.TB, name string) *server {
	return newServerWith(t, name, inbox)
}

// newServerWith is newServer with spool as the user's INBOX.
func newServerWith(t testing.TB, name, spool string) *server {
	t.Helper()
	mailtest.RequireDovecot(t)
	dir := mailtest.Dir(t)
	s := &server{spool: filepath.Join(dir, "spool")}
	if err := os.Mkdir(s.spool, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.spool, 0o1777); err != nil {
		t.Fatal(err)
	}
	s.user = mailtest.NewUser(t, dir, name)
	s.user.WriteFile(t, filepath.Join(s.spool, name), []byte(spool))
	s.user.Mkdir(t, filepath.Join(s.user.Home, "mail"))
	s.user.Mkdir(t, filepath.Join(s.user.Home, "mail", "Lists"))
	s.user.WriteFile(t, filepath.Join(s.user.Home, "mail", "Lists", "dovecot"), []byte(folder))
	s.user.WriteFile(t, filepath.Join(s.user.Home, "mail", "Archive"), []byte(folder))
	s.dovecot = mailtest.StartDovecot(t, mailtest.DovecotConfig{
		MailLocation: "mbox:~/mail:INBOX=" + filepath.Join(s.spool, name),
		Users:        []mailtest.User{s.user},
		Extra:        namespaceSlash,
	})
	c := s.dovecot.IMAP(t, name)
	for _, cmd := range []string{
		`SELECT INBOX`,
		`STORE 1 +FLAGS (\Seen \Flagged $Important)`,
		`STORE 2 +FLAGS (\Answered Work)`,
		`STORE 3 +FLAGS (\Deleted)`,
		`EXPUNGE`,
		`CREATE "Entw&APw-rfe"`,
		`COPY 2 "Entw&APw-rfe"`,
		`SUBSCRIBE "Lists/dovecot"`,
		`SUBSCRIBE "Entw&APw-rfe"`,
	} {
		if _, err := c.Command(cmd); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, s.dovecot.Log())
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *server) recorder(hash bool) *Recorder {
	return &Recorder{Config: s.dovecot.Conf, Hash: hash}
}

// record records the server's user, failing the test on an error.
func (s *server) record(t testing.TB, hash bool) (Header, *User) {
	t.Helper()
	r := s.recorder(hash)
	h, err := r.Settings(context.Background())
	if err != nil {
		t.Fatalf("%v\n%s", err, s.dovecot.Log())
	}
	u := r.User(context.Background(), s.user.Name)
	if u.Error != "" || u.Unknown != "" {
		t.Fatalf("recording %s: %+v\n%s", s.user.Name, u, s.dovecot.Log())
	}
	return h, u
}

// TestRecordIsWhatClientsSee records an account on mbox through doveadm, then reads it as IMAP
// and POP3 clients do (LIST, LSUB, STATUS, EXAMINE, FETCH of every message's UID, FLAGS,
// INTERNALDATE, RFC822.SIZE and BODY[], POP3 UIDL): the recording says what they see.
func TestRecordIsWhatClientsSee(t *testing.T) {
	s := newServer(t, "rvalice")
	h, u := s.record(t, true)
	if h.MailLocation != s.dovecot.MailLocation(t, s.user.Name) || h.Separator != "/" || h.POP3UIDLFormat != "%08Xu%08Xv" || !h.POP3 || h.Hash != HashSHA256 || !strings.HasPrefix(h.Dovecot, "2.") {
		t.Errorf("header %+v", h)
	}
	if u.MailLocation != "mbox:~/mail:INBOX="+filepath.Join(s.spool, s.user.Name) {
		t.Errorf("the user's mail location %q", u.MailLocation)
	}

	c := s.dovecot.IMAP(t, s.user.Name)
	list, lsub := c.List(t), c.Lsub(t)
	var recorded, subscribed []string
	for _, mb := range u.Mailboxes {
		recorded = append(recorded, mb.Name)
	}
	subscribed = append(subscribed, u.Subscribed...)
	// IMAP names are modified UTF-7, doveadm's UTF-8.
	imapName := map[string]string{}
	for _, names := range [][]string{list, lsub} {
		for i, n := range names {
			utf8, err := migrate.DecodeMUTF7(n)
			if err != nil {
				t.Fatal(err)
			}
			names[i], imapName[utf8] = utf8, n
		}
		sort.Strings(names)
	}
	sort.Strings(recorded)
	if !slices.Equal(recorded, list) || !slices.Equal(subscribed, lsub) {
		t.Errorf("mailboxes %q, subscriptions %q; IMAP lists %q, subscribed %q", recorded, subscribed, list, lsub)
	}
	messages := 0
	for _, mb := range u.Mailboxes {
		name := imapName[mb.Name]
		if mb.NoSelect {
			if _, err := c.Command(`STATUS "` + name + `" (MESSAGES)`); err == nil {
				t.Errorf("%s: recorded \\Noselect, but IMAP STATUS answers", mb.Name)
			}
			continue
		}
		st := c.Status(t, name)
		if st.Messages != uint32(mb.Count) || st.UIDValidity != mb.UIDValidity || st.UIDNext != mb.UIDNext {
			t.Errorf("%s: recorded %d messages, UIDVALIDITY %d, UIDNEXT %d; IMAP STATUS %+v", mb.Name, mb.Count, mb.UIDValidity, mb.UIDNext, st)
		}
		imap := c.Messages(t, name)
		bodies := c.Bodies(t, name)
		if len(imap) != len(mb.Messages) {
			t.Fatalf("%s: recorded %d messages, IMAP shows %d", mb.Name, len(mb.Messages), len(imap))
		}
		for i, m := range imap {
			r := mb.Messages[i]
			var flags []string
			for _, f := range m.Flags {
				if f != `\Recent` {
					flags = append(flags, f)
				}
			}
			sort.Strings(flags)
			sum := sha256.Sum256([]byte(bodies[m.UID]))
			if r.UID != m.UID || !slices.Equal(r.Flags, flags) || !r.Received.Equal(m.InternalDate) || r.Size != m.Size || r.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("%s message %d: recorded %+v; IMAP UID %d FLAGS %q INTERNALDATE %v RFC822.SIZE %d, BODY[] sha256 %x",
					mb.Name, i+1, r, m.UID, flags, m.InternalDate, m.Size, sum)
			}
			messages++
		}
	}
	if messages != 6 {
		t.Errorf("%d messages compared, the account has 6", messages)
	}
	pop3 := s.dovecot.POP3UIDL(t, s.user.Name)
	var uidls []string
	for _, m := range u.mailbox("INBOX").Messages {
		uidls = append(uidls, m.UIDL)
	}
	if len(pop3) != 3 || !slices.Equal(uidls, pop3) {
		t.Errorf("recorded UIDLs %q, POP3 UIDL says %q", uidls, pop3)
	}
	if u.mailbox("INBOX").Messages[0].Flags[0] != "$Important" {
		t.Errorf("INBOX UID 1: flags %q, want $Important among them (the test set it)", u.mailbox("INBOX").Messages[0].Flags)
	}
}

// TestRecordUIDLFormats records the POP3 UIDLs of the same INBOX under several
// pop3_uidl_format settings and checks each against what a POP3 client is told.
func TestRecordUIDLFormats(t *testing.T) {
	s := newServer(t, "rvbob")
	seen := map[string]string{}
	// (On mbox, %g is the same header MD5 as %m.)
	for _, format := range []string{"%08Xu%08Xv", "%u", "%v.%u", "%m"} {
		s.dovecot.Reconfigure(t, namespaceSlash+"pop3_uidl_format = "+format+"\n")
		h, u := s.record(t, false)
		if h.POP3UIDLFormat != format {
			t.Errorf("%s: header says pop3_uidl_format %q", format, h.POP3UIDLFormat)
		}
		var uidls []string
		for _, m := range u.mailbox("INBOX").Messages {
			uidls = append(uidls, m.UIDL)
		}
		pop3 := s.dovecot.POP3UIDL(t, s.user.Name)
		if len(pop3) != 3 || !slices.Equal(uidls, pop3) {
			t.Errorf("%s: recorded UIDLs %q, POP3 UIDL says %q", format, uidls, pop3)
		}
		if prev, ok := seen[pop3[0]]; ok {
			t.Errorf("%s gives the UIDL %s, as %s did: the test cannot tell them apart", format, pop3[0], prev)
		}
		seen[pop3[0]] = format
	}
}

// TestRecordPOP3Fails: on a Maildir, pop3_uidl_format = %m leaves Dovecot's POP3 server unable
// to list UIDLs at all (it disconnects after "+OK", and exits 0). The recording says why,
// and still holds what IMAP clients see.
func TestRecordPOP3Fails(t *testing.T) {
	s := newServer(t, "rvcarol")
	maildir := filepath.Join(s.user.Home, "Maildir")
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		s.user.Mkdir(t, filepath.Join(maildir, sub))
	}
	msg := "From: a@example.org\nSubject: in a Maildir\n\nbody\n"
	s.user.WriteFile(t, filepath.Join(maildir, "cur", fmt.Sprintf("1704103200.M1P1.host,S=%d:2,S", len(msg))), []byte(msg))
	s.dovecot.Stop(t)
	s.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	s.dovecot.Reconfigure(t, namespaceSlash+"pop3_uidl_format = %m\n")
	s.dovecot.Start(t)
	_, u := s.record(t, false)
	if !strings.Contains(u.POP3Error, "Header MD5 not found") {
		t.Errorf("POP3 error %q, want Dovecot's reason (Header MD5 not found)", u.POP3Error)
	}
	inbox := u.mailbox("INBOX")
	if inbox == nil || len(inbox.Messages) != 1 || inbox.Messages[0].UIDL != "" || !slices.Equal(inbox.Messages[0].Flags, []string{`\Seen`}) {
		t.Errorf("INBOX recorded as %+v", inbox)
	}
}

// TestRecordUsers records four users, two at a time: one recorded, one Dovecot cannot read
// (its home is root's), one Dovecot does not know, one whose uid is below first_valid_uid.
// The file holds all four in the order given, each with what happened.
func TestRecordUsers(t *testing.T) {
	s := newServer(t, "rvdave")
	broken := mailtest.NewUser(t, filepath.Dir(filepath.Dir(s.user.Home)), "rvbroken")
	s.dovecot.AddUser(t, broken)
	if err := os.Chown(broken.Home, 0, 0); err != nil {
		t.Fatal(err)
	}
	s.dovecot.AddUser(t, mailtest.User{Name: "rvlow", Password: "x", UID: s.user.UID - 1000, GID: s.user.GID - 1000, Home: "/nonexistent"})
	s.dovecot.Reconfigure(t, namespaceSlash+fmt.Sprintf("first_valid_uid = %d\n", s.user.UID))
	path := filepath.Join(t.TempDir(), "before.jsonl")
	w, err := Create(path, false)
	if err != nil {
		t.Fatal(err)
	}
	r := s.recorder(false)
	h, err := r.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	var done []string
	users := []string{"rvbroken", "rvnosuch", s.user.Name, "rvlow"}
	if err := r.Record(context.Background(), users, 2, w, func(u *User) { done = append(done, u.Name) }); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(time.Now()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(done, users) {
		t.Errorf("users written in the order %q, want %q", done, users)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) *User {
		u, err := f.User(name)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if u := get("rvbroken"); !strings.Contains(u.Error, "Permission denied") || len(u.Mailboxes) != 0 {
		t.Errorf("the user whose home Dovecot cannot enter: %+v", u)
	}
	if u := get("rvnosuch"); !strings.Contains(u.Unknown, "rvnosuch") || u.Error != "" {
		t.Errorf("the user Dovecot does not know: %+v", u)
	}
	if u := get(s.user.Name); u.Error != "" || len(u.Mailboxes) != 5 || len(u.mailbox("INBOX").Messages) != 3 {
		t.Errorf("the readable user: %+v", u)
	}
	if u := get("rvlow"); !strings.HasPrefix(u.Unknown, "Mail access for users with UID ") || !strings.Contains(u.Unknown, "not permitted (see first_valid_uid") || u.Error != "" {
		t.Errorf("the user below first_valid_uid: %+v", u)
	}
}

// BenchmarkRecordUser records one user whose INBOX holds 2,000 messages of about 2 KiB, with
// and without hashes (which read every message through doveadm fetch text).
func BenchmarkRecordUser(b *testing.B) {
	var spool strings.Builder
	body := strings.Repeat("a line of a message body, as long as most lines are.\n", 36)
	for i := range 2000 {
		fmt.Fprintf(&spool, "From a@example.org Mon Jan  1 10:%02d:%02d 2024\nFrom: a@example.org\nSubject: message %d\nMessage-ID: <%d@example.org>\n\n%s\n", i/60%60, i%60, i, i, body)
	}
	s := newServerWith(b, "rvbench", spool.String())
	for _, hash := range []bool{false, true} {
		b.Run(fmt.Sprintf("hash=%t", hash), func(b *testing.B) {
			for b.Loop() {
				_, u := s.record(b, hash)
				if n := len(u.mailbox("INBOX").Messages); n != 2000-1 {
					b.Fatalf("%d messages in the INBOX, want 1999", n)
				}
			}
		})
	}
}
