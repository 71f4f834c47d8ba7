package e2e

// The way back, judged by Dovecot: a Maildir that maildirmig made, or that a client changed
// over IMAP, is written back to an mbox with the export package, and Dovecot must show the
// mbox as it showed the Maildir: every message with its UID, flags, keywords, INTERNALDATE,
// sizes, header and body, the same UIDVALIDITY and UIDNEXT, the same POP3 UIDLs, folders and
// subscriptions. Migrating that mbox again must give back the same messages with the same
// UIDs.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/export"
	"github.com/maildirmig/maildirmig/internal/mailtest"
	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
	"github.com/maildirmig/maildirmig/migrate"
)

// exportFetchFields are mailtest.FetchFields without guid: an mbox message's GUID is
// Dovecot's digest of its header, never the Maildir's base name, and Dovecot 2.3.19 fetching
// "size.physical guid body" from a fresh mbox index cuts the body of the first message at a
// From_ line in it ("Cached message size larger than expected"), in an mbox it saved itself
// as well.
const exportFetchFields = "uid flags date.received.unixtime size.virtual size.physical hdr body"

// fetchView is Dovecot.Fetch with exportFetchFields.
func fetchView(t *testing.T, d *mailtest.Dovecot, user, mailbox string) []mailtest.Record {
	t.Helper()
	out, err := d.Doveadm(t, user, "-f", "json", "fetch", exportFetchFields, "mailbox", mailbox, "all")
	if err != nil {
		t.Fatalf("%v\n%s", err, d.Log())
	}
	recs, err := mailtest.ParseFetchJSON(out)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// compareViews fails the test with every difference between what Dovecot shows of a mailbox
// (want, named wantName) and of the mbox written from it (got). Line ends of a header are
// compared only through the virtual size, and the physical size only where the header has
// no CR: from an mbox Dovecot hands out a header with bare LFs, from a Maildir as it is.
func compareViews(t *testing.T, wantName string, want []mailtest.Record, got []mailtest.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("the mbox written back shows %d messages, the %s %d", len(got), wantName, len(want))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		w, g := want[i], got[i]
		where := fmt.Sprintf("message %d (uid %d, subject %q)", i+1, w.UID, w.HeaderValue("Subject"))
		ws := fmt.Sprintf("uid=%d flags=%q received=%d vsize=%d", w.UID, w.FlagsWithout(`\Recent`), w.Received.Unix(), w.VSize)
		gs := fmt.Sprintf("uid=%d flags=%q received=%d vsize=%d", g.UID, g.FlagsWithout(`\Recent`), g.Received.Unix(), g.VSize)
		if gs != ws {
			t.Errorf("%s:\n written back %s\n %-12s %s", where, gs, wantName, ws)
		}
		if !strings.Contains(w.Header, "\r") && g.PSize != w.PSize {
			t.Errorf("%s: physical size %d, the %s's %d", where, g.PSize, wantName, w.PSize)
		}
		if crlf.Replace(g.Header) != crlf.Replace(w.Header) {
			t.Errorf("%s: header differs:\n written back %q\n %-12s %q", where, clip(g.Header), wantName, clip(w.Header))
		}
		if g.Body != w.Body {
			t.Errorf("%s: body differs (%d bytes, the %s's %d):\n written back %q\n %-12s %q", where, len(g.Body), wantName, len(w.Body), clip(g.Body), wantName, clip(w.Body))
		}
	}
}

// listedMessage is what a Maildir listing says of one message, its bytes as a digest.
type listedMessage struct {
	UID      uint32
	Flags    string
	Keywords []string // sorted: letters may differ between two Maildirs
	Date     int64
	Size     int64
	SHA256   string
}

