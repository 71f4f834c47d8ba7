package export

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
)

var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic(err)
	}
	return loc
}()

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testMessage is a message to put into a test Maildir with maildir.Writer.
type testMessage struct {
	text     string
	flags    string
	keywords []string
	uid      uint32
	new      bool
	date     time.Time
}

// testMessages cover what an export must carry: flags and keywords, new/ and cur/, UIDs with
// gaps, body lines that begin "From " or ">From ", a body that begins with a From_ line, no
// final line end, no body, CRLF, an empty message.
func testMessages() []testMessage {
	d := time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)
	return []testMessage{
		{text: "Return-Path: <a@example.org>\nSubject: one\n\nFrom the desk\n>From here\n", flags: "S", keywords: []string{"Junk"}, uid: 3, date: d},
		{text: "Subject: new\n\nunread\n", uid: 5, new: true, date: d.Add(time.Hour)},
		{text: "Subject: all flags\n\nFrom x Mon Jan  1 00:00:00 2001\nno final newline", flags: "DFRST", keywords: []string{"$Label1", "Junk"}, uid: 6, date: d.Add(2 * time.Hour)},
		{text: "Subject: no body\n", uid: 9, date: d},
		{text: "Subject: crlf\r\n\r\nline\r\n", flags: "R", uid: 10, date: d},
		{text: "", uid: 11, date: d},
	}
}

// buildMaildir writes msgs into a new Maildir under dir with maildir.Writer, with the
// UIDVALIDITY 4242 and the next UID 20, and returns it open.
func buildMaildir(t testing.TB, dir string, msgs []testMessage) *maildir.Dir {
	t.Helper()
	d, err := maildir.Open(filepath.Join(dir, "Maildir"), true)
	must(t, err)
	t.Cleanup(func() { d.Close() })
	w, err := maildir.NewWriter(d, maildir.Options{Host: "test", Fsync: maildir.FsyncNone})
	must(t, err)
	w.SetUIDBase(4242, 19)
	for i, m := range msgs {
		if _, err := w.Add(&maildir.Message{Date: m.date, Flags: m.flags, Keywords: m.keywords, New: m.new, UID: m.uid,
			Position: int64(i), Content: strings.NewReader(m.text)}); err != nil {
			t.Fatal(err)
		}
	}
	must(t, w.Commit())
	must(t, w.Close())
	return d
}

