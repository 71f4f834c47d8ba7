package mbox_test

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/mbox"
)

// mail is a message for the writer tests: its bytes and what the internal headers must say.
type mail struct {
	text     string
	uid      uint32
	flags    mbox.Flags
	keywords []string
	date     time.Time
	sender   string
}

func (m mail) toMail() *mbox.Mail {
	return &mbox.Mail{Sender: m.sender, Date: m.date, UID: m.uid, Flags: m.flags, Keywords: m.keywords,
		Content: strings.NewReader(m.text), Size: int64(len(m.text))}
}

var newYork = mustZone("America/New_York")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// writeMbox writes msgs with opts and returns the mbox.
func writeMbox(t testing.TB, opts mbox.WriterOptions, msgs []mail) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := mbox.NewWriter(&out, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := w.Add(m.toMail()); err != nil {
			t.Fatalf("Add UID %d: %v", m.uid, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// checkReadBack reads data with Reader and fails unless it gives back msgs exactly: the
// bytes after removing the internal headers, UIDs, flags, keywords, dates, and the mailbox's
// UIDVALIDITY, last UID and keywords in the first message.
func checkReadBack(t testing.TB, data []byte, opts mbox.WriterOptions, msgs []mail) {
	t.Helper()
	got, _, err := readAll(data, mbox.Options{Location: opts.Location})
	if err != nil {
		t.Fatalf("reading back: %v\n%q", err, data)
	}
	if len(msgs) == 0 {
		if len(got) != 1 || !got[0].Pseudo || got[0].Meta.IMAPBase == nil ||
			got[0].Meta.IMAPBase.UIDValidity != opts.UIDValidity || got[0].Meta.IMAPBase.LastUID != opts.NextUID-1 {
			t.Fatalf("empty mailbox read back as %d messages, want one pseudo-message with X-IMAP %d %d:\n%q", len(got), opts.UIDValidity, opts.NextUID-1, data)
		}
		return
	}
	if len(got) != len(msgs) {
		t.Fatalf("%d messages read back, want %d:\n%q", len(got), len(msgs), data)
	}
	base := got[0].Meta.IMAPBase
	if base == nil || base.UIDValidity != opts.UIDValidity || base.LastUID != opts.NextUID-1 || !slices.Equal(base.Keywords, opts.Keywords) {
		t.Errorf("X-IMAPbase %+v, want %d %d %q", base, opts.UIDValidity, opts.NextUID-1, opts.Keywords)
	}
	for i, m := range msgs {
		g := got[i]
		text := string(mbox.StripMeta(g.Header)) + string(g.body)
		if text != m.text {
			t.Errorf("message %d: read back %q, want %q", i, text, m.text)
		}
		if g.Meta.UID != m.uid || g.Meta.Flags() != m.flags || !slices.Equal(g.Meta.Keywords, m.keywords) || !g.Date.Equal(m.date.Truncate(time.Second)) {
			t.Errorf("message %d: UID %d flags %b keywords %q date %v, want %d %b %q %v", i, g.Meta.UID, g.Meta.Flags(), g.Meta.Keywords, g.Date, m.uid, m.flags, m.keywords, m.date)
		}
		if g.UsedContentLength() != hasBody(m.text) || string(g.Separator()) != "\n" || g.Pseudo {
			t.Errorf("message %d: Content-Length used %v, separator %q, pseudo %v", i, g.UsedContentLength(), g.Separator(), g.Pseudo)
		}
		if i > 0 && g.Meta.IMAPBase != nil {
			t.Errorf("message %d has X-IMAPbase", i)
		}
	}
}

// hasBody reports whether text has an empty line after its header lines: the Writer's
// Content-Length then counts the bytes after it, and Reader uses it.
func hasBody(text string) bool {
	for _, line := range strings.SplitAfter(text, "\n") {
		if line == "\n" || line == "\r\n" {
			return true
		}
	}
	return false
}

// edgeMails are the messages that show how the Writer keeps bytes the mbox format would
// otherwise change: body lines that begin "From " or ">From ", a body that begins with a
// From_ line, no final line end, no body, an empty header or message, CRLF line ends.
func edgeMails() []mail {
	d := time.Date(2021, 3, 4, 5, 6, 7, 0, newYork)
	return []mail{
		{text: "Subject: from lines\nReturn-Path: <alice@example.org>\n\nFrom the desk of Alice\n>From here\n>>From there\nFrom bob@example.org Mon Jan  1 00:00:00 2001\n", uid: 3, flags: mbox.Seen | mbox.Old, keywords: []string{"Junk"}, date: d},
		{text: "Subject: no final newline\n\nlast line\nFrom x Mon Jan  1 00:00:00 2001\nend", uid: 4, flags: mbox.Answered | mbox.Flagged | mbox.Draft | mbox.Deleted | mbox.Seen | mbox.Old, keywords: []string{"$Label1", "Junk"}, date: d.Add(time.Hour)},
		{text: "Subject: body starts with a From_ line\n\nFrom x Mon Jan  1 00:00:00 2001\nbody\n", uid: 9, date: d},
		{text: "Subject: no body\n", uid: 10, flags: mbox.Old, date: d},
		{text: "Subject: empty body\n\n", uid: 11, flags: mbox.Old, date: d},
		{text: "", uid: 12, date: d},
		{text: "\n", uid: 13, date: d},
		{text: "\nbody without header\n", uid: 14, date: d},
		{text: "Subject: crlf\r\nX-A: b\r\n\r\nline1\r\nFrom crlf Mon Jan  1 00:00:00 2001\r\n\r\n", uid: 15, date: d, flags: mbox.Old},
		{text: "Subject: ends in a line end\n\nx\n\n\n", uid: 16, date: d},
		{text: "Subject: from lines in the header\nFrom nobody\nFrom : x\n\n", uid: 18, date: d},
		{text: "Subject: folded\n subject\n\tmore\n\nbody", uid: 20, date: d},
		{text: "Subject: nul \x00 and 8-bit \xff\n\n\x00\xfe", uid: 21, date: d},
		// 01:30 twice in New York, EDT then EST: the From_ line needs the offset.
		{text: "Subject: repeated hour, first\n\n", uid: 22, date: time.Date(2021, 11, 7, 5, 30, 0, 0, time.UTC)},
		{text: "Subject: repeated hour, second\n\n", uid: 23, date: time.Date(2021, 11, 7, 6, 30, 0, 0, time.UTC)},
	}
}

func edgeOptions() mbox.WriterOptions {
	return mbox.WriterOptions{Location: newYork, UIDValidity: 1234567890, NextUID: 30, Keywords: []string{"Junk", "$Label1", "unused"}}
}

// TestWriterReadBack writes edgeMails and reads them back with Reader.
func TestWriterReadBack(t *testing.T) {
	t.Parallel()
	opts, msgs := edgeOptions(), edgeMails()
	data := writeMbox(t, opts, msgs)
	checkReadBack(t, data, opts, msgs)
	// As Dovecot writes them: two spaces after the sender, a day of two digits, no zone.
	if !bytes.HasPrefix(data, []byte("From alice@example.org  Thu Mar 04 05:06:07 2021\nSubject: from lines\n")) {
		t.Errorf("first lines %q", data[:min(len(data), 80)])
	}
	if !bytes.Contains(data, []byte("\nX-IMAPbase: 1234567890 0000000029 Junk $Label1 unused\nX-UID: 3\nStatus: RO\nX-Keywords: Junk"+strings.Repeat(" ", 50)+"\nContent-Length: 93\n\n")) {
		t.Errorf("internal headers of the first message not as Dovecot writes them:\n%q", data[:300])
	}
	if !bytes.Contains(data, []byte("\nX-UID: 4\nStatus: RO\nX-Status: AFTD\n")) {
		t.Errorf("X-Status not in Dovecot's order")
	}
	if !bytes.HasSuffix(data, []byte("Subject: repeated hour, second\nX-UID: 23\nStatus: \nX-Keywords:"+strings.Repeat(" ", 50)+"\nContent-Length: 0\n\n\n")) {
		t.Errorf("the file does not end with the last message and one line end: %q", data[len(data)-10:])
	}
}

// TestWriterEmpty writes a mailbox without messages: the pseudo-message keeps its
// UIDVALIDITY and next UID, and the same mailbox gives the same bytes twice.
func TestWriterEmpty(t *testing.T) {
	t.Parallel()
	opts := mbox.WriterOptions{Location: time.UTC, UIDValidity: 1700000000, NextUID: 57, Keywords: []string{"Junk"}}
	data := writeMbox(t, opts, nil)
	checkReadBack(t, data, opts, nil)
	if again := writeMbox(t, opts, nil); !bytes.Equal(again, data) {
		t.Errorf("two writes differ:\n%q\n%q", data, again)
	}
	if !bytes.Contains(data, []byte("\nX-IMAP: 1700000000 0000000056 Junk\n")) {
		t.Errorf("no X-IMAP: %q", data)
	}
}

// TestWriterFromDate checks the From_ date: the wall time in the zone, with the offset only
// where the wall time names two instants (New York's repeated hour in November) or none.
func TestWriterFromDate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		date time.Time
		want string
	}{
		{time.Date(2021, 11, 7, 5, 30, 0, 0, time.UTC), "Sun Nov 07 01:30:00 2021 -0400"}, // 01:30 EDT, before the clocks go back
		{time.Date(2021, 11, 7, 6, 30, 0, 0, time.UTC), "Sun Nov 07 01:30:00 2021 -0500"}, // 01:30 EST, after
		{time.Date(2021, 11, 7, 7, 30, 0, 0, time.UTC), "Sun Nov 07 02:30:00 2021"},
		{time.Date(2021, 3, 14, 7, 30, 0, 0, time.UTC), "Sun Mar 14 03:30:00 2021"},
		{time.Date(2021, 7, 1, 16, 0, 9, 999, time.UTC), "Thu Jul 01 12:00:09 2021"},
		{time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), "Wed Dec 31 18:00:00 1969"},
		{time.Date(0, 6, 1, 0, 0, 0, 0, time.UTC), ""},
		{time.Date(10000, 1, 2, 0, 0, 0, 0, time.UTC), ""},
	}
	for _, c := range cases {
		opts := mbox.WriterOptions{Location: newYork, UIDValidity: 1, NextUID: 2}
		var out bytes.Buffer
		w, err := mbox.NewWriter(&out, opts)
		if err != nil {
			t.Fatal(err)
		}
		err = w.Add(mail{text: "Subject: x\n\n", uid: 1, date: c.date}.toMail())
		if c.want == "" {
			if !errors.Is(err, mbox.ErrNotExact) || out.Len() != 0 {
				t.Errorf("%v: error %v, %d bytes written; want ErrNotExact and nothing", c.date, err, out.Len())
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		line, _, _ := strings.Cut(out.String(), "\n")
		if want := "From MAILER-DAEMON  " + c.want; line != want {
			t.Errorf("%v: %q, want %q", c.date, line, want)
		}
		_, got, ok := mbox.ParseFromLine([]byte(line), newYork)
		if !ok || !got.Equal(c.date.Truncate(time.Second)) {
			t.Errorf("%q reads back as %v (ok %v), want %v", line, got, ok, c.date)
		}
	}
}

// TestWriterSender takes the From_ line's sender from Mail.Sender, else Return-Path, else
// MAILER-DAEMON.
func TestWriterSender(t *testing.T) {
	t.Parallel()
	cases := []struct{ sender, header, want string }{
		{"given@example.org", "Return-Path: <rp@example.org>\n", "given@example.org"},
		{"", "Return-Path: <rp@example.org>\nReturn-Path: <second@example.org>\n", "rp@example.org"},
		{"", "Return-Path: bare@example.org (comment)\n", "MAILER-DAEMON"},
		{"", "Return-Path: <>\n", "MAILER-DAEMON"},
		{"", "Return-Path:\n <folded@example.org>\n", "folded@example.org"},
		{"", "Return-Path: <\"quoted local\"@example.org>\n", "MAILER-DAEMON"},
		{"", "Subject: none\n", "MAILER-DAEMON"},
		{"with space", "", "MAILER-DAEMON"},
	}
	for _, c := range cases {
		data := writeMbox(t, mbox.WriterOptions{Location: time.UTC, UIDValidity: 1, NextUID: 2},
			[]mail{{text: c.header + "\nbody\n", uid: 1, sender: c.sender, date: time.Unix(0, 0)}})
		if want := "From " + c.want + "  Thu Jan 01 00:00:00 1970\n"; !bytes.HasPrefix(data, []byte(want)) {
			t.Errorf("sender %q, header %q: %q, want %q", c.sender, c.header, data[:bytes.IndexByte(data, '\n')+1], want)
		}
	}
}

// TestWriterRefuses gives Add the messages an mbox cannot keep exactly: each is refused with
// ErrNotExact, the reason, and nothing of it in the output; the next message is written as
// if the refused one had not been offered.
func TestWriterRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, text, says string }{
		{"From_ line first", "From bob@example.org Mon Jan  1 00:00:00 2001\nSubject: x\n\nbody\n", `"From bob@example.org Mon Jan  1 00:00:00`},
		{"From_ line later", "Subject: x\nFrom bob@example.org Mon Jan  1 00:00:00 2001\n\nbody\n", "is a From_ line"},
		{"From_ line to Dovecot only", "Subject: x\nFrom bob Xyz ??? 01 00:00 2001\n\nbody\n", "is a From_ line"},
		{"From_ line to Reader only", "Subject: x\nFrom bob Mon Jan  1 0:00:00 2001\n\nbody\n", "is a From_ line"},
		{"Status", "Subject: x\nStatus: RO\n\nbody\n", "holds Status"},
		{"X-UID lower case", "Subject: x\nx-uid: 5\n\nbody\n", "holds x-uid"},
		{"Content-Length", "Content-Length: 5\n\nbody\n", "holds Content-Length"},
		{"X-IMAPbase", "X-IMAPbase: 1 2\nSubject: x\n\nbody\n", "holds X-IMAPbase"},
		{"carriage return last", "Subject: x\n\nbody\r", "carriage return"},
		{"carriage return last, no body", "Subject: x\r", "carriage return"},
		{"no body, no final newline", "Subject: x", "no body"},
		{"huge header", "Subject: x\n" + strings.Repeat("X-Long: "+strings.Repeat("y", 1000)+"\n", 8400) + "\nbody\n", "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opts := mbox.WriterOptions{Location: time.UTC, UIDValidity: 7, NextUID: 10}
			var out bytes.Buffer
			w, err := mbox.NewWriter(&out, opts)
			if err != nil {
				t.Fatal(err)
			}
			date := time.Unix(1e9, 0)
			err = w.Add(mail{text: c.text, uid: 1, date: date}.toMail())
			if !errors.Is(err, mbox.ErrNotExact) || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "UID 1") {
				t.Fatalf("error %v, want ErrNotExact naming UID 1 and saying %q", err, c.says)
			}
			ok := mail{text: "Subject: next\n\nnext\n", uid: 2, date: date}
			if err := w.Add(ok.toMail()); err != nil {
				t.Fatal(err)
			}
			must(t, w.Close())
			checkReadBack(t, out.Bytes(), opts, []mail{ok})
		})
	}
}

