// Package mbox reads mbox files as the programs that write mail spools do, streaming, and
// byte for byte.
//
// A message starts at a From_ line: "From ", a sender and an asctime date (see ParseFromLine).
// An empty line normally precedes it and then belongs to the mbox, not to the message before,
// even when that message is only header lines (Dovecot reads "Subject: a\n\nFrom ..." as a
// message of one header line with no empty line after it, and so does a final empty line).
// Like Dovecot, a valid From_ line with no empty line before it starts a message too, and a
// "From " line that does not parse is body text. A Content-Length header is trusted only when
// the byte it points to starts a From_ line (after one empty line, or directly) or is the end
// of the file, or only a final empty line follows it. A file whose first From_ line has no
// parseable date is read in loose mode: a "From " line after an empty line starts a message
// when it holds one word or a date ("From Russia with love" stays body text), and so does, even
// with no empty line before it, a valid From_ line or a line equal to that first dateless one
// (Mozilla's "From - "). Blank lines and a UTF-8 byte-order mark before the first From_ line are skipped;
// any other text there means the file is no mbox (ErrNotMbox).
//
// Line ends stay as they are ("\n", or "\r\n" in a CRLF mbox, where an empty line is "\r\n"),
// and so does ">From " quoting unless Options.Unescape says otherwise. For every message,
// Lead + FromLine + Header + the stored body + Separator() gives back the input exactly.
//
// Memory stays bounded whatever the size of the file or of one message: the reader goes
// through the file with a 1 MiB buffer, and keeps at most 8 MiB of one header block.
package mbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Unescape says which ">From " quoting the reader removes from message bodies.
type Unescape int

const (
	UnescapeNone   Unescape = iota // keep >From quoting as stored (default)
	UnescapeMboxrd                 // remove one '>' from lines matching ^>+From
	UnescapeMboxo                  // remove one '>' from lines matching ^>From
)

// Unescapes lists the Unescape values, the default first.
var Unescapes = []Unescape{UnescapeNone, UnescapeMboxrd, UnescapeMboxo}

// String returns the name the command line uses for u: none, mboxrd or mboxo.
func (u Unescape) String() string {
	switch u {
	case UnescapeNone:
		return "none"
	case UnescapeMboxrd:
		return "mboxrd"
	case UnescapeMboxo:
		return "mboxo"
	}
	return fmt.Sprintf("Unescape(%d)", int(u))
}

// ParseUnescape parses the name of one of Unescapes.
func ParseUnescape(s string) (Unescape, error) {
	var names []string
	for _, u := range Unescapes {
		if s == u.String() {
			return u, nil
		}
		names = append(names, u.String())
	}
	return 0, fmt.Errorf("mbox: unescape %q is not one of %s", s, strings.Join(names, ", "))
}

// Notice kinds (Notice.Kind values), reported through Options.Notice.
const (
	NoticeLoose                = "loose-mode"             // first From_ line has no parseable date
	NoticeLeadingBlank         = "leading-blank-lines"    // blank lines skipped before the first From_
	NoticeBOM                  = "byte-order-mark"        // UTF-8 BOM skipped
	NoticeContentLengthIgnored = "content-length-ignored" // Content-Length does not end at a From_ line
	NoticeNoFinalNewline       = "no-final-newline"       // the last message does not end in a line end
	NoticeHeaderTooLarge       = "header-too-large"       // header block cut at 8 MiB, the rest read as body
)

// Notice reports an oddity of the input that the reader worked around.
type Notice struct {
	Kind    string
	Message int    // index of the message concerned (-1 for the file)
	Offset  int64  // byte offset in the source
	Detail  string // human text, lower case
}

// Options control a Reader.
type Options struct {
	Unescape Unescape
	Location *time.Location // zone for From_ dates without a zone; nil means time.Local
	Notice   func(Notice)   // may be nil

	// Loose starts the reader in loose mode whatever its first From_ line, keyed on LooseFrom:
	// a reader started in the middle of a file that was read in loose mode from its start
	// (Reader.Loose), to split the rest as that reading did. LooseFrom is what
	// Reader.LooseFrom gave then; nil when that first line is not to start messages anywhere.
	Loose     bool
	LooseFrom []byte
}

