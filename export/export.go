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
// Verify reads the mbox back with maildirmig's own reader (mbox.Reader, which trusts
// Content-Length only where it ends at a From_ line) and compares it with the Listing,
// message by message: the bytes (the stored message without its internal headers against
// the file), UID, flags, keywords and date, and the mailbox's UIDVALIDITY, next UID and
// keywords. It also checks the RFC822.SIZE Dovecot shows from W= against the file. A
// caller renames the mbox into place only after Verify.
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
	"bytes"
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

// Result sums up a Write.
type Result struct {
	Messages             int
	Bytes                int64 // bytes of the mbox written
	UIDValidity, NextUID uint32
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
	err = l.Each(func(m *maildir.Listed) error {
		err := w.Add(&mbox.Mail{
			Date: m.Date, UID: m.UID, Flags: flagsOf(m), Keywords: m.Keywords,
			Content: m.File, Size: m.Size,
		})
		if err != nil {
			return fmt.Errorf("export: %s: %w", m.File.Name(), err)
		}
		res.Messages++
		return nil
	})
	if err == nil {
		err = w.Close()
	}
	res.Bytes = cw.n
	return res, err
}

// Verify reads the mbox src[0:size) with mbox.Reader and fails (ErrMismatch) unless it shows
// the messages of l, as Write wrote them with opts: the same bytes, UIDs, flags, keywords and
// dates, in the same order, and the same UIDVALIDITY, next UID and keywords. Files of l that
// changed since List give maildir.ErrChanged. It streams, as Write does.
func Verify(src io.ReaderAt, size int64, l *maildir.Listing, opts Options) error {
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
	cmp := &comparer{}
	n := 0
	err = l.Each(func(want *maildir.Listed) error {
		got, err := r.Next()
		if err == io.EOF {
			return mismatch("it ends after %d messages; the Maildir has %d", n, l.Messages)
		}
		if err != nil {
			return mismatch("message %d: %v", n+1, err)
		}
		where := fmt.Sprintf("message %d (UID %d, %s)", n+1, want.UID, want.File.Name())
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
		if err := cmp.message(got, want, opts.DropMeta); err != nil {
			if errors.Is(err, errDiffer) {
				return mismatch("%s: %v", where, err)
			}
			return fmt.Errorf("export: %s: %w", want.File.Name(), err)
		}
		if opts.Verified != nil {
			var sum [32]byte
			cmp.h.Sum(sum[:0])
			opts.Verified(want, sum)
		}
		n++
		return nil
	})
	if err != nil {
		return err
	}
	return end(r, n, mismatch)
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

var errDiffer = errors.New("the bytes differ")

// comparer compares a message read back from the mbox with its Maildir file, streaming.
type comparer struct {
	h      hash.Hash // of the stored bytes compared: the header without internal headers, the body
	file   *bufio.Reader
	buf    []byte
	at     int64 // bytes of the file compared
	bareLF int64 // line ends in the file that are not CRLF
	lastCR bool
	err    error
}

// message compares got with the file of want: the header got.Header without its internal
// headers against the file's header block (without the file's internal headers when they
// were dropped), then the body.
func (c *comparer) message(got *mbox.Message, want *maildir.Listed, dropMeta bool) error {
	if c.file == nil {
		c.file = bufio.NewReaderSize(nil, 64<<10)
		c.h = sha256.New()
	}
	c.h.Reset()
	c.file.Reset(io.NewSectionReader(want.File, 0, want.Size))
	c.at, c.bareLF, c.lastCR, c.err = 0, 0, false, nil
	hdr, err := headerBlock(c.file)
	if err != nil {
		return err
	}
	c.count(hdr)
	wantHdr := hdr
	if dropMeta {
		wantHdr = mbox.StripMeta(hdr)
	}
	if gotHdr := mbox.StripMeta(got.Header); !bytes.Equal(gotHdr, wantHdr) {
		return fmt.Errorf("%w: header %q, want %q", errDiffer, clip(gotHdr), clip(wantHdr))
	}
	c.h.Write(wantHdr)
	c.at = int64(len(hdr))
	if _, err := io.Copy(c, got.Body); err != nil {
		if c.err != nil {
			return c.err
		}
		return fmt.Errorf("reading the mbox back: %w", err)
	}
	if _, err := c.file.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: the mbox's message ends at byte %d of the file's %d", errDiffer, c.at, want.Size)
	}
	if want.VSize >= 0 && want.VSize != want.Size+c.bareLF {
		return fmt.Errorf("%w: Dovecot shows its RFC822.SIZE as %d (W= in the name or dovecot-uidlist), but its bytes make %d",
			maildir.ErrNotExact, want.VSize, want.Size+c.bareLF)
	}
	return nil
}

// Write compares p with the next bytes of the file.
func (c *comparer) Write(p []byte) (int, error) {
	if len(c.buf) < len(p) {
		c.buf = make([]byte, max(len(p), 64<<10))
	}
	b := c.buf[:len(p)]
	n, err := io.ReadFull(c.file, b)
	if !bytes.Equal(b[:n], p[:n]) {
		i := 0
		for i < n && b[i] == p[i] {
			i++
		}
		c.err = fmt.Errorf("%w at byte %d of the file", errDiffer, c.at+int64(i))
		return i, c.err
	}
	c.count(b[:n])
	c.h.Write(b[:n])
	c.at += int64(n)
	if err != nil {
		c.err = fmt.Errorf("%w: the mbox's message is longer than the file's %d bytes", errDiffer, c.at)
		return n, c.err
	}
	return n, nil
}

// count counts the bare LFs of the file's bytes, for its virtual size.
func (c *comparer) count(p []byte) {
	for i, b := range p {
		if b == '\n' && !(i > 0 && p[i-1] == '\r' || i == 0 && c.lastCR) {
			c.bareLF++
		}
	}
	if len(p) > 0 {
		c.lastCR = p[len(p)-1] == '\r'
	}
}

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
			return nil, fmt.Errorf("%w: a header block larger than %d bytes", errDiffer, maxHeader)
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