// listMaildir lists the Maildir at md as Dovecot shows it.
func listMaildir(t *testing.T, md string) (validity, next uint32, msgs []listedMessage) {
	t.Helper()
	d, err := maildir.Open(md, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = l.Each(func(m *maildir.Listed) error {
		h := sha256.New()
		if _, err := io.Copy(h, m.File); err != nil {
			return err
		}
		kw := slices.Clone(m.Keywords)
		slices.Sort(kw)
		msgs = append(msgs, listedMessage{m.UID, m.Flags, kw, m.Date.Unix(), m.Size, hex.EncodeToString(h.Sum(nil))})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l.UIDValidity, l.NextUID, msgs
}

// exportMaildir writes the Maildir md back as the mbox dst, owned by u, proves it with
// export.Verify, and returns the mbox's bytes.
func exportMaildir(t *testing.T, u mailtest.User, md, dst string, loc *time.Location) ([]byte, error) {
	t.Helper()
	d, err := maildir.Open(md, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l, err := d.List()
	if err != nil {
		return nil, err
	}
	defer l.Close()
	opts := export.Options{Location: loc}
	var out bytes.Buffer
	res, err := export.Write(&out, l, opts)
	if err != nil {
		return nil, err
	}
	if _, err := export.Verify(bytes.NewReader(out.Bytes()), res, l, opts); err != nil {
		t.Fatalf("Verify of the export of %s: %v", md, err)
	}
	t.Logf("%s: %d messages, %d bytes, UIDVALIDITY %d, next UID %d", md, res.Messages, res.Bytes, res.UIDValidity, res.NextUID)
	u.WriteFile(t, dst, out.Bytes())
	return out.Bytes(), nil
}

// checkRoundTrip migrates the exported mbox src with maildirmig into a new Maildir and fails
// unless it holds the messages of the Maildir the mbox came from, listed before Dovecot
// looked at it: the same bytes, UIDs, flags, keywords and dates, UIDVALIDITY and next UID.
func checkRoundTrip(t *testing.T, u mailtest.User, src string, validity, next uint32, want []listedMessage) {
	t.Helper()
	again := filepath.Join(u.Home, "Maildir-again")
	if r := convert(t, u, src, again); r.code != 0 {
		t.Fatalf("maildirmig convert of the export: exit %d, stderr %q", r.code, r.stderr)
	}
	v, n, got := listMaildir(t, again)
	if v != validity || n != next {
		t.Errorf("migrated again: UIDVALIDITY %d, next UID %d; want %d, %d", v, n, validity, next)
	}
	if len(got) != len(want) {
		t.Errorf("migrated again: %d messages, want %d", len(got), len(want))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		if !reflectEqual(got[i], want[i]) {
			t.Errorf("migrated again: message %d:\n got %+v\nwant %+v", i+1, got[i], want[i])
		}
	}
}

func reflectEqual(a, b listedMessage) bool {
	return a.UID == b.UID && a.Flags == b.Flags && slices.Equal(a.Keywords, b.Keywords) && a.Date == b.Date && a.Size == b.Size && a.SHA256 == b.SHA256
}

// TestExportJudge migrates every corpus mbox with maildirmig, writes the Maildir back to an
// mbox with the export package, and asks Dovecot about both: the mbox must show what the
// Maildir shows, message for message, with the same UIDVALIDITY, UIDNEXT and POP3 UIDLs
// (pop3_uidl_format %08Xu%08Xv); Dovecot must find nothing to rewrite in it; and migrating it
// again must give back the same Maildir. Files maildirmig does not migrate are left out.
func TestExportJudge(t *testing.T) {
	corpora := mailtest.Corpora(t)
	mailtest.RequireDovecot(t)
	loc, err := time.LoadLocation(judgeTZ)
	if err != nil {
		t.Fatal(err)
	}
	dir := mailtest.Dir(t)
	files := corpusMboxes(t, corpora)
	// Every user is known before the daemon starts: its auth process may miss a change of
	// its passwd-file made within the second of the last one.
	users := make([]mailtest.User, len(files))
	var cfg mailtest.DovecotConfig
	for i := range files {
		u := mailtest.NewUser(t, dir, "x"+string(rune('a'+i/26))+string(rune('a'+i%26)))
		u.TZ = judgeTZ
		asMaildir, asMbox := u, u
		asMaildir.MailLocation = "maildir:~/Maildir"
		asMbox.Name += "-mbox"
		asMbox.MailLocation = "mbox:~/mail:INBOX=~/inbox"
		cfg.Users = append(cfg.Users, asMaildir, asMbox)
		users[i] = u
	}
	d := mailtest.StartDovecot(t, cfg)
	for i, rel := range files {
		u := users[i]
		asMaildir, asMbox := cfg.Users[2*i], cfg.Users[2*i+1]
		t.Run(rel, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(corpora, rel))
			if err != nil {
				t.Fatal(err)
			}
			u.Mkdir(t, filepath.Join(u.Home, "mail"))
			spool := filepath.Join(u.Home, "spool")
			u.WriteFile(t, spool, src)
			md := filepath.Join(u.Home, "Maildir")
			if r := convert(t, u, spool, md); r.code != 0 {
				t.Logf("not migrated (exit %d: %s): nothing to write back", r.code, strings.TrimSpace(r.stderr))
				return
			}
			validity, next, listed := listMaildir(t, md)
			inbox := filepath.Join(u.Home, "inbox")
			data, err := exportMaildir(t, u, md, inbox, loc)
			if err != nil {
				t.Fatalf("export: %v", err)
			}
			back := filepath.Join(u.Home, "back.mbox")
			u.WriteFile(t, back, data)

			want, got := fetchView(t, d, asMaildir.Name, "INBOX"), fetchView(t, d, asMbox.Name, "INBOX")
			compareViews(t, "Maildir", want, got)
			ms, mb := d.Status(t, asMaildir.Name, "INBOX"), d.Status(t, asMbox.Name, "INBOX")
			if mb.UIDValidity != ms.UIDValidity || mb.UIDNext != ms.UIDNext || mb.Messages != ms.Messages {
				t.Errorf("mbox: UIDVALIDITY %d, UIDNEXT %d, %d messages; the Maildir %d, %d, %d", mb.UIDValidity, mb.UIDNext, mb.Messages, ms.UIDValidity, ms.UIDNext, ms.Messages)
			}
			if pm, pb := d.POP3UIDL(t, asMaildir.Name), d.POP3UIDL(t, asMbox.Name); !slices.Equal(pm, pb) {
				t.Errorf("POP3 UIDLs of the mbox %q, of the Maildir %q", pb, pm)
			}
			// The first session takes \Recent from new messages and says so in their
			// Status ('O'), in place, in the room after X-Keywords; nothing else may change.
			if after, err := os.ReadFile(inbox); err != nil || !bytes.Equal(unrecent(after), unrecent(data)) {
				i := 0
				for i < len(after) && i < len(data) && after[i] == data[i] {
					i++
				}
				t.Errorf("Dovecot rewrote the mbox (err %v) from byte %d: it was not written as Dovecot writes one:\n %q\nnow %q",
					err, i, data[max(0, i-200):min(len(data), i+200)], after[max(0, i-200):min(len(after), i+200)])
			}
			checkRoundTrip(t, u, back, validity, next, listed)
			t.Logf("%d messages, UIDVALIDITY %d, UIDNEXT %d", len(want), ms.UIDValidity, ms.UIDNext)
		})
	}
}

var (
	statusLine   = regexp.MustCompile(`(?m)^Status: [^\n]*$`)
	keywordsLine = regexp.MustCompile(`(?m)^(X-Keywords:[^\n]*?) +$`)
)

// unrecent takes the 'O' out of every Status line and the room after every X-Keywords line
// of an mbox, where Dovecot records that it gave a message's \Recent to a session.
func unrecent(b []byte) []byte {
	b = statusLine.ReplaceAllFunc(b, func(l []byte) []byte { return bytes.ReplaceAll(l, []byte("O"), nil) })
	return keywordsLine.ReplaceAll(b, []byte("$1"))
}

// appendMessage APPENDs text to mailbox over c with flags, as a literal that needs no
// continuation (LITERAL+), and fails the test on NO or BAD.
func appendMessage(t *testing.T, c *mailtest.IMAPClient, mailbox, flags, text string) {
	t.Helper()
	cmd := fmt.Sprintf("APPEND %q (%s) {%d+}\r\n%s", mailbox, flags, len(text), text)
	if _, err := c.Command(cmd); err != nil {
		t.Fatalf("APPEND to %s: %v", mailbox, err)
	}
}

// command runs cmd over c and fails the test on NO or BAD.
func command(t *testing.T, c *mailtest.IMAPClient, cmd string) {
	t.Helper()
	if _, err := c.Command(cmd); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
}

// exportAccount writes the user's Maildir, its Maildir++ folders and its subscriptions back
// as the mbox account Dovecot reads with mbox:~/mail:INBOX=SPOOL: the INBOX into spool,
// each folder into ~/mail, the subscriptions into ~/mail/.subscriptions.
func exportAccount(t *testing.T, u mailtest.User, spool string, loc *time.Location) {
	t.Helper()
	md := filepath.Join(u.Home, "Maildir")
	data, err := exportMaildir(t, u, md, spool, loc)
	if err != nil {
		t.Fatalf("export of the INBOX: %v", err)
	}
	u.WriteFile(t, filepath.Join(u.Home, "inbox-back.mbox"), data)
	ents, err := os.ReadDir(md)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, e.Name())
		}
	}
	paths, err := migrate.MboxFolderPaths(dirs)
	if err != nil {
		t.Fatal(err)
	}
	for i, dir := range dirs {
		dst := filepath.Join(u.Home, "mail", paths[i])
		u.Mkdir(t, filepath.Dir(dst))
		if _, err := exportMaildir(t, u, filepath.Join(md, dir), dst, loc); err != nil {
			t.Fatalf("export of %s: %v", dir, err)
		}
	}
	subs, err := os.ReadFile(filepath.Join(md, "subscriptions"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	u.WriteFile(t, filepath.Join(u.Home, "mail", ".subscriptions"), migrate.MboxSubscriptions(subs))
}

// TestExportAccount builds an account on a Maildir over IMAP (messages with "From " and
// ">From " body lines, without a final line end, without Date and Message-ID; flags and
// keywords set and cleared; an expunge in the middle; a nested folder; subscriptions) and
// delivers three files Dovecot has not numbered yet, writes the account back to mbox, records
// what IMAP and POP3 clients see of the Maildir, and again from Dovecot serving the mbox: the
// two must be equal. Migrating the mbox INBOX again gives back the Maildir's messages and
// UIDs.
func TestExportAccount(t *testing.T) {
	mailtest.RequireDovecot(t)
	e := newContinuityEnv(t, "xpalice")
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")

	c := e.dovecot.IMAP(t, e.user.Name)
	// Not first: Dovecot 2.3.19's doveadm fetch of guid and body cuts the first message of
	// an mbox at a From_ line of its body (see exportFetchFields); the IMAP view is whole.
	appendMessage(t, c, "INBOX", `\Seen`, "From: a@example.org\r\nTo: b@example.org\r\nSubject: first\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nplain\r\n")
	appendMessage(t, c, "INBOX", ``, "From: a@example.org\r\nSubject: from lines\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <2@example.org>\r\n\r\n"+
		"From the desk of A\r\n>From here\r\n>>From there\r\nFrom x@example.org Mon Jan  1 00:00:00 2001\r\nend\r\n")
	appendMessage(t, c, "INBOX", `\Flagged`, "Subject: no final newline\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nlast line without an end")
	appendMessage(t, c, "INBOX", ``, "Subject: to be expunged\r\n\r\ngone\r\n")
	appendMessage(t, c, "INBOX", ``, "From: nobody@example.org\r\nSubject: neither Date nor Message-ID\r\n\r\nbody\r\n")
	appendMessage(t, c, "INBOX", `\Answered`, "Subject: flags and keywords\r\n\r\nbody\r\n")
	appendMessage(t, c, "INBOX", ``, "Subject: last\r\n\r\nbody\r\n")
	command(t, c, `SELECT INBOX`)
	command(t, c, `STORE 6 +FLAGS (\Seen \Flagged $Label1 Work Later)`)
	command(t, c, `STORE 6 -FLAGS (\Flagged Work)`)
	command(t, c, `STORE 4 +FLAGS (\Deleted)`)
	command(t, c, `EXPUNGE`)
	command(t, c, `STORE 1 +FLAGS (\Draft)`)
	command(t, c, `CREATE "Projects/2024"`)
	command(t, c, `CREATE "Entw&APw-rfe"`)
	appendMessage(t, c, "Projects/2024", `\Seen Work`, "Subject: in a nested folder\r\n\r\nfiled\r\n")
	appendMessage(t, c, "Entw&APw-rfe", ``, "Subject: draft\r\n\r\ndraft\r\n")
	command(t, c, `COPY 2 "Entw&APw-rfe"`)
	command(t, c, `SUBSCRIBE "Projects/2024"`)
	command(t, c, `SUBSCRIBE "INBOX"`)
	// A subscription whose folder is gone: LSUB still shows it.
	command(t, c, `CREATE "Gone"`)
	command(t, c, `SUBSCRIBE "Gone"`)
	command(t, c, `DELETE "Gone"`)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Delivered as an MDA delivers, and not yet numbered: the export gives them the UIDs
	// Dovecot gives them when it next looks (by the time in the name, then the
	// microseconds), which the recording below then shows.
	for _, f := range []struct {
		name  string
		mtime int64
	}{{"1700000001.M20P9.mx", 1700000001}, {"1700000001.M3P9.mx", 1700000002}, {"1699999999.P9Q1.mx", 1700000003}} {
		p := filepath.Join(e.user.Home, "Maildir", "new", f.name)
		e.user.WriteFile(t, p, []byte("Subject: delivered "+f.name+"\n\nFrom the MDA\n"))
		if err := os.Chtimes(p, time.Unix(f.mtime, 0), time.Unix(f.mtime, 0)); err != nil {
			t.Fatal(err)
		}
	}
	validity, next, listed := listMaildir(t, filepath.Join(e.user.Home, "Maildir"))
	spool := filepath.Join(e.spool, e.user.Name)
	// Dovecot's daemon reads From_ dates in this process's zone, which it inherits.
	exportAccount(t, e.user, spool, time.Local)

	before := e.record(t)
	if len(before.Mailboxes) < 3 || len(before.Subscribed) != 3 || len(before.UIDL) != 9 {
		t.Fatalf("the Maildir account shows %v mailboxes, %q subscribed, %d INBOX messages", before.Folders, before.Subscribed, len(before.UIDL))
	}
	e.dovecot.Stop(t)
	e.dovecot.SwitchMailLocation(t, "mbox:~/mail:INBOX="+spool)
	e.dovecot.Start(t)
	after := e.record(t)
	compare(t, before, after)
	t.Logf("%d folders, %d subscribed, %d INBOX UIDLs compared", len(before.Folders), len(before.Subscribed), len(before.UIDL))
	e.dovecot.Stop(t)
	checkRoundTrip(t, e.user, filepath.Join(e.user.Home, "inbox-back.mbox"), validity, next, listed)
}

// TestExportRefusesUnkeepable appends over IMAP a message that has no body and no line end at
// all: Dovecot keeps it in the Maildir as it is, but no mbox can (see mbox/writer.go), and
// the export refuses it, naming its file.
func TestExportRefusesUnkeepable(t *testing.T) {
	mailtest.RequireDovecot(t)
	e := newContinuityEnv(t, "xpbob")
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	c := e.dovecot.IMAP(t, e.user.Name)
	appendMessage(t, c, "INBOX", ``, "Subject: no line end at all")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(e.user.Home, "Maildir")
	_, err := exportMaildir(t, e.user, md, filepath.Join(e.user.Home, "inbox"), time.UTC)
	if !errors.Is(err, mbox.ErrNotExact) || !strings.Contains(err.Error(), md+"/") {
		t.Fatalf("export: %v, want mbox.ErrNotExact naming the file", err)
	}
	t.Log(err)
	if _, err := os.Stat(filepath.Join(e.user.Home, "inbox")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an mbox was written: %v", err)
	}
}

// TestExportKeepHeaders migrates the Dovecot-written corpus mboxes with --keep-headers, so
// that every Maildir file still holds X-UID, Status, X-Keywords and Content-Length, and writes
// them back with export.Options.DropMeta: Dovecot must show the mbox written back as it showed
// the mbox the migration read.
func TestExportKeepHeaders(t *testing.T) {
	corpora := mailtest.Corpora(t)
	mailtest.RequireDovecot(t)
	loc, err := time.LoadLocation(judgeTZ)
	if err != nil {
		t.Fatal(err)
	}
	dir := mailtest.Dir(t)
	d := mailtest.NewDovecot(t, mailtest.DovecotConfig{})
	for i, rel := range []string{"dovecot-written/dovecot-mboxcl2-inbox.mbox", "dovecot-written/dovecot-mboxcl2-Archive.mbox"} {
		t.Run(rel, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(corpora, rel))
			if err != nil {
				t.Fatal(err)
			}
			u := mailtest.NewUser(t, dir, fmt.Sprintf("xk%d", i))
			u.TZ = judgeTZ
			asSource, asBack := u, u
			asSource.MailLocation = "mbox:~/mail:INBOX=~/source"
			asBack.Name += "-back"
			asBack.MailLocation = "mbox:~/mail:INBOX=~/inbox"
			d.AddUser(t, asSource)
			d.AddUser(t, asBack)
			u.Mkdir(t, filepath.Join(u.Home, "mail"))
			u.WriteFile(t, filepath.Join(u.Home, "source"), src)
			spool := filepath.Join(u.Home, "spool")
			u.WriteFile(t, spool, src)
			md := filepath.Join(u.Home, "Maildir")
			if r := convert(t, u, spool, md, "--keep-headers"); r.code != 0 {
				t.Fatalf("maildirmig convert --keep-headers: exit %d, stderr %q", r.code, r.stderr)
			}
			if _, err := exportMaildir(t, u, md, filepath.Join(u.Home, "inbox"), loc); !errors.Is(err, mbox.ErrNotExact) {
				t.Fatalf("export without DropMeta: %v, want mbox.ErrNotExact", err)
			}
			md2, err := maildir.Open(md, false)
			if err != nil {
				t.Fatal(err)
			}
			defer md2.Close()
			l, err := md2.List()
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			opts := export.Options{Location: loc, DropMeta: true}
			var out bytes.Buffer
			res, err := export.Write(&out, l, opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := export.Verify(bytes.NewReader(out.Bytes()), res, l, opts); err != nil {
				t.Fatal(err)
			}
			u.WriteFile(t, filepath.Join(u.Home, "inbox"), out.Bytes())

			want, got := fetchView(t, d, asSource.Name, "INBOX"), fetchView(t, d, asBack.Name, "INBOX")
			if w, n := keepOwnLineEnds(t, want, src); n > 0 {
				want = w
			}
			compareViews(t, "source mbox", want, got)
			ss, sb := d.Status(t, asSource.Name, "INBOX"), d.Status(t, asBack.Name, "INBOX")
			if sb != ss {
				t.Errorf("written back: %+v; the source: %+v", sb, ss)
			}
			t.Logf("%d messages, UIDVALIDITY %d, UIDNEXT %d", len(want), ss.UIDValidity, ss.UIDNext)
		})
	}
}