// ErrNotMbox is wrapped by the error Next returns when the input is not an mbox: text other
// than blank lines or a byte-order mark before the first From_ line (MMDF's ^A^A^A^A too).
var ErrNotMbox = errors.New("mbox: not an mbox file")

const (
	bufSize       = 1 << 20
	maxHeader     = 8 << 20
	maxLead       = 1 << 20
	checkSize     = 4096 // bytes read where a Content-Length points
	snippetSize   = 40   // bytes of unexpected text quoted in an error
	byteOrderMark = "\xef\xbb\xbf"
	nlQuot        = "\n>"
)

// Message is one message of an mbox. Its Body streams from the file: it is valid until the next
// call to Next, which drains what is left of it.
type Message struct {
	Index    int       // 0-based position in the file, counting a UW pseudo-message
	Offset   int64     // offset of the From_ line (after Lead)
	Lead     []byte    // bytes skipped before the first From_ line (BOM, blank lines); first message only
	FromLine []byte    // raw From_ line including its line end ("\n" or "\r\n")
	Sender   string    // envelope sender
	Date     time.Time // From_ date; zero when it does not parse (loose mode)
	Header   []byte    // raw header block as stored, including the empty line that ends it if a body follows
	Meta     Meta      // parsed mbox-internal headers
	Pseudo   bool      // UW-IMAP/Pine "DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA" with X-IMAP
	CRLF     bool      // the From_ line ends in "\r\n"
	Body     io.Reader // the rest of the message, streamed; unescaped per Options.Unescape

	size   int64
	sep    []byte
	usedCL bool
	done   bool
}

// Size reports the stored bytes of Header and body (before unescaping), separator excluded. It
// is final once Body has been read to EOF or Next has been called again.
func (m *Message) Size() int64 { return m.size }

// Separator returns the bytes after the message that belong to the mbox: the empty line before
// the next From_ line, or a final empty line at the end of the file. It may be empty, and is
// final once Body has been read to EOF or Next has been called again.
func (m *Message) Separator() []byte { return m.sep }

// UsedContentLength reports whether the body's end was taken from Content-Length.
func (m *Message) UsedContentLength() bool { return m.usedCL }

// Reader reads the messages of an mbox one after the other.
type Reader struct {
	src  io.ReaderAt
	size int64
	opts Options
	loc  *time.Location

	buf  []byte
	base int64 // source offset of buf[0]
	r, w int   // unread bytes are buf[r:w]

	err     error // sticky
	started bool
	loose   bool
	index   int
	// looseFrom is the dateless first From_ line of a loose-mode file, such as Mozilla's
	// "From - ": a line equal to it starts a message even with no empty line before.
	looseFrom []byte
	scratch   []byte

	// The body of cur. Bytes buf[r:safeEnd] are known to be body; when stop is set the body
	// ends at safeEnd, followed by stopSep bytes of separator.
	cur       *Message
	safeEnd   int
	stop      bool
	stopSep   int
	lineStart bool // buf[r] starts a line
	prevEmpty bool // the header ended with an empty line and no body byte was consumed yet
	cl        bool // the body's length is Content-Length
	clLen     int64
	clSep     int
	bodyN     int64 // stored body bytes consumed
	last      byte  // last stored byte of cur, for the no-final-newline notice
}

// NewReader reads an mbox from src[0:size). It reads sequentially through a 1 MiB buffer and
// uses ReadAt elsewhere only to check where a Content-Length points.
func NewReader(src io.ReaderAt, size int64, opts Options) *Reader {
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	// A small file needs no more buffer than its size.
	n := int64(bufSize)
	if size < n {
		n = max(size, 64)
	}
	r := &Reader{src: src, size: size, opts: opts, loc: loc, buf: make([]byte, n)}
	if opts.Loose {
		r.loose = true
		if len(opts.LooseFrom) > 0 {
			r.looseFrom = bytes.Clone(bytes.TrimRight(trimEOL(opts.LooseFrom), " "))
		}
	}
	return r
}

// Loose reports whether the reader is in loose mode: the first From_ line has no parseable date,
// so every "From " line after an empty line starts a message.
func (r *Reader) Loose() bool { return r.loose }

// LooseFrom returns the dateless first From_ line (line end and trailing spaces removed) that
// starts a message wherever it appears in loose mode, nil in strict mode. Options.LooseFrom
// takes it back.
func (r *Reader) LooseFrom() []byte { return r.looseFrom }