func list(t testing.TB, d *maildir.Dir) *maildir.Listing {
	t.Helper()
	l, err := d.List()
	must(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// verify runs Verify on data with res, what Write returned when it wrote the mbox data was
// made from.
func verify(data []byte, res Result, l *maildir.Listing, opts Options) error {
	res.Bytes = int64(len(data))
	sum, err := Verify(bytes.NewReader(data), res, l, opts)
	if err == nil && sum != sha256.Sum256(data) {
		err = fmt.Errorf("Verify returned the sum %x of %d bytes, not theirs", sum, len(data))
	}
	return err
}

// export writes l and returns the mbox, and what Write returned.
func export(t testing.TB, l *maildir.Listing, opts Options) ([]byte, Result) {
	t.Helper()
	var out bytes.Buffer
	res, err := Write(&out, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != int64(out.Len()) || res.Messages != l.Messages || res.NextUID != l.NextUID {
		t.Errorf("result %+v for %d bytes, %d messages, next UID %d", res, out.Len(), l.Messages, l.NextUID)
	}
	return out.Bytes(), res
}

// TestWriteVerify exports testMessages and proves the mbox with Verify; then reads it back
// here too, independently of Verify, to check what Verify claims.
func TestWriteVerify(t *testing.T) {
	t.Parallel()
	msgs := testMessages()
	l := list(t, buildMaildir(t, t.TempDir(), msgs))
	opts := Options{Location: newYork}
	data, res := export(t, l, opts)
	if err := verify(data, res, l, opts); err != nil {
		t.Fatalf("Verify: %v\n%s", err, data)
	}
	r := mbox.NewReader(bytes.NewReader(data), int64(len(data)), mbox.Options{Location: newYork})
	for i, want := range msgs {
		m, err := r.Next()
		must(t, err)
		body, err := io.ReadAll(m.Body)
		must(t, err)
		if got := string(mbox.StripMeta(m.Header)) + string(body); got != want.text {
			t.Errorf("message %d: %q, want %q", i, got, want.text)
		}
		wantFlags := mbox.Flags(0)
		if !want.new {
			wantFlags |= mbox.Old
		}
		for _, c := range want.flags {
			wantFlags |= map[rune]mbox.Flags{'D': mbox.Draft, 'F': mbox.Flagged, 'R': mbox.Answered, 'S': mbox.Seen, 'T': mbox.Deleted}[c]
		}
		// Keywords come in the order of their Maildir letters: the order of first use.
		if m.Meta.UID != want.uid || m.Meta.Flags() != wantFlags || !sameSet(m.Meta.Keywords, want.keywords) || !m.Date.Equal(want.date) {
			t.Errorf("message %d: UID %d flags %b keywords %q date %v; want %d %b %q %v", i, m.Meta.UID, m.Meta.Flags(), m.Meta.Keywords, m.Date, want.uid, wantFlags, want.keywords, want.date)
		}
		if i == 0 && (m.Meta.IMAPBase == nil || m.Meta.IMAPBase.UIDValidity != 4242 || m.Meta.IMAPBase.LastUID != 19) {
			t.Errorf("X-IMAPbase %+v", m.Meta.IMAPBase)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last message: %v", err)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// shorterContentLength takes one from the Content-Length of the message "all flags", whose
// body begins with a From_ line: Reader no longer trusts it, and splits the message there.
// (One wrong by one where no From_ line follows changes nothing: Reader and Dovecot both
// find the same end without it.)
func shorterContentLength(b []byte) []byte {
	at := bytes.Index(b, []byte("Subject: all flags\n"))
	i := at + bytes.Index(b[at:], []byte("\nContent-Length: ")) + len("\nContent-Length: ")
	j := i + bytes.IndexByte(b[i:], '\n')
	n, err := strconv.Atoi(string(b[i:j]))
	if err != nil {
		panic(err)
	}
	return slices.Concat(b[:i], []byte(strconv.Itoa(n-1)), b[j:])
}

// corruptions change an exported mbox the way a bug or a bad disk would: each must fail
// Verify.
var corruptions = []struct {
	name string
	edit func([]byte) []byte
}{
	{"body byte", replace("unread", "unreaD")},
	{"header byte", replace("Subject: one", "Subject: One")},
	{"X-UID", replace("X-UID: 5\n", "X-UID: 4\n")},
	{"Status", replace("X-UID: 5\nStatus: \n", "X-UID: 5\nStatus: O\n")},
	{"X-Status", replace("X-Status: AFTD", "X-Status: AFT")},
	{"keyword", replace("X-Keywords: Junk ", "X-Keywords: junk ")},
	{"date", replace("03:08:09 2022", "03:08:10 2022")},
	{"UIDVALIDITY", replace("X-IMAPbase: 4242 ", "X-IMAPbase: 4243 ")},
	{"next UID", replace(" 0000000019", " 0000000018")},
	{"Content-Length", shorterContentLength},
	{"last message cut", func(b []byte) []byte { return b[:bytes.LastIndex(b, []byte("\nFrom "))+1] }},
	{"message added", appendText("From x  Mon Jan 03 00:00:00 2022\nSubject: extra\n\nx\n\n")},
	{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
	{"empty", func(b []byte) []byte { return nil }},
}

// appendText returns an edit that appends text.
func appendText(text string) func([]byte) []byte {
	return func(b []byte) []byte { return append(b, text...) }
}

// replace returns an edit that replaces the first old with new.
func replace(old, new string) func([]byte) []byte {
	return func(b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
}

// TestVerifyFails corrupts an exported mbox in every way of corruptions: Verify must say the
// mbox differs, and where.
func TestVerifyFails(t *testing.T) {
	t.Parallel()
	l := list(t, buildMaildir(t, t.TempDir(), testMessages()))
	opts := Options{Location: newYork}
	data, res := export(t, l, opts)
	for _, c := range corruptions {
		bad := c.edit(bytes.Clone(data))
		if bytes.Equal(bad, data) {
			t.Errorf("%s: the corruption changed nothing", c.name)
			continue
		}
		err := verify(bad, res, l, opts)
		if !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: Verify says %v, want ErrMismatch", c.name, err)
			continue
		}
		t.Logf("%s: %v", c.name, err)
	}
	// Read in another zone, every From_ date is off.
	if err := verify(data, res, l, Options{Location: time.UTC}); !errors.Is(err, ErrMismatch) {
		t.Errorf("another zone: %v", err)
	}
}

// TestVerifyMaildirChanged changes the Maildir after the export: Verify must not vouch for
// an mbox the Maildir no longer matches, nor for one Write read other bytes into.
func TestVerifyMaildirChanged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := list(t, buildMaildir(t, dir, testMessages()))
	opts := Options{Location: newYork}
	data, res := export(t, l, opts)
	must(t, verify(data, res, l, opts))
	names, err := filepath.Glob(filepath.Join(dir, "Maildir", "cur", "*"))
	must(t, err)
	// A flag set by a client renames the file.
	must(t, os.Rename(names[0], names[0]+"F"))
	if err := verify(data, res, l, opts); !errors.Is(err, maildir.ErrChanged) {
		t.Errorf("after a rename: %v, want maildir.ErrChanged", err)
	}
	must(t, os.Rename(names[0]+"F", names[0]))
	// A message delivered.
	added := filepath.Join(dir, "Maildir", "new", "1700000000.M1P1.host")
	must(t, os.WriteFile(added, []byte("Subject: late\n\n"), 0o600))
	if err := verify(data, res, l, opts); !errors.Is(err, maildir.ErrChanged) {
		t.Errorf("after a delivery: %v, want maildir.ErrChanged", err)
	}
	must(t, os.Remove(added))
	// A message moved from new/ to cur/ under the same name, as a client's first look does.
	fresh, err := filepath.Glob(filepath.Join(dir, "Maildir", "new", "*"))
	must(t, err)
	moved := filepath.Join(dir, "Maildir", "cur", filepath.Base(fresh[0]))
	must(t, os.Rename(fresh[0], moved))
	if err := verify(data, res, l, opts); !errors.Is(err, maildir.ErrChanged) {
		t.Errorf("after a move from new/ to cur/: %v, want maildir.ErrChanged", err)
	}
	must(t, os.Rename(moved, fresh[0]))
	must(t, verify(data, res, l, opts))
	// A message expunged.
	must(t, os.Remove(names[1]))
	if err := verify(data, res, l, opts); !errors.Is(err, maildir.ErrChanged) {
		t.Errorf("after an expunge: %v, want maildir.ErrChanged", err)
	}
}

// TestVerifyOtherBytes gives Verify what Write read of another Maildir with the same names
// and metadata but other bytes: the sums differ, so it fails.
func TestVerifyOtherBytes(t *testing.T) {
	t.Parallel()
	msgs := testMessages()
	l := list(t, buildMaildir(t, t.TempDir(), msgs))
	opts := Options{Location: newYork}
	data, res := export(t, l, opts)
	msgs[1].text = "Subject: new\n\nunreaD\n"
	_, other := export(t, list(t, buildMaildir(t, t.TempDir(), msgs)), opts)
	if err := verify(data, other, l, opts); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "UID 5") {
		t.Errorf("Verify with another Maildir's sums: %v, want ErrMismatch naming UID 5", err)
	}
	res.written = res.written[1:]
	if err := verify(data, res, l, opts); !errors.Is(err, ErrMismatch) {
		t.Errorf("Verify with a message missing from Write's: %v, want ErrMismatch", err)
	}
}

// TestWriteKeepHeaders exports a Maildir migrated with --keep-headers, whose files still hold
// Status, X-UID and Content-Length: refused by default, naming the file; with DropMeta written
// without them, and proved.
func TestWriteKeepHeaders(t *testing.T) {
	t.Parallel()
	msgs := []testMessage{{text: "Subject: kept\nStatus: RO\nX-UID: 3\nContent-Length: 5\n\nbody\n", flags: "S", uid: 3, date: time.Unix(1e9, 0)}}
	l := list(t, buildMaildir(t, t.TempDir(), msgs))
	_, err := Write(io.Discard, l, Options{})
	if !errors.Is(err, mbox.ErrNotExact) || !strings.Contains(err.Error(), "Maildir/cur/") || !strings.Contains(err.Error(), "Status") {
		t.Fatalf("Write: %v, want mbox.ErrNotExact naming the file and Status", err)
	}
	opts := Options{DropMeta: true, Location: time.UTC}
	data, res := export(t, l, opts)
	if err := verify(data, res, l, opts); err != nil {
		t.Fatal(err)
	}
	// The stored message, what a later pass knows it by, is the file without its own
	// internal headers; the mbox has one set, the writer's.
	var sums [][32]byte
	opts.Verified = func(_ *maildir.Listed, sum [32]byte) { sums = append(sums, sum) }
	must(t, verify(data, res, l, opts))
	if want := sha256.Sum256([]byte("Subject: kept\n\nbody\n")); len(sums) != 1 || sums[0] != want {
		t.Errorf("Verified the sums %x, want the stripped message's %x", sums, want)
	}
	if n := bytes.Count(data, []byte("\nX-UID: ")); n != 1 {
		t.Errorf("%d X-UID headers in %q", n, data)
	}
}

// TestWriteEmpty exports Maildirs without messages: with a dovecot-uidlist, the mbox keeps
// its UIDVALIDITY and next UID; without one, it is empty.
func TestWriteEmpty(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := buildMaildir(t, dir, []testMessage{{text: "x\n\n", uid: 7, date: time.Unix(1e9, 0)}})
	names, err := filepath.Glob(filepath.Join(dir, "Maildir", "cur", "*"))
	must(t, err)
	must(t, os.Remove(names[0]))
	l := list(t, d)
	data, res := export(t, l, Options{})
	must(t, verify(data, res, l, Options{}))
	if !bytes.Contains(data, []byte("X-IMAP: 4242 0000000019\n")) {
		t.Errorf("no X-IMAP in %q", data)
	}
	if err := verify(nil, res, l, Options{}); !errors.Is(err, ErrMismatch) {
		t.Errorf("an empty file for it: %v", err)
	}

	fresh, err := maildir.Open(filepath.Join(t.TempDir(), "Maildir"), true)
	must(t, err)
	defer fresh.Close()
	lf := list(t, fresh)
	data, res = export(t, lf, Options{})
	if len(data) != 0 {
		t.Errorf("a Maildir Dovecot never opened gave %q", data)
	}
	must(t, verify(nil, res, lf, Options{}))
}

// TestWriteWithoutUIDList exports a Maildir that has messages but no dovecot-uidlist: it
// needs a UIDVALIDITY, and numbers the messages as Dovecot would.
func TestWriteWithoutUIDList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := buildMaildir(t, dir, []testMessage{{text: "a\n\n", date: time.Unix(2e9, 0)}, {text: "b\n\n", date: time.Unix(1e9, 0)}})
	must(t, os.Remove(filepath.Join(dir, "Maildir", "dovecot-uidlist")))
	l := list(t, d)
	if _, err := Write(io.Discard, l, Options{}); err == nil || !strings.Contains(err.Error(), "no UIDVALIDITY") {
		t.Fatalf("Write without a UIDVALIDITY: %v", err)
	}
	opts := Options{UIDValidity: 77}
	data, res := export(t, l, opts)
	must(t, verify(data, res, l, opts))
	// Dovecot numbers by the time in the name: b (1e9) before a (2e9).
	if i, j := bytes.Index(data, []byte("\nb\n")), bytes.Index(data, []byte("\na\n")); i < 0 || j < 0 || i > j {
		t.Errorf("order: %q", data)
	}
}

// TestVerifyWrongVSize exports a file whose W= Dovecot would trust though it is wrong:
// Write refuses it as a Maildir Dovecot does not show as it is.
func TestWriteWrongVSize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := buildMaildir(t, dir, []testMessage{{text: "Subject: w\n\nbody\n", uid: 3, date: time.Unix(1e9, 0)}})
	names, err := filepath.Glob(filepath.Join(dir, "Maildir", "cur", "*"))
	must(t, err)
	bad := strings.Replace(names[0], ",W=", ",W=9", 1)
	must(t, os.Rename(names[0], bad))
	// The uidlist lists the base name; rename it there too.
	ul := filepath.Join(dir, "Maildir", "dovecot-uidlist")
	b, err := os.ReadFile(ul)
	must(t, err)
	must(t, os.WriteFile(ul, bytes.Replace(b, []byte(",W="), []byte(",W=9"), 1), 0o600))
	l := list(t, d)
	if _, err := Write(io.Discard, l, Options{}); !errors.Is(err, maildir.ErrNotExact) || !strings.Contains(err.Error(), "RFC822.SIZE") || !strings.Contains(err.Error(), "Maildir/cur/") {
		t.Errorf("Write: %v, want maildir.ErrNotExact about RFC822.SIZE naming the file", err)
	}
}

// fullDisk accepts n bytes, then fails every write with ENOSPC, as a full file system does.
type fullDisk struct{ n int }

func (f *fullDisk) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return len(p), nil
	}
	k := f.n
	f.n = 0
	return k, unix.ENOSPC
}

// TestWriteFullDisk writes to a disk that fills up early, in the middle and at the very end:
// Write must say so (the error matches ENOSPC), never report an mbox written.
func TestWriteFullDisk(t *testing.T) {
	t.Parallel()
	l := list(t, buildMaildir(t, t.TempDir(), testMessages()))
	whole, _ := export(t, l, Options{})
	for _, room := range []int{0, 100, len(whole) / 2, len(whole) - 1} {
		res, err := Write(&fullDisk{n: room}, l, Options{})
		if !errors.Is(err, unix.ENOSPC) {
			t.Errorf("room for %d of %d bytes: Write said %v (result %+v), want ENOSPC", room, len(whole), err, res)
		}
	}
}
