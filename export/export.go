// Package export writes one Maildir back into one mbox that Dovecot shows exactly as it showed
// the Maildir, and proves the result.
//
// Write takes the messages of a maildir.Listing (the UIDs, flags, keywords, INTERNALDATEs and
// bytes Dovecot shows for the Maildir) and hands them to an mbox.Writer in UID order: the
// mailbox's UIDVALIDITY, next UID and keywords go into X-IMAPbase, each message's UID into
// X-UID, its flags into Status and X-Status (Status 'O' for a file in cur/, which Dovecot
// does not show as \Recent), its keywords into X-Keywords, its mtime onto the From_ line.
// What Dovecot could not show exactly from an mbox is refused, by maildir.List
// (maildir.ErrNotExact) or by the mbox.Writer (mbox.ErrNotExact), with the file named.
//
// Write hashes each message's bytes as it copies them. Verify reads the mbox back with
// maildirmig's own reader (mbox.Reader, which trusts Content-Length only where it ends at a
// From_ line) and compares it with the Listing and with what Write read, message by message:
// the bytes (SHA-256 of the stored message, without its internal headers, against the file's
// as Write read it), UID, flags, keywords and date, and the mailbox's UIDVALIDITY, next UID
// and keywords; then it lists the Maildir's names again, so that a file renamed (a flag set),
// removed or added since List fails it. Write checks the RFC822.SIZE Dovecot shows from W=
// against the file. A caller renames the mbox into place only after Verify.
//
// What Dovecot shows that no file can carry: an mbox message's GUID is Dovecot's digest of
// its header, not the Maildir's base name; a CRLF header comes out of an mbox with bare LFs
// (IMAP clients see CRLF and the same size either way); \Recent belongs to sessions.
// Keywords Dovecot keeps only in its index (past the 26 letters a Maildir name can carry)
// are not in the Maildir's files, and are lost; so is a received date Dovecot cached before
// a file's mtime was changed (it shows the cached one, the mbox the mtime).
package export

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"time"

	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
)

// Options control Write and Verify; both must be given the same.
type Options struct {
	// Location is the zone of From_ dates: the zone Dovecot will read them in. nil means
	// time.Local.
	Location *time.Location
	// UIDValidity is the UIDVALIDITY for a Maildir without dovecot-uidlist, which Dovecot
	// never numbered; it is not used otherwise. Without it such a Maildir is refused, unless
	// it is empty.
	UIDValidity uint32
	// DropMeta leaves out the mbox-internal headers (Status, X-UID, Content-Length...) that a
	// message's own header holds, as in a Maildir migrated with --keep-headers, instead of
	// refusing the message. Dovecot then shows it as the mbox it came from showed it, without
	// them.
	DropMeta bool
	// Host names the mail system in the pseudo-message of an empty mailbox.
	Host string
	// Verified, when set, hears from Verify of each message it found as written, with the
	// SHA-256 of the bytes a migration of the mbox stores for it (its header without the
	// internal headers, and its body): what a later pass knows the message by.
	Verified func(m *maildir.Listed, sum [32]byte)
}

// Result sums up a Write, and keeps for Verify what Write read of each message: 48 bytes a
// message.
type Result struct {
	Messages             int
	Bytes                int64 // bytes of the mbox written
	UIDValidity, NextUID uint32
	written              []written
}

// written is what Write read of one message.
type written struct {
	date int64    // INTERNALDATE, in Unix seconds
	size int64    // bytes of the file
	sum  [32]byte // SHA-256 of the stored bytes: the header without internal headers, the body
}

// ErrMismatch is matched (with errors.Is) by the errors of Verify that found the mbox
// different from the Maildir.
var ErrMismatch = errors.New("export: the mbox does not show what the Maildir shows")

// uidValidity is the UIDVALIDITY to write for l.
func uidValidity(l *maildir.Listing, opts Options) (uint32, error) {
	if l.UIDValidity != 0 {
		return l.UIDValidity, nil
	}
	if opts.UIDValidity == 0 && l.Messages > 0 {
		return 0, errors.New("export: the Maildir has no dovecot-uidlist and so no UIDVALIDITY yet; one must be given")
	}
	return opts.UIDValidity, nil
}

// flagsOf maps what Dovecot shows of a Maildir file to the flags of its mbox message.
func flagsOf(m *maildir.Listed) mbox.Flags {
	var f mbox.Flags
	for _, c := range m.Flags {
		switch c {
		case 'D':
			f |= mbox.Draft
		case 'F':
			f |= mbox.Flagged
		case 'R':
			f |= mbox.Answered
		case 'S':
			f |= mbox.Seen
		case 'T':
			f |= mbox.Deleted
		}
	}
	if !m.New() {
		f |= mbox.Old
	}
	return f
}

