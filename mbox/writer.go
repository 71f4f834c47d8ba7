package mbox

// Writing an mbox the way Dovecot 2.3 writes one, so that Dovecot serving it shows every
// message as given. From Dovecot's source (src/lib-storage/index/mbox/mbox-save.c,
// mbox-sync-update.c, istream-raw-mbox.c and src/lib-mail/mbox-from.c in dovecot/core 2.3.19),
// and tried with doveadm in writer_dovecot_test.go:
//
//   - The From_ line is "From <sender>  <Www Mmm dd hh:mm:ss yyyy>", two spaces after the
//     sender, the day with a leading zero, in the server's local time and with no zone
//     (mbox_from_create). The sender is the envelope sender, MAILER-DAEMON when it is empty.
//     Dovecot reads the date back with mktime, so a wall time that names two instants (the
//     hour repeated when summer time ends) or none would come back wrong; there the Writer
//     adds the numeric offset after the year, which Dovecot (mbox_from_parse) and Reader
//     honour.
//   - The mbox-internal headers follow the message's own header lines, before the empty
//     line that ends them: X-IMAPbase "<uidvalidity> <last uid, 10 digits> <keywords>" in
//     the first message, X-UID, Status ('R' seen, 'O' not \Recent), X-Status when a flag is
//     set ('A' answered, 'F' flagged, 'T' draft, 'D' deleted), X-Keywords with room after it
//     for later flag changes, and Content-Length, the length of the body. Dovecot hides them
//     from clients, and takes the body's length from Content-Length when the byte after
//     the body is the line end before the next From_ line, or the line end at the end of the
//     file; it then leaves "From " and ">From " lines of the body as they are.
//   - One line end separates a message from the next From_ line and ends the file. Dovecot
//     takes it for the mbox's, so a body that does not end in a line end keeps its last
//     line whole.
//
// Where Dovecot cannot show a message as it is, Add refuses it (ErrNotExact):
//
//   - a header line that reads as a From_ line, to Dovecot (dovecotFromLine) or to Reader:
//     Dovecot ends the message before it, and so does Reader, even at the first header
//     line, where Dovecot does not. Other header lines that begin with "From " (no date)
//     are kept;
//   - a message whose header already holds one of the mbox-internal headers (a Maildir
//     migrated with --keep-headers): Dovecot hides them, and reads flags and UIDs from them.
//     WriterOptions.DropMeta drops them instead, and the message then shows as it did in the
//     mbox it first came from;
//   - a message whose last byte is a carriage return: before the separator's line end it
//     reads as a CRLF line end, and Dovecot 2.3.19 then loses the next message ("Next
//     message unexpectedly lost");
//   - a message without a body (no empty line after its header) whose last byte is not a
//     line end: Dovecot would show it whole, but Reader keeps the line end before the next
//     From_ line when no empty line precedes it, and would read it one byte longer;
//   - a header block of more than 8 MiB with the internal headers, where Reader stops
//     reading the header.
//
// Dovecot shows a CRLF header with bare LFs from an mbox (its header filter drops the CRs),
// where it shows the bytes of a Maildir file as they are: IMAP clients see CRLF either way
// and the same RFC822.SIZE, but doveadm's hdr and size.physical differ. Nothing in the file
// can change that.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrNotExact is matched (with errors.Is) by the errors of Add that refuse a message Dovecot
// could not show from an mbox as it is.
var ErrNotExact = errors.New("mbox: the message cannot be kept exactly in an mbox")

type notExactError struct {
	uid    uint32
	reason string
}

func (e *notExactError) Error() string {
	return fmt.Sprintf("mbox: message UID %d: %s", e.uid, e.reason)
}

func (e *notExactError) Unwrap() error { return ErrNotExact }

// Flags are the IMAP system flags an mbox keeps in Status and X-Status, and Old, the 'O'
// that says a client has seen the message (it is not \Recent).
type Flags uint8

