package mbox_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/mailtest"
	"github.com/maildirmig/maildirmig/mbox"
)

// dovecotMbox has a fresh Dovecot read data as a user's mbox INBOX, with From_ dates in New
// York time, and returns the user's name with the Dovecot.
func dovecotMbox(t *testing.T, data []byte) (*mailtest.Dovecot, string) {
	t.Helper()
	mailtest.RequireDovecot(t)
	dir := mailtest.Dir(t)
	u := mailtest.NewUser(t, dir, "mboxw")
	u.TZ = "America/New_York"
	u.MailLocation = "mbox:~/mail:INBOX=~/inbox"
	u.Mkdir(t, filepath.Join(u.Home, "mail"))
	u.WriteFile(t, filepath.Join(u.Home, "inbox"), data)
	d := mailtest.NewDovecot(t, mailtest.DovecotConfig{Users: []mailtest.User{u}})
	return d, u.Name
}

// fetchFields are mailtest.FetchFields without guid: an mbox has no GUIDs of its own (Dovecot
// makes them from a header digest), and Dovecot 2.3.19 fetching "size.physical guid body"
// on a fresh index cuts a body before its last line when that line is a From_ line ("Cached
// message size larger than expected"), from an mbox it saved itself as well.
const fetchFields = "uid flags date.received.unixtime size.virtual size.physical hdr body"