// Offset reports how many source bytes have been consumed so far.
func (r *Reader) Offset() int64 { return r.base + int64(r.r) }

func (r *Reader) notice(kind string, msg int, off int64, format string, args ...any) {
	if r.opts.Notice != nil {
		r.opts.Notice(Notice{Kind: kind, Message: msg, Offset: off, Detail: fmt.Sprintf(format, args...)})
	}
}

// Next returns the next message, or io.EOF after the last. The previous message's Body is
// drained first, without being buffered whole.
func (r *Reader) Next() (*Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	m, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	return m, nil
}

func (r *Reader) next() (*Message, error) {
	if r.cur != nil {
		for {
			n, err := r.avail()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			r.consume(n)
		}
		r.cur = nil
	}
	var lead []byte
	if !r.started {
		r.started = true
		var err error
		if lead, err = r.start(); err != nil {
			return nil, err
		}
	}
	if r.r == r.w {
		if err := r.fill(); err != nil {
			return nil, err
		}
		if r.r == r.w {
			return nil, io.EOF
		}
	}
	return r.readHead(lead)
}

// eof reports whether every byte of the source is in the buffer.
func (r *Reader) eof() bool { return r.base+int64(r.w) >= r.size }

// noMore reports whether fill cannot add bytes: the end of the source is in the buffer, or the
// buffer is full of unread bytes.
func (r *Reader) noMore() bool { return r.eof() || (r.r == 0 && r.w == len(r.buf)) }

// fill moves the unread bytes to the front of the buffer and reads more after them.
func (r *Reader) fill() error {
	if r.r > 0 {
		n := copy(r.buf, r.buf[r.r:r.w])
		r.base += int64(r.r)
		r.safeEnd -= r.r
		r.w, r.r = n, 0
	}
	left := r.size - (r.base + int64(r.w))
	if left <= 0 || r.w == len(r.buf) {
		return nil
	}
	want := len(r.buf) - r.w
	if int64(want) > left {
		want = int(left)
	}
	off := r.base + int64(r.w)
	n, err := r.src.ReadAt(r.buf[r.w:r.w+want], off)
	r.w += n
	if n < want {
		if err == nil || err == io.EOF {
			// The file shrank under us: what is there is all there is.
			r.size = r.base + int64(r.w)
			return nil
		}
		return fmt.Errorf("mbox: read at offset %d: %w", off+int64(n), err)
	}
	return nil
}

// line returns the line at buf[r], with its line end. complete is false when the line does not
// fit in the buffer; at the end of the file the last line may lack its line end.
func (r *Reader) line() (line []byte, complete bool, err error) {
	return r.lineAfter(0)
}

// lineAfter is line for the line that starts skip bytes after buf[r], skip bytes that it keeps
// in the buffer. It returns an empty line at the end of the file.
func (r *Reader) lineAfter(skip int) (line []byte, complete bool, err error) {
	for {
		from := r.r + skip
		if i := bytes.IndexByte(r.buf[from:r.w], '\n'); i >= 0 {
			return r.buf[from : from+i+1], true, nil
		}
		if r.eof() {
			return r.buf[from:r.w], true, nil
		}
		if r.r == 0 && r.w == len(r.buf) {
			return r.buf[from:r.w], false, nil
		}
		if err := r.fill(); err != nil {
			return nil, false, err
		}
	}
}