const (
	Seen     Flags = 1 << iota // Status R
	Answered                   // X-Status A
	Flagged                    // X-Status F
	Deleted                    // X-Status D
	Draft                      // X-Status T
	Old                        // Status O
)

// Flags reads Status and X-Status as Dovecot does: each letter it knows sets its flag,
// others are ignored.
func (m Meta) Flags() Flags {
	var f Flags
	for _, c := range m.Status {
		switch c {
		case 'R':
			f |= Seen
		case 'O':
			f |= Old
		}
	}
	for _, c := range m.XStatus {
		switch c {
		case 'A':
			f |= Answered
		case 'F':
			f |= Flagged
		case 'D':
			f |= Deleted
		case 'T':
			f |= Draft
		}
	}
	return f
}

// WriterOptions describe the mailbox a Writer writes.
type WriterOptions struct {
	// Location is the zone of From_ dates, the zone Dovecot and Reader will read them in;
	// nil means time.Local.
	Location *time.Location
	// UIDValidity and NextUID go into X-IMAPbase (which says NextUID-1, the last UID).
	UIDValidity, NextUID uint32
	// Keywords is the mailbox's keyword list, in X-IMAPbase. Dovecot drops from X-Keywords
	// a keyword the list does not name, so Add refuses one.
	Keywords []string
	// DropMeta drops the mbox-internal headers a message's own header holds instead of
	// refusing the message.
	DropMeta bool
	// Host names the mail system in the pseudo-message of an empty mailbox; "" means
	// localhost.
	Host string
}

// Mail is one message for Writer.Add.
type Mail struct {
	// Sender is the envelope sender of the From_ line; "" takes it from the Return-Path
	// header, and MAILER-DAEMON when there is none, it is empty ("<>") or it would not fit
	// in a From_ line.
	Sender   string
	Date     time.Time // INTERNALDATE, in whole seconds
	UID      uint32
	Flags    Flags
	Keywords []string
	Content  io.ReaderAt // the message bytes, Content[0:Size)
	Size     int64
}

// Writer writes an mbox, streaming: it holds one message's header (at most 8 MiB) and a
// 64 KiB buffer. It is not safe for concurrent use.
type Writer struct {
	out    *bufio.Writer
	opts   WriterOptions
	loc    *time.Location
	kw     map[string]bool
	n      int    // messages written
	last   uint32 // UID of the last message written
	br     *bufio.Reader
	hdr    []byte
	drop   [][2]int // byte ranges of hdr to leave out (WriterOptions.DropMeta)
	err    error    // sticky: the output is then incomplete
	closed bool
}

// keywordRoom is the run of spaces after X-Keywords that lets Dovecot add flags and keywords
// in place (its MBOX_HEADER_PADDING) instead of moving the rest of the file.
const keywordRoom = 50

// maxSender bounds a sender taken from Return-Path.
const maxSender = 255

// NewWriter returns a Writer that writes an mbox to out.
func NewWriter(out io.Writer, opts WriterOptions) (*Writer, error) {
	if opts.UIDValidity == 0 {
		return nil, errors.New("mbox: writer: no UIDVALIDITY")
	}
	if opts.NextUID == 0 {
		return nil, errors.New("mbox: writer: next UID 0")
	}
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	kw := make(map[string]bool, len(opts.Keywords))
	for _, k := range opts.Keywords {
		if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return nil, fmt.Errorf("mbox: writer: keyword %q cannot be written in a header", k)
		}
		kw[k] = true
	}
	return &Writer{
		out: bufio.NewWriterSize(out, 64<<10), opts: opts, loc: loc, kw: kw,
		br: bufio.NewReaderSize(nil, 64<<10),
	}, nil
}