// fetch is Dovecot.Fetch with fetchFields.
func fetch(t *testing.T, d *mailtest.Dovecot, user, mailbox string) []mailtest.Record {
	t.Helper()
	out, err := d.Doveadm(t, user, "-f", "json", "fetch", fetchFields, "mailbox", mailbox, "all")
	if err != nil {
		t.Fatalf("%v\n%s", err, d.Log())
	}
	recs, err := mailtest.ParseFetchJSON(out)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// dovecotView is what Dovecot must show for a message the Writer wrote.
func dovecotView(m mail) string {
	var flags []string
	for _, f := range []struct {
		flag mbox.Flags
		name string
	}{{mbox.Seen, `\Seen`}, {mbox.Answered, `\Answered`}, {mbox.Flagged, `\Flagged`}, {mbox.Deleted, `\Deleted`}, {mbox.Draft, `\Draft`}} {
		if m.flags&f.flag != 0 {
			flags = append(flags, f.name)
		}
	}
	flags = append(flags, m.keywords...)
	slices.Sort(flags)
	hdr, body := m.text, ""
	for i := 0; i < len(m.text); {
		j := strings.IndexByte(m.text[i:], '\n')
		if j < 0 {
			break
		}
		if line := m.text[i : i+j+1]; line == "\n" || line == "\r\n" {
			hdr, body = m.text[:i+j+1], m.text[i+j+1:]
			break
		}
		i += j + 1
	}
	vsize := len(m.text) + strings.Count(m.text, "\n") - strings.Count(m.text, "\r\n")
	// Dovecot hands out an mbox header with bare LFs (its header filter drops the CRs).
	return fmt.Sprintf("uid=%d flags=%q received=%d vsize=%d hdr=%q body=%q", m.uid, strings.Join(flags, " "), m.date.Unix(), vsize,
		jsonText(strings.ReplaceAll(hdr, "\r\n", "\n")), jsonText(body))
}

// jsonText is s as it comes out of doveadm's JSON through encoding/json: every byte that is
// not UTF-8 becomes U+FFFD.
func jsonText(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// TestDovecotReadsWriter has Dovecot read edgeMails as the Writer wrote them: every message
// with its UID, flags, keywords, INTERNALDATE, size, header and body, and the mailbox's
// UIDVALIDITY and UIDNEXT.
func TestDovecotReadsWriter(t *testing.T) {
	opts, msgs := edgeOptions(), edgeMails()
	d, user := dovecotMbox(t, writeMbox(t, opts, msgs))
	recs := fetch(t, d, user, "INBOX")
	if len(recs) != len(msgs) {
		t.Fatalf("Dovecot shows %d messages, want %d\n%s", len(recs), len(msgs), d.Log())
	}
	for i, r := range recs {
		got := fmt.Sprintf("uid=%d flags=%q received=%d vsize=%d hdr=%q body=%q", r.UID, strings.Join(r.FlagsWithout(`\Recent`), " "), r.Received.Unix(), r.VSize, r.Header, r.Body)
		if want := dovecotView(msgs[i]); got != want {
			t.Errorf("message %d:\n dovecot %s\n    want %s", i, got, want)
		}
	}
	st := d.Status(t, user, "INBOX")
	if st.UIDValidity != opts.UIDValidity || st.UIDNext != opts.NextUID {
		t.Errorf("UIDVALIDITY %d, UIDNEXT %d; want %d, %d", st.UIDValidity, st.UIDNext, opts.UIDValidity, opts.NextUID)
	}
}

// TestDovecotReadsEmptyWriter has Dovecot read a mailbox the Writer wrote without messages:
// none shows, and the pseudo-message carries UIDVALIDITY and UIDNEXT.
func TestDovecotReadsEmptyWriter(t *testing.T) {
	opts := mbox.WriterOptions{Location: newYork, UIDValidity: 1600000000, NextUID: 42, Keywords: []string{"Junk"}}
	d, user := dovecotMbox(t, writeMbox(t, opts, nil))
	st := d.Status(t, user, "INBOX")
	if st.Messages != 0 || st.UIDValidity != opts.UIDValidity || st.UIDNext != opts.NextUID {
		t.Errorf("Dovecot shows %d messages, UIDVALIDITY %d, UIDNEXT %d; want 0, %d, %d\n%s", st.Messages, st.UIDValidity, st.UIDNext, opts.UIDValidity, opts.NextUID, d.Log())
	}
}

// TestDovecotLosesCarriageReturnEnd shows why Add refuses a message whose last byte is a
// carriage return: written as the Writer would write any message, Dovecot 2.3 does not show
// it, or the message after it, as they are.
func TestDovecotLosesCarriageReturnEnd(t *testing.T) {
	msgs := []mail{
		{text: "Subject: cr\n\nabc\r", uid: 1, date: time.Unix(1e9, 0)},
		{text: "Subject: next\n\nnext\n", uid: 2, date: time.Unix(1e9, 0)},
	}
	var data []byte
	for i, m := range msgs {
		hdr, body, _ := strings.Cut(m.text, "\n\n")
		base := ""
		if i == 0 {
			base = "X-IMAPbase: 5 0000000002\n"
		}
		data = fmt.Appendf(data, "From MAILER-DAEMON  %s\n%s\n%sX-UID: %d\nStatus: O\nContent-Length: %d\n\n%s\n",
			time.Unix(1e9, 0).In(newYork).Format("Mon Jan 02 15:04:05 2006"), hdr, base, m.uid, len(body), body)
	}
	d, user := dovecotMbox(t, data)
	recs, err := d.TryFetch(t, user, "INBOX")
	if err == nil && len(recs) == 2 && dovecotView(msgs[0]) == fmt.Sprintf("uid=%d flags=%q received=%d vsize=%d hdr=%q body=%q",
		recs[0].UID, "", recs[0].Received.Unix(), recs[0].VSize, recs[0].Header, recs[0].Body) && recs[1].Body == "next\n" {
		t.Fatalf("Dovecot now shows a message ending in a carriage return as it is: the Writer may write one")
	}
	t.Logf("Dovecot: %d records, error %v", len(recs), err)
}

// TestDovecotFromLines has Dovecot read, for each line, an mbox whose one message holds the
// line among its header lines, without Content-Length: Dovecot starts a second message there
// exactly when DovecotFromLine says the line is a From_ line, which Add then refuses.
func TestDovecotFromLines(t *testing.T) {
	lines := []string{
		"From bob@example.org Mon Jan  1 00:00:00 2001",
		"From nobody",
		"From : x",
		"From not mangled but this line should have been escaped",
		"From x Xyz Jan 01 00:00:00 2001", // the weekday is not checked
		"From x Mon ??? 01 00:00:00 2001", // nor a month of "???"
		"From x Thu, 9 Nov 2002 22:33:52", // the other form
		"From x Mon Jan  1 00:00 2001",    // no seconds
		"From x Mon Jan  1 0:00:00 2001",  // a one-digit hour: Reader's, not Dovecot's
		"From x Mon Jan  1 00:00:00 MET 2001",
		"From x Mon Jan  1 00:00:00 +0100 2001",
		"From \"quoted sender\"@x Mon Jan  1 00:00:00 2001",
		"From x  Mon Jan 01 00:00:00 2001 remote from y",
		"From Mon Jan  1 00:00:00 2001",    // no sender: "Mon" is taken for it
		"From x Mon\nJan  1 00:00:00 2001", // the date on the next line
		"From x Mon Jan  1 00:00:00 01",
	}
	for _, line := range lines {
		t.Run(line, func(t *testing.T) {
			data := "From MAILER-DAEMON  Thu Nov 09 22:33:52 2001\nSubject: a\n" + line + "\nX-After: 1\n\nbody\n"
			d, user := dovecotMbox(t, []byte(data))
			n := d.Status(t, user, "INBOX").Messages
			at := strings.Index(data, line)
			got := mbox.DovecotFromLine([]byte(data[at:]))
			t.Logf("DovecotFromLine %v, Dovecot shows %d messages", got, n)
			if got != (n == 2) {
				t.Errorf("DovecotFromLine says %v; Dovecot shows %d messages", got, n)
			}
		})
	}
}