// countWriter counts what goes through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Write writes the messages of l to out as an mbox, in UID order. It streams: it holds one
// message's header at a time. An error leaves out incomplete.
func Write(out io.Writer, l *maildir.Listing, opts Options) (Result, error) {
	validity, err := uidValidity(l, opts)
	if err != nil {
		return Result{}, err
	}
	res := Result{UIDValidity: validity, NextUID: l.NextUID}
	if validity == 0 {
		// An empty Maildir Dovecot never opened: an empty mbox says as much.
		return res, nil
	}
	cw := &countWriter{w: out}
	w, err := mbox.NewWriter(cw, mbox.WriterOptions{
		Location: opts.Location, UIDValidity: validity, NextUID: l.NextUID,
		Keywords: l.Keywords, DropMeta: opts.DropMeta, Host: opts.Host,
	})
	if err != nil {
		return res, fmt.Errorf("export: %w", err)
	}
	sr := &summer{h: sha256.New()}
	err = l.Each(func(m *maildir.Listed) error {
		sr.reset(m.File)
		err := w.Add(&mbox.Mail{
			Date: m.Date, UID: m.UID, Flags: flagsOf(m), Keywords: m.Keywords,
			Content: sr, Size: m.Size,
		})
		if err != nil {
			return fmt.Errorf("export: %s: %w", m.File.Name(), err)
		}
		sum, bareLF, err := sr.stored(m.Size, opts.DropMeta)
		if err != nil {
			return fmt.Errorf("export: %s: %w", m.File.Name(), err)
		}
		if m.VSize >= 0 && m.VSize != m.Size+bareLF {
			return fmt.Errorf("export: %s: %w: Dovecot shows its RFC822.SIZE as %d (W= in the name or dovecot-uidlist), but its bytes make %d",
				m.File.Name(), maildir.ErrNotExact, m.VSize, m.Size+bareLF)
		}
		res.written = append(res.written, written{date: m.Date.Unix(), size: m.Size, sum: sum})
		res.Messages++
		return nil
	})
	if err == nil {
		err = w.Close()
	}
	res.Bytes = cw.n
	return res, err
}

// Verify reads the mbox src[0:res.Bytes) with mbox.Reader and fails (ErrMismatch) unless it
// shows the messages of l as Write, which returned res, wrote them with opts: the bytes Write
// read, the same UIDs, flags, keywords and dates, in the same order, and the same
// UIDVALIDITY, next UID and keywords. A Maildir whose names changed since List gives
// maildir.ErrChanged. It streams, as Write does, and opens no message file. It returns the
// SHA-256 of the mbox it read.
func Verify(src io.ReaderAt, res Result, l *maildir.Listing, opts Options) (sum [32]byte, err error) {
	whole := &summer{h: sha256.New()}
	whole.reset(src)
	if err := verifyMessages(whole, res, l, opts); err != nil {
		return sum, err
	}
	return whole.rest(res.Bytes)
}

func verifyMessages(src io.ReaderAt, res Result, l *maildir.Listing, opts Options) error {
	size := res.Bytes
	validity, err := uidValidity(l, opts)
	if err != nil {
		return err
	}
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	r := mbox.NewReader(src, size, mbox.Options{Location: loc})
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMismatch, fmt.Sprintf(format, args...))
	}
	checkBase := func(m *mbox.Message) error {
		b := m.Meta.IMAPBase
		if b == nil {
			return mismatch("its first message has no X-IMAPbase")
		}
		if b.UIDValidity != validity || b.LastUID != l.NextUID-1 || !slices.Equal(b.Keywords, l.Keywords) {
			return mismatch("it says UIDVALIDITY %d, last UID %d, keywords %q; the Maildir %d, %d, %q",
				b.UIDValidity, b.LastUID, b.Keywords, validity, l.NextUID-1, l.Keywords)
		}
		return nil
	}
	if l.Messages == 0 {
		m, err := r.Next()
		switch {
		case validity == 0 && err == io.EOF:
			return nil
		case err == io.EOF:
			return mismatch("it is empty; the Maildir's UIDVALIDITY %d and next UID %d are not in it", validity, l.NextUID)
		case err != nil:
			return mismatch("%v", err)
		case !m.Pseudo:
			return mismatch("it holds a message, the Maildir none")
		}
		if err := checkBase(m); err != nil {
			return err
		}
		return end(r, 0, mismatch)
	}
	if len(res.written) != l.Messages {
		return mismatch("Write read %d messages; the Maildir has %d", len(res.written), l.Messages)
	}
	h := sha256.New()
	n := 0
	err = l.EachName(func(want *maildir.Listed) error {
		read := res.written[n]
		want.Date, want.Size = time.Unix(read.date, 0), read.size
		got, err := r.Next()
		if err == io.EOF {
			return mismatch("it ends after %d messages; the Maildir has %d", n, l.Messages)
		}
		if err != nil {
			return mismatch("message %d: %v", n+1, err)
		}
		where := fmt.Sprintf("message %d (UID %d, %s/%s)", n+1, want.UID, want.Sub, want.Name)
		if n == 0 {
			if err := checkBase(got); err != nil {
				return err
			}
		} else if got.Meta.IMAPBase != nil {
			return mismatch("%s: X-IMAPbase or X-IMAP outside the first message", where)
		}
		switch {
		case got.Pseudo:
			return mismatch("%s: a pseudo-message", where)
		case got.Meta.UID != want.UID:
			return mismatch("%s: X-UID %d", where, got.Meta.UID)
		case got.Meta.Flags() != flagsOf(want):
			return mismatch("%s: Status %q and X-Status %q, want flags %q in %s", where, got.Meta.Status, got.Meta.XStatus, want.Flags, want.Sub)
		case !slices.Equal(got.Meta.Keywords, want.Keywords):
			return mismatch("%s: keywords %q, want %q", where, got.Meta.Keywords, want.Keywords)
		case !got.Date.Equal(want.Date):
			return mismatch("%s: From_ date %v, want %v", where, got.Date, want.Date)
		}
		h.Reset()
		h.Write(mbox.StripMeta(got.Header))
		if _, err := io.Copy(h, got.Body); err != nil {
			return mismatch("%s: %v", where, err)
		}
		var sum [32]byte
		if h.Sum(sum[:0]); sum != read.sum {
			return mismatch("%s: its bytes are not the file's", where)
		}
		if opts.Verified != nil {
			opts.Verified(want, sum)
		}
		n++
		return nil
	})
	if err != nil {
		return err
	}
	if err := end(r, n, mismatch); err != nil {
		return err
	}
	return l.Unchanged()
}