// Add writes one message. UIDs must grow and stay below NextUID. A message Dovecot could not
// show as it is gives an error matching ErrNotExact. Errors found before the message's first
// byte is written (those, a bad UID or keyword, a failed read of the header) leave the output
// as it was; errors after that (reading the body, writing) leave it incomplete, and every
// later call fails.
func (w *Writer) Add(m *Mail) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("mbox: writer: Add after Close")
	}
	if m.UID == 0 || m.UID <= w.last || m.UID >= w.opts.NextUID {
		return fmt.Errorf("mbox: writer: UID %d after UID %d, next UID %d", m.UID, w.last, w.opts.NextUID)
	}
	for _, k := range m.Keywords {
		if !w.kw[k] {
			return fmt.Errorf("mbox: writer: message UID %d: keyword %q is not one of the mailbox's", m.UID, k)
		}
	}
	date := m.Date.Truncate(time.Second)
	if y := date.In(w.loc).Year(); y < 1 || y > 9999 {
		return &notExactError{m.UID, fmt.Sprintf("its date %s has no four-digit year", date)}
	}
	h, err := w.readHeader(m)
	if err != nil {
		return err
	}
	sender := m.Sender
	if sender == "" {
		sender = h.returnPath
	}
	if !validSender(sender) {
		sender = "MAILER-DAEMON"
	}
	w.writeFrom(sender, date)
	w.writeHeader(m, h)
	if _, err := io.CopyN(w.out, w.br, h.body); err != nil {
		return w.fail(fmt.Errorf("mbox: writer: message UID %d: %w", m.UID, changedIfEOF(err)))
	}
	// The bufio.Writer keeps the first error of the target, and returns it here.
	if err := w.out.WriteByte('\n'); err != nil {
		return w.fail(fmt.Errorf("mbox: writer: message UID %d: %w", m.UID, err))
	}
	w.n++
	w.last = m.UID
	return nil
}

// Close writes what is buffered, and for a mailbox without a message the pseudo-message that
// carries its UIDVALIDITY and next UID. It does not close the target.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	w.closed = true
	if w.n == 0 {
		w.writePseudo()
	}
	if err := w.out.Flush(); err != nil {
		return w.fail(err)
	}
	return nil
}

// Messages returns how many messages Add wrote.
func (w *Writer) Messages() int { return w.n }

func (w *Writer) fail(err error) error {
	w.err = err
	return err
}