func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// start skips a byte-order mark and blank lines before the first From_ line, and decides
// between strict and loose mode.
func (r *Reader) start() ([]byte, error) {
	if err := r.fill(); err != nil {
		return nil, err
	}
	var lead []byte
	if bytes.HasPrefix(r.buf[r.r:r.w], []byte(byteOrderMark)) {
		lead = append(lead, byteOrderMark...)
		r.r += len(byteOrderMark)
		r.notice(NoticeBOM, -1, 0, "utf-8 byte-order mark skipped")
	}
	bom := len(lead)
	for {
		line, _, err := r.line()
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			// Empty or all blank: an mbox with no message.
			return nil, nil
		}
		if !isBlank(line) {
			break
		}
		if len(lead)+len(line) > maxLead {
			return nil, fmt.Errorf("%w: offset %d: more than %d bytes of blank lines before the first From_ line",
				ErrNotMbox, r.Offset(), maxLead)
		}
		lead = append(lead, line...)
		r.r += len(line)
	}
	line, _, _ := r.line()
	if !bytes.HasPrefix(line, fromPrefix) {
		s := trimEOL(line)
		if len(s) > snippetSize {
			s = s[:snippetSize]
		}
		return nil, fmt.Errorf("%w: offset %d: expected a From_ line, found %q", ErrNotMbox, r.Offset(), s)
	}
	if len(lead) > bom {
		r.notice(NoticeLeadingBlank, -1, int64(bom), "%d bytes of blank lines skipped before the first From_ line", len(lead)-bom)
	}
	if _, _, ok := parseFrom(line, r.loc); !ok && !r.loose {
		r.loose = true
		r.looseFrom = bytes.Clone(bytes.TrimRight(trimEOL(line), " "))
		r.notice(NoticeLoose, 0, r.Offset(), "first From_ line has no date (%q): any From line after an empty line starts a message",
			trimEOL(line))
	}
	return lead, nil
}

// readHead reads a message's From_ line and header block, and sets up the reading of its body.
func (r *Reader) readHead(lead []byte) (*Message, error) {
	off := r.Offset()
	line, complete, err := r.line()
	if err != nil {
		return nil, err
	}
	m := &Message{Index: r.index, Offset: off, Lead: lead, FromLine: bytes.Clone(line)}
	r.r += len(line)
	m.CRLF = bytes.HasSuffix(m.FromLine, []byte("\r\n"))
	if end, date, ok := parseFrom(m.FromLine, r.loc); ok {
		m.Sender, m.Date = string(m.FromLine[len(fromPrefix):end]), date
	} else if s := trimEOL(m.FromLine); len(s) > len(fromPrefix) {
		// Loose mode: the first word is still the best guess at a sender.
		s = s[len(fromPrefix):]
		if i := bytes.IndexByte(s, ' '); i >= 0 {
			s = s[:i]
		}
		m.Sender = string(s)
	}

	var hdr []byte
	midLine := !complete
	empty, cut := 0, false // empty: length of the empty line after the header lines, not consumed
	for {
		line, complete, err := r.line()
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if !midLine {
			if isEmptyLine(line) {
				empty = len(line)
				break
			}
			if complete && r.isFromLine(line) {
				break
			}
		}
		if len(hdr)+len(line) > maxHeader {
			cut = true
			r.notice(NoticeHeaderTooLarge, m.Index, m.Offset, "header block larger than %d bytes: the rest is read as body", maxHeader)
			break
		}
		hdr = append(hdr, line...)
		r.r += len(line)
		midLine = line[len(line)-1] != '\n'
	}

	info := parseHeader(hdr)
	m.Meta = info.meta
	if m.Index == 0 && info.xIMAP != nil && info.subject == pseudoSubject {
		m.Pseudo = true
		m.Meta.IMAPBase = info.xIMAP
	}

	// A message with no body: its header lines end at a From_ line or at the end of the file,
	// or at one empty line followed by either. That empty line is the mbox's separator, not the
	// end of the header block, as Dovecot reads it; unless a Content-Length that holds the next
	// From_ line in the body is trusted.
	noBody, sep := !cut && empty == 0, 0
	clChecked, clSep, clWhy := false, 0, ""
	if empty > 0 {
		next, complete, err := r.lineAfter(empty)
		if err != nil {
			return nil, err
		}
		if len(next) == 0 || complete && r.startsAfterEmpty(next) {
			noBody, sep = true, empty
			if n := m.Meta.ContentLength; n > 0 {
				if clSep, clWhy, err = r.checkContentLength(r.Offset()+int64(empty), n); err != nil {
					return nil, err
				}
				clChecked, noBody = true, clWhy != ""
			}
		}
	}
	if empty > 0 && !noBody {
		hdr = append(hdr, r.buf[r.r:r.r+empty]...)
		r.r += empty
	}
	m.Header = hdr

	r.cur = m
	r.index++
	r.safeEnd, r.stop, r.stopSep = r.r, false, 0
	r.cl, r.bodyN = false, 0
	r.prevEmpty = empty > 0 && !noBody
	switch {
	case len(hdr) > 0:
		r.last = hdr[len(hdr)-1]
	default:
		r.last = m.FromLine[len(m.FromLine)-1]
	}
	r.lineStart = r.last == '\n'
	m.Body = &body{r: r, m: m}

	if noBody {
		r.stop, r.stopSep = true, sep
		if n := m.Meta.ContentLength; n > 0 {
			r.notice(NoticeContentLengthIgnored, m.Index, m.Offset, "content-length %d on a message with no body", n)
		}
		return m, nil
	}
	if n := m.Meta.ContentLength; n >= 0 && !cut {
		if !clChecked {
			if clSep, clWhy, err = r.checkContentLength(r.Offset(), n); err != nil {
				return nil, err
			}
		}
		if clWhy == "" {
			r.cl, r.clLen, r.clSep, m.usedCL = true, n, clSep, true
		} else {
			r.notice(NoticeContentLengthIgnored, m.Index, m.Offset, "content-length %d %s", n, clWhy)
		}
	}
	return m, nil
}