// TestWriterDropMeta writes a message whose header holds internal headers (a Maildir
// migrated with --keep-headers) with DropMeta: they are left out, and the rest comes back.
func TestWriterDropMeta(t *testing.T) {
	t.Parallel()
	opts := mbox.WriterOptions{Location: time.UTC, UIDValidity: 7, NextUID: 10, DropMeta: true}
	text := "Subject: kept\nStatus: RO\nX-Keywords: old\n folded\nX-UID: 99\nX-Other: kept\nContent-Length: 999\n\nbody\n"
	data := writeMbox(t, opts, []mail{{text: text, uid: 5, date: time.Unix(1e9, 0)}})
	checkReadBack(t, data, opts, []mail{{text: "Subject: kept\nX-Other: kept\n\nbody\n", uid: 5, date: time.Unix(1e9, 0)}})
}

// TestWriterRules checks what Add and NewWriter refuse outright: UIDs out of order or past
// the next UID, a keyword the mailbox does not list, no UIDVALIDITY.
func TestWriterRules(t *testing.T) {
	t.Parallel()
	if _, err := mbox.NewWriter(io.Discard, mbox.WriterOptions{NextUID: 1}); err == nil {
		t.Error("NewWriter without UIDVALIDITY accepted")
	}
	if _, err := mbox.NewWriter(io.Discard, mbox.WriterOptions{UIDValidity: 1, NextUID: 2, Keywords: []string{"a b"}}); err == nil {
		t.Error("a keyword with a space accepted")
	}
	w, err := mbox.NewWriter(io.Discard, mbox.WriterOptions{UIDValidity: 1, NextUID: 5, Keywords: []string{"k"}})
	if err != nil {
		t.Fatal(err)
	}
	must(t, w.Add(mail{text: "a\n\n", uid: 2}.toMail()))
	for _, m := range []mail{{text: "a\n\n", uid: 2}, {text: "a\n\n", uid: 1}, {text: "a\n\n", uid: 5}, {text: "a\n\n", uid: 3, keywords: []string{"other"}}} {
		if err := w.Add(m.toMail()); err == nil {
			t.Errorf("UID %d keywords %q accepted", m.uid, m.keywords)
		}
	}
	must(t, w.Close())
}