func changedIfEOF(err error) error {
	if err == io.EOF {
		return fmt.Errorf("the message is shorter than its size: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// header is what Add learns from a message's header block before writing anything.
type header struct {
	lines      int    // bytes of header lines, without the empty line that ends them
	eoh        int    // bytes of that empty line: 0 (none), 1 or 2
	body       int64  // bytes after it
	returnPath string // address of the first Return-Path, "" when none
}

// readHeader reads the header block of m into w.hdr, checks it, and leaves w.br at the
// start of the body.
func (w *Writer) readHeader(m *Mail) (header, error) {
	var h header
	if m.Size < 0 {
		return h, fmt.Errorf("mbox: writer: message UID %d: size %d", m.UID, m.Size)
	}
	var last [1]byte
	if m.Size > 0 {
		if _, err := m.Content.ReadAt(last[:], m.Size-1); err != nil {
			return h, fmt.Errorf("mbox: writer: message UID %d: %w", m.UID, changedIfEOF(err))
		}
		if last[0] == '\r' {
			return h, &notExactError{m.UID, "its last byte is a carriage return, which Dovecot reads as part of the mbox's line end"}
		}
	}
	w.br.Reset(io.NewSectionReader(m.Content, 0, m.Size))
	w.hdr, w.drop = w.hdr[:0], w.drop[:0]
	dropping := false
	var froms []int // where header lines that begin with "From " start
	for {
		line, err := w.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A long line: the rest of it follows; only its start matters.
			err = nil
		}
		if err != nil && err != io.EOF {
			return h, fmt.Errorf("mbox: writer: message UID %d: %w", m.UID, err)
		}
		if len(line) == 0 {
			break
		}
		start := len(w.hdr) == 0 || w.hdr[len(w.hdr)-1] == '\n'
		if start && isEmptyLine(line) {
			h.eoh = len(line)
			break
		}
		if start {
			switch {
			case bytes.HasPrefix(line, fromPrefix):
				froms = append(froms, len(w.hdr))
			case line[0] != ' ' && line[0] != '\t':
				name := fieldName(line)
				dropping = name != nil && isMetaName(name)
				if dropping && !w.opts.DropMeta {
					return h, &notExactError{m.UID, fmt.Sprintf("its header holds %s, which Dovecot hides in an mbox and reads as the message's state", name)}
				}
			}
		}
		if len(w.hdr)+len(line) > maxHeader {
			return h, &notExactError{m.UID, fmt.Sprintf("its header block is larger than %d bytes", maxHeader)}
		}
		if dropping {
			if n := len(w.drop); n > 0 && w.drop[n-1][1] == len(w.hdr) {
				w.drop[n-1][1] += len(line)
			} else {
				w.drop = append(w.drop, [2]int{len(w.hdr), len(w.hdr) + len(line)})
			}
		}
		w.hdr = append(w.hdr, line...)
		if err == io.EOF {
			break
		}
	}
	h.lines = len(w.hdr)
	h.body = m.Size - int64(h.lines+h.eoh)
	for _, at := range froms {
		// Dovecot reads a From_ line from where it starts on, past its line end if need be.
		if dovecotFromLine(w.hdr[at:]) || validFrom(w.hdr[at:lineEnd(w.hdr, at)]) {
			return h, &notExactError{m.UID, fmt.Sprintf("header line %q is a From_ line, which starts a message in an mbox", clipLine(w.hdr[at:lineEnd(w.hdr, at)]))}
		}
	}
	if h.eoh == 0 && m.Size > 0 && last[0] != '\n' {
		return h, &notExactError{m.UID, "it has no body and its last line has no line end, which Reader would give it before the next From_ line"}
	}
	if m.Sender == "" {
		h.returnPath = returnPath(w.hdr)
	}
	return h, nil
}

// validFrom reports whether Reader takes line for a From_ line.
func validFrom(line []byte) bool {
	_, _, ok := parseFrom(line, time.UTC)
	return ok
}

// dovecotFromLine reports whether Dovecot 2.3 takes the line that begins data with "From "
// for a From_ line (mbox_from_parse in src/lib-mail/mbox-from.c): a sender (a quoted part
// allowed), spaces, then at fixed places a weekday it does not check, a month (or "???"),
// a day, hh:mm[:ss], an optional zone name, and a four-digit year; or the form "Www, dd Mmm
// yyyy hh:mm[:ss]". Dovecot reads those places in what follows the line's start, not only
// within the line, and so does this. TestDovecotFromLines holds it to Dovecot.
func dovecotFromLine(data []byte) bool {
	msg := data[len(fromPrefix):]
	n := len(msg)
	at := func(i int) byte {
		if i < n {
			return msg[i]
		}
		return 0
	}
	digit := func(i int) bool { return at(i) >= '0' && at(i) <= '9' }
	month := func(i int) bool {
		if at(i+3) != ' ' {
			return false
		}
		m := string(msg[i : i+3])
		return lookup3(months, []byte(m)) >= 0 || m == "???"
	}
	i := 0
	if i < n && msg[i] == '"' {
		esc := false
		for i++; i < n && (msg[i] != '"' || esc); i++ {
			if msg[i] == '\r' || msg[i] == '\n' {
				return false
			}
			esc = msg[i] == '\\'
		}
		i++
	}
	for ; i < n && msg[i] != ' '; i++ {
		if msg[i] == '\r' || msg[i] == '\n' {
			return false
		}
	}
	for i < n && msg[i] == ' ' {
		i++
	}
	if i+21 > n {
		return false
	}
	i += 4 // the weekday, unchecked
	alt := !month(i)
	if alt {
		// "Www, dd Mmm yyyy hh:mm[:ss]"
		i++
		if !digit(i) {
			return false
		}
		i++
		if digit(i) {
			i++
		}
		if at(i) != ' ' || i+4 > n || !month(i+1) {
			return false
		}
		i += 5
		if !digit(i) || !digit(i+1) || !digit(i+2) || !digit(i+3) {
			return false
		}
		i += 5
	} else {
		i += 4
		if at(i) == ' ' {
			i++
		}
		if at(i+1) == ' ' {
			if !digit(i) {
				return false
			}
			i += 2
		} else {
			if !digit(i) || !digit(i+1) || at(i+2) != ' ' {
				return false
			}
			i += 3
		}
	}
	if !digit(i) || !digit(i+1) || at(i+2) != ':' || !digit(i+3) || !digit(i+4) {
		return false
	}
	i += 5
	if at(i) == ':' {
		if !digit(i+1) || !digit(i+2) {
			return false
		}
		i += 3
		if !alt {
			if at(i) != ' ' {
				return false
			}
			i++
		}
	} else if !alt {
		if at(i) != ' ' {
			return false
		}
		i++
	}
	if alt {
		return true
	}
	if !digit(i) || !digit(i+1) || !digit(i+2) || !digit(i+3) {
		// A zone name before the year.
		for ; i < n && msg[i] != ' '; i++ {
			if msg[i] == '\r' || msg[i] == '\n' {
				return false
			}
		}
		if i+5 > n {
			return false
		}
		i++
	}
	return digit(i) && digit(i+1) && digit(i+2) && digit(i+3)
}

func clipLine(line []byte) []byte {
	line = trimEOL(line)
	if len(line) > snippetSize {
		line = line[:snippetSize]
	}
	return line
}

// returnPath returns the address of the first Return-Path field of a header block, without
// its angle brackets.
func returnPath(h []byte) string {
	var v string
	found := false
	eachField(h, func(name, raw []byte) {
		if !found && name != nil && bytes.EqualFold(name, []byte("Return-Path")) {
			found, v = true, fieldValue(raw)
		}
	})
	if i := strings.IndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := strings.IndexByte(v, '>'); j >= 0 {
			v = v[:j]
		}
	}
	return strings.TrimSpace(v)
}

// validSender reports whether s can stand as the sender of a From_ line: one word of
// printable ASCII that Dovecot and Reader both read whole.
func validSender(s string) bool {
	if s == "" || len(s) > maxSender || s[0] == '"' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// writeFrom writes the From_ line.
func (w *Writer) writeFrom(sender string, date time.Time) {
	w.out.WriteString("From ")
	w.out.WriteString(sender)
	w.out.WriteString("  ")
	w.out.WriteString(fromDate(date, w.loc))
	w.out.WriteByte('\n')
}

// fromDate formats date for a From_ line in loc, as Dovecot does, with the numeric offset
// after the year where the wall time alone would not name this instant.
func fromDate(date time.Time, loc *time.Location) string {
	local := date.In(loc)
	s := local.Format("Mon Jan 02 15:04:05 2006")
	if !uniqueWallTime(local) {
		s += local.Format(" -0700")
	}
	return s
}

// uniqueWallTime reports whether the wall time of t names t alone in its zone: not in an hour
// repeated or skipped by a change of offset. The offsets a day either side stand for every
// offset in force near t.
func uniqueWallTime(t time.Time) bool {
	loc := t.Location()
	y, mo, d := t.Date()
	hh, mm, ss := t.Clock()
	wall := time.Date(y, mo, d, hh, mm, ss, 0, time.UTC)
	found := 0
	seen := map[int]bool{}
	for _, near := range []time.Time{t.Add(-24 * time.Hour), t, t.Add(24 * time.Hour)} {
		_, off := near.Zone()
		if seen[off] {
			continue
		}
		seen[off] = true
		u := wall.Add(-time.Duration(off) * time.Second).In(loc)
		uy, umo, ud := u.Date()
		uh, um, us := u.Clock()
		if uy == y && umo == mo && ud == d && uh == hh && um == mm && us == ss {
			found++
		}
	}
	return found == 1
}

// writeHeader writes the message's header lines, the internal headers and the empty line
// after them.
func (w *Writer) writeHeader(m *Mail, h header) {
	at := 0
	for _, d := range w.drop {
		w.out.Write(w.hdr[at:d[0]])
		at = d[1]
	}
	w.out.Write(w.hdr[at:h.lines])
	if w.n == 0 {
		w.writeIMAPBase("X-IMAPbase")
	}
	w.out.WriteString("X-UID: ")
	w.out.WriteString(strconv.FormatUint(uint64(m.UID), 10))
	w.out.WriteString("\nStatus: ")
	if m.Flags&Seen != 0 {
		w.out.WriteByte('R')
	}
	if m.Flags&Old != 0 {
		w.out.WriteByte('O')
	}
	w.out.WriteByte('\n')
	if m.Flags&(Answered|Flagged|Draft|Deleted) != 0 {
		w.out.WriteString("X-Status: ")
		for _, f := range []struct {
			flag Flags
			c    byte
		}{{Answered, 'A'}, {Flagged, 'F'}, {Draft, 'T'}, {Deleted, 'D'}} {
			if m.Flags&f.flag != 0 {
				w.out.WriteByte(f.c)
			}
		}
		w.out.WriteByte('\n')
	}
	w.out.WriteString("X-Keywords:")
	for _, k := range m.Keywords {
		w.out.WriteByte(' ')
		w.out.WriteString(k)
	}
	w.out.WriteString(strings.Repeat(" ", keywordRoom))
	w.out.WriteString("\nContent-Length: ")
	w.out.WriteString(strconv.FormatInt(h.body, 10))
	w.out.WriteByte('\n')
	switch h.eoh {
	case 1:
		w.out.WriteByte('\n')
	case 2:
		w.out.WriteString("\r\n")
	}
}

// writeIMAPBase writes X-IMAPbase (or UW's X-IMAP) with the mailbox's UIDVALIDITY, last UID
// and keywords.
func (w *Writer) writeIMAPBase(name string) {
	fmt.Fprintf(w.out, "%s: %d %010d", name, w.opts.UIDValidity, w.opts.NextUID-1)
	for _, k := range w.opts.Keywords {
		w.out.WriteByte(' ')
		w.out.WriteString(k)
	}
	w.out.WriteByte('\n')
}

// writePseudo writes the message that carries an empty mailbox's UIDVALIDITY and next UID,
// as Dovecot does when every message of an mbox is expunged and as UW-IMAP always does:
// Dovecot and Reader recognise it by X-IMAP and hide it. Its date is the UIDVALIDITY, so
// that the same mailbox always gives the same bytes.
func (w *Writer) writePseudo() {
	host := w.opts.Host
	if host == "" {
		host = "localhost"
	}
	date := time.Unix(int64(w.opts.UIDValidity), 0)
	w.writeFrom("MAILER-DAEMON", date)
	w.out.WriteString("Date: " + date.In(w.loc).Format(time.RFC1123Z) + "\n")
	w.out.WriteString("From: Mail System Internal Data <MAILER-DAEMON@" + host + ">\n")
	w.out.WriteString("Subject: " + pseudoSubject + "\n")
	w.out.WriteString("Message-ID: <" + strconv.FormatUint(uint64(w.opts.UIDValidity), 10) + "@" + host + ">\n")
	w.writeIMAPBase("X-IMAP")
	w.out.WriteString("Status: RO\n\n")
	w.out.WriteString("This message is not mail: it keeps this folder's IMAP state (UIDVALIDITY and the\n" +
		"last UID given) for the mail server. Without it, mail clients would download the\n" +
		"folder again.\n\n")
}