// checkContentLength tells whether a body of n bytes from bodyStart ends where a message must:
// at the end of the file, at a From_ line, or at an empty line followed by a From_ line or by
// the end of the file. sep is the length of that empty line; why says what is wrong otherwise.
func (r *Reader) checkContentLength(bodyStart, n int64) (sep int, why string, err error) {
	end := bodyStart + n
	if end > r.size {
		return 0, "points past the end of the file", nil
	}
	if end == r.size {
		return 0, "", nil
	}
	// Read from one byte before the end, to see whether the end is at a line start.
	from := end - 1
	want := int64(checkSize)
	if left := r.size - from; left < want {
		want = left
	}
	var p []byte
	if lo, hi := r.base, r.base+int64(r.w); from >= lo && from+want <= hi {
		p = r.buf[from-lo : from-lo+want]
	} else {
		if r.scratch == nil {
			r.scratch = make([]byte, checkSize)
		}
		k, err := r.src.ReadAt(r.scratch[:want], from)
		if k < int(want) && err != io.EOF {
			return 0, "", fmt.Errorf("mbox: read at offset %d: %w", from+int64(k), err)
		}
		p = r.scratch[:k]
	}
	if len(p) < 2 {
		return 0, "points past the end of the file", nil
	}
	atLineStart := n == 0 || p[0] == '\n'
	q := p[1:]
	reachesEOF := from+int64(len(p)) >= r.size
	for _, e := range []int{1, 2} {
		if e == 1 && q[0] != '\n' || e == 2 && !bytes.HasPrefix(q, []byte("\r\n")) {
			continue
		}
		rest := q[e:]
		if len(rest) == 0 && reachesEOF {
			return e, "", nil
		}
		if r.startsMessage(rest, reachesEOF) {
			return e, "", nil
		}
	}
	if atLineStart && r.startsMessage(q, reachesEOF) {
		return 0, "", nil
	}
	return 0, "does not end at a From_ line", nil
}