// TestWriterReadError fails a read in the middle of a message, as a disk error would: Add
// says so, and every later call fails, since the output is incomplete.
func TestWriterReadError(t *testing.T) {
	t.Parallel()
	w, err := mbox.NewWriter(io.Discard, mbox.WriterOptions{UIDValidity: 1, NextUID: 5})
	if err != nil {
		t.Fatal(err)
	}
	// Longer than the Writer's buffer, so that the header is read before the error.
	text := "Subject: x\n\n" + strings.Repeat("body\n", 40000)
	m := mail{text: text, uid: 1}.toMail()
	m.Content = failingReaderAt{data: []byte(text), at: 150000}
	if err := w.Add(m); !errors.Is(err, errDisk) {
		t.Fatalf("Add: %v, want the read error", err)
	}
	if err := w.Add(mail{text: "ok\n\n", uid: 2}.toMail()); err == nil {
		t.Error("Add after a failure accepted")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failure accepted")
	}
}

var errDisk = errors.New("input/output error")

// failingReaderAt fails every read of more than one byte that covers the offset at.
type failingReaderAt struct {
	data []byte
	at   int64
}

func (f failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > 1 && off <= f.at && f.at < off+int64(len(p)) {
		return 0, errDisk
	}
	return bytes.NewReader(f.data).ReadAt(p, off)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