// end fails unless r has no message left after the n compared.
func end(r *mbox.Reader, n int, mismatch func(string, ...any) error) error {
	_, err := r.Next()
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return mismatch("after message %d: %v", n, err)
	}
	return mismatch("it has more than the Maildir's %d messages", n)
}

// summer is a message file as Write hands it to the mbox.Writer: it hashes the bytes read
// from it in one pass from the start, and counts their bare LFs.
type summer struct {
	f      io.ReaderAt
	h      hash.Hash
	next   int64 // bytes hashed: reads elsewhere are not
	bareLF int64 // line ends that are not CRLF
	lastCR bool
}

func (s *summer) reset(f io.ReaderAt) {
	s.f, s.next, s.bareLF, s.lastCR = f, 0, 0, false
	s.h.Reset()
}

func (s *summer) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.f.ReadAt(p, off)
	if off == s.next && n > 0 {
		s.add(p[:n])
	}
	return n, err
}

func (s *summer) add(p []byte) {
	if len(p) == 0 {
		return
	}
	s.h.Write(p)
	s.next += int64(len(p))
	for i, b := range p {
		if b == '\n' && !(i > 0 && p[i-1] == '\r' || i == 0 && s.lastCR) {
			s.bareLF++
		}
	}
	s.lastCR = p[len(p)-1] == '\r'
}

// stored returns the SHA-256 of the message's stored bytes (its header without internal
// headers when dropMeta is set, and its body) and its bare LFs. It reads the file again only
// where the writer's reads did not cover it in one pass, or its header must be stripped.
func (s *summer) stored(size int64, dropMeta bool) (sum [32]byte, bareLF int64, err error) {
	if s.next != size || dropMeta {
		f := s.f
		s.reset(f)
		br := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 64<<10)
		hdr, err := headerBlock(br)
		if err != nil {
			return sum, 0, err
		}
		s.add(hdr)
		if dropMeta {
			s.h.Reset()
			s.h.Write(mbox.StripMeta(hdr))
		}
		if _, err := br.WriteTo(writerFunc(func(p []byte) (int, error) { s.add(p); return len(p), nil })); err != nil {
			return sum, 0, err
		}
		if s.next != size {
			return sum, 0, fmt.Errorf("%w: it has %d bytes, not %d", maildir.ErrChanged, s.next, size)
		}
	}
	s.h.Sum(sum[:0])
	return sum, s.bareLF, nil
}

// rest hashes what is left of the first size bytes past those read in one pass, and returns
// the SHA-256 of them all.
func (s *summer) rest(size int64) (sum [32]byte, err error) {
	if s.next < size {
		w := writerFunc(func(p []byte) (int, error) { s.add(p); return len(p), nil })
		if _, err := io.Copy(w, io.NewSectionReader(s.f, s.next, size-s.next)); err != nil {
			return sum, err
		}
	}
	if s.next != size {
		return sum, fmt.Errorf("%w: it ends at byte %d of %d", ErrMismatch, s.next, size)
	}
	s.h.Sum(sum[:0])
	return sum, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// headerBlock reads the header lines of a message up to and with the empty line that ends
// them, or all of it when there is none.
func headerBlock(r *bufio.Reader) ([]byte, error) {
	var h []byte
	for {
		line, err := r.ReadSlice('\n')
		start := len(h) == 0 || h[len(h)-1] == '\n'
		h = append(h, line...)
		if err == io.EOF {
			return h, nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return nil, err
		}
		if start && (string(line) == "\n" || string(line) == "\r\n") {
			return h, nil
		}
		if len(h) > maxHeader {
			return nil, fmt.Errorf("a header block larger than %d bytes", maxHeader)
		}
	}
}

// maxHeader is mbox.Reader's bound on a header block.
const maxHeader = 8 << 20

func clip(b []byte) []byte {
	if len(b) > 200 {
		return append(append(b[:100:100], "..."...), b[len(b)-100:]...)
	}
	return b
}