// startsMessage reports whether b starts with a line that starts a message. final says
// that b holds everything up to the end of the file.
func (r *Reader) startsMessage(b []byte, final bool) bool {
	if !bytes.HasPrefix(b, fromPrefix) {
		return false
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 && !final {
		return false
	}
	if i >= 0 {
		b = b[:i+1]
	}
	if r.loose && looseSeparator(b) {
		return true
	}
	_, _, ok := parseFrom(b, r.loc)
	return ok
}

// looseSeparator reports whether line, a line beginning "From ", can separate messages in loose
// mode: "From " and one word (Mozilla's "From - ", Gmail Takeout's "From 1844...@xxx"), or a
// valid From_ line. "From Russia with love" after an empty line is body text, even there.
func looseSeparator(line []byte) bool {
	rest := bytes.TrimRight(trimEOL(line)[len(fromPrefix):], " \t")
	return len(rest) > 0 && bytes.IndexAny(rest, " \t") < 0
}

// startsAfterEmpty reports whether line, a whole line after an empty line, starts a message.
func (r *Reader) startsAfterEmpty(line []byte) bool {
	return r.isFromLine(line) || r.loose && bytes.HasPrefix(line, fromPrefix) && looseSeparator(line)
}

// isFromLine reports whether line, a whole line beginning "From ", starts a message wherever
// it is: a valid From_ line, or in loose mode a line equal to the file's first From_ line.
func (r *Reader) isFromLine(line []byte) bool {
	if !bytes.HasPrefix(line, fromPrefix) {
		return false
	}
	if _, _, ok := parseFrom(line, r.loc); ok {
		return true
	}
	return r.loose && bytes.Equal(bytes.TrimRight(trimEOL(line), " "), r.looseFrom)
}

// emptyBefore returns the length of the empty line that ends right before data[k], 0 if none.
// lineStart says whether data[0] starts a line.
func emptyBefore(data []byte, k int, lineStart bool) int {
	if k >= 1 && data[k-1] == '\n' {
		if k == 1 {
			if lineStart {
				return 1
			}
			return 0
		}
		if data[k-2] == '\n' {
			return 1
		}
		if data[k-2] == '\r' && (k == 2 && lineStart || k > 2 && data[k-3] == '\n') {
			return 2
		}
	}
	return 0
}

// scan finds how much of data, the unread bytes of a body read without Content-Length, is
// body for sure. When stop is set, the body ends after safe bytes, and sep bytes of separator
// follow. safe is 0 without stop when more data is needed to decide (never when noMore).
func (r *Reader) scan(data []byte, noMore bool) (safe int, stop bool, sep int) {
	ls := r.lineStart
	pos, atLine := 0, ls
	for {
		k := -1
		if atLine && bytes.HasPrefix(data[pos:], fromPrefix) {
			k = pos
		} else {
			// "From " is rarer than a line end, so searching for it alone and then looking
			// back is about three times faster than searching for "\nFrom ".
			for p := pos; ; {
				i := bytes.Index(data[p:], fromPrefix)
				if i < 0 {
					break
				}
				if j := p + i; j > pos && data[j-1] == '\n' {
					k = j
					break
				}
				p += i + 1
			}
		}
		if k < 0 {
			break
		}
		var line []byte
		if i := bytes.IndexByte(data[k:], '\n'); i >= 0 {
			line = data[k : k+i+1]
		} else if !noMore {
			return k - emptyBefore(data, k, ls), false, 0
		} else if r.eof() {
			line = data[k:]
		} else {
			// A "From " line longer than the buffer is no From_ line.
			return len(data), false, 0
		}
		e := emptyBefore(data, k, ls)
		if r.isFromLine(line) || r.loose && (e > 0 || (k == 0 && ls && r.prevEmpty)) && looseSeparator(line) {
			return k - e, true, e
		}
		pos, atLine = k+len(line), true
	}

	last := bytes.LastIndexByte(data, '\n')
	tail := data[last+1:]
	if noMore && r.eof() {
		if len(tail) > 0 {
			return len(data), true, 0
		}
		e := emptyBefore(data, len(data), ls)
		return len(data) - e, true, e
	}
	if len(tail) == 0 {
		// The next line may start a message: keep back an empty line before it.
		safe = len(data) - emptyBefore(data, len(data), ls)
	} else if (last >= 0 || ls) && len(tail) < len(fromPrefix) && bytes.HasPrefix(fromPrefix, tail) {
		// The tail may become a From_ line.
		safe = last + 1 - emptyBefore(data, last+1, ls)
	} else {
		safe = len(data)
	}
	if safe == 0 && noMore {
		safe = len(data)
	}
	return safe, false, 0
}

// avail returns how many bytes at buf[r] are body, reading more if needed, or io.EOF at the
// end of the body (after consuming the separator).
func (r *Reader) avail() (int, error) {
	for {
		if r.safeEnd > r.r {
			return r.safeEnd - r.r, nil
		}
		m := r.cur
		if m.done {
			return 0, io.EOF
		}
		if r.stop {
			if err := r.endBody(r.stopSep); err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		if r.cl {
			remain := r.clLen - r.bodyN
			if remain == 0 {
				r.stop, r.stopSep = true, r.clSep
				continue
			}
			if r.r == r.w {
				if err := r.fill(); err != nil {
					return 0, err
				}
				if r.r == r.w {
					return 0, fmt.Errorf("mbox: offset %d: %w", r.Offset(), io.ErrUnexpectedEOF)
				}
			}
			r.safeEnd = r.r + int(min(remain, int64(r.w-r.r)))
			continue
		}
		noMore := r.noMore()
		safe, stop, sep := r.scan(r.buf[r.r:r.w], noMore)
		r.safeEnd = r.r + safe
		if stop {
			r.stop, r.stopSep = true, sep
			continue
		}
		if safe == 0 {
			if err := r.fill(); err != nil {
				return 0, err
			}
		}
	}
}

// consume advances over n stored body bytes.
func (r *Reader) consume(n int) {
	if n == 0 {
		return
	}
	r.r += n
	r.bodyN += int64(n)
	r.last = r.buf[r.r-1]
	r.lineStart = r.last == '\n'
	r.prevEmpty = false
}

// endBody consumes the separator and closes the current message.
func (r *Reader) endBody(sep int) error {
	for r.w-r.r < sep {
		had := r.w - r.r
		if err := r.fill(); err != nil {
			return err
		}
		if r.w-r.r == had {
			return fmt.Errorf("mbox: offset %d: %w", r.Offset(), io.ErrUnexpectedEOF)
		}
	}
	m := r.cur
	m.sep = bytes.Clone(r.buf[r.r : r.r+sep])
	r.r += sep
	r.safeEnd = r.r
	m.size = int64(len(m.Header)) + r.bodyN
	m.done = true
	if sep == 0 && r.last != '\n' && r.Offset() >= r.size {
		r.notice(NoticeNoFinalNewline, m.Index, r.Offset(), "the last message does not end with a line end")
	}
	return nil
}

// escaped tells whether the line at buf[r] is a quoted From line to unescape: 1 yes, 0 no,
// -1 cannot tell yet.
func (r *Reader) escaped() int {
	data := r.buf[r.r:r.w]
	i := 0
	for i < len(data) && data[i] == '>' {
		i++
	}
	if r.opts.Unescape == UnescapeMboxo && i > 1 {
		return 0
	}
	rest := data[i:]
	if len(rest) < len(fromPrefix) && bytes.HasPrefix(fromPrefix, rest) && !r.noMore() {
		return -1
	}
	if bytes.HasPrefix(rest, fromPrefix) {
		return 1
	}
	return 0
}

// segment returns the next stored body bytes to hand out, at most max (0: no limit), stopping
// after a line end that a quoted line may follow. The caller consumes what it uses.
func (r *Reader) segment(max int) ([]byte, error) {
	for {
		n, err := r.avail()
		if err != nil {
			return nil, err
		}
		unescape := r.opts.Unescape != UnescapeNone
		if unescape && r.lineStart && r.buf[r.r] == '>' {
			switch r.escaped() {
			case 1:
				r.consume(1)
				continue
			case -1:
				if err := r.fill(); err != nil {
					return nil, err
				}
				continue
			}
		}
		seg := r.buf[r.r : r.r+n]
		if max > 0 && len(seg) > max {
			seg = seg[:max]
		}
		if unescape {
			if i := bytes.Index(seg, []byte(nlQuot)); i >= 0 {
				seg = seg[:i+1]
			}
		}
		return seg, nil
	}
}

// body is a Message's Body.
type body struct {
	r *Reader
	m *Message
}

func (b *body) Read(p []byte) (int, error) {
	r := b.r
	if r.cur != b.m || b.m.done {
		return 0, io.EOF
	}
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	seg, err := r.segment(len(p))
	if err != nil {
		if err != io.EOF {
			r.err = err
		}
		return 0, err
	}
	n := copy(p, seg)
	r.consume(n)
	return n, nil
}

// WriteTo hands the body to w straight from the reader's buffer.
func (b *body) WriteTo(w io.Writer) (int64, error) {
	r := b.r
	var total int64
	for {
		if r.cur != b.m || b.m.done {
			return total, nil
		}
		if r.err != nil {
			return total, r.err
		}
		seg, err := r.segment(0)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			r.err = err
			return total, err
		}
		n, err := w.Write(seg)
		r.consume(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
		if n < len(seg) {
			return total, io.ErrShortWrite
		}
	}
}

// Count returns how many messages src[0:size) holds, as Reader finds them (a pseudo-message
// is none), reading no more than it must.
func Count(src io.ReaderAt, size int64, opts Options) (int64, error) {
	r := NewReader(src, size, opts)
	var n int64
	for {
		m, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if !m.Pseudo {
			n++
		}
	}
}
