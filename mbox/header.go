package mbox

import (
	"bytes"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Meta holds the mbox-internal headers that mail servers keep in a message's header block:
// flags, keywords and IMAP UIDs written by Dovecot, UW c-client, mutt and others.
type Meta struct {
	Status        string    // value of Status:, trimmed ("" when absent)
	HasStatus     bool      // Status: is present, possibly empty
	XStatus       string    // value of X-Status:, trimmed
	HasXStatus    bool      // X-Status: is present, possibly empty
	Keywords      []string  // X-Keywords split on white space and commas
	UID           uint32    // X-UID, 0 when absent or invalid
	IMAPBase      *IMAPBase // from X-IMAPbase (Dovecot/c-client) or X-IMAP (UW pseudo-message), nil when absent
	ContentLength int64     // -1 when absent or invalid
}

// IMAPBase is the mailbox-wide IMAP state that X-IMAPbase (or UW's X-IMAP) carries in the first
// message of a folder.
type IMAPBase struct {
	UIDValidity uint32
	LastUID     uint32   // the second field: the last UID used, not the next one
	Keywords    []string // keyword names after the two numbers
	UW          bool     // came from X-IMAP in a UW-IMAP pseudo-message
}

// pseudoSubject is the subject UW-IMAP and Pine give the message that holds folder data.
const pseudoSubject = "DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA"

// metaNames are the headers StripMeta removes.
var metaNames = [][]byte{
	[]byte("Status"), []byte("X-Status"), []byte("X-Keywords"), []byte("X-UID"),
	[]byte("X-IMAP"), []byte("X-IMAPbase"), []byte("Content-Length"),
}

// eachField calls fn for every field of a raw header block, with the field's name (nil for a
// line that is no field, and for the empty line ending the block) and its raw bytes including
// continuation lines and line ends. Concatenating every raw gives back h.
func eachField(h []byte, fn func(name, raw []byte)) {
	for len(h) > 0 {
		end := lineEnd(h, 0)
		line := h[:end]
		if isEmptyLine(line) {
			fn(nil, h)
			return
		}
		name := fieldName(line)
		for end < len(h) && (h[end] == ' ' || h[end] == '\t') && !isEmptyLine(h[end:lineEnd(h, end)]) {
			end = lineEnd(h, end)
		}
		if name == nil && (line[0] == ' ' || line[0] == '\t') {
			// A continuation with no field before it: keep it on its own.
			end = lineEnd(h, 0)
		}
		fn(name, h[:end])
		h = h[end:]
	}
}

// lineEnd returns the index after the line that starts at i.
func lineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}

func isEmptyLine(line []byte) bool {
	return (len(line) == 1 && line[0] == '\n') || (len(line) == 2 && line[0] == '\r' && line[1] == '\n')
}

// fieldName returns the name of the field that line starts, or nil when it starts none.
func fieldName(line []byte) []byte {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil
	}
	name := bytes.TrimRight(line[:colon], " \t")
	if len(name) == 0 || bytes.ContainsAny(name, " \t\r\n") {
		return nil
	}
	return name
}

// fieldValue returns the unfolded, trimmed value of a raw field.
func fieldValue(raw []byte) string {
	colon := bytes.IndexByte(raw, ':')
	v := raw[colon+1:]
	if bytes.IndexByte(v, '\n') >= 0 {
		v = bytes.ReplaceAll(v, []byte("\n"), nil)
		v = bytes.ReplaceAll(v, []byte("\r"), nil)
	}
	return string(bytes.TrimSpace(v))
}

func isMetaName(name []byte) bool {
	for _, n := range metaNames {
		if bytes.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// headerInfo is what the reader learns from a header block.
type headerInfo struct {
	meta    Meta
	subject string
	xIMAP   *IMAPBase
}

func parseHeader(h []byte) headerInfo {
	info := headerInfo{meta: Meta{ContentLength: -1}}
	m := &info.meta
	var hasKeywords, hasUID, hasCL, hasSubject bool
	var base *IMAPBase
	eachField(h, func(name, raw []byte) {
		if name == nil {
			return
		}
		switch {
		case !m.HasStatus && bytes.EqualFold(name, []byte("Status")):
			m.HasStatus, m.Status = true, fieldValue(raw)
		case !m.HasXStatus && bytes.EqualFold(name, []byte("X-Status")):
			m.HasXStatus, m.XStatus = true, fieldValue(raw)
		case !hasKeywords && bytes.EqualFold(name, []byte("X-Keywords")):
			hasKeywords = true
			m.Keywords = splitKeywords(fieldValue(raw))
		case !hasUID && bytes.EqualFold(name, []byte("X-UID")):
			hasUID = true
			if n, err := strconv.ParseUint(fieldValue(raw), 10, 32); err == nil {
				m.UID = uint32(n)
			}
		case base == nil && bytes.EqualFold(name, []byte("X-IMAPbase")):
			base = parseIMAPBase(fieldValue(raw))
		case info.xIMAP == nil && bytes.EqualFold(name, []byte("X-IMAP")):
			info.xIMAP = parseIMAPBase(fieldValue(raw))
			if info.xIMAP != nil {
				info.xIMAP.UW = true
			}
		case !hasCL && bytes.EqualFold(name, []byte("Content-Length")):
			hasCL = true
			if n, err := strconv.ParseInt(fieldValue(raw), 10, 64); err == nil && n >= 0 {
				m.ContentLength = n
			}
		case !hasSubject && bytes.EqualFold(name, []byte("Subject")):
			hasSubject = true
			info.subject = fieldValue(raw)
		}
	})
	m.IMAPBase = base
	if base == nil {
		m.IMAPBase = info.xIMAP
	}
	return info
}

func splitKeywords(v string) []string {
	k := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(k) == 0 {
		return nil
	}
	return k
}

func parseIMAPBase(v string) *IMAPBase {
	f := strings.Fields(v)
	if len(f) < 2 {
		return nil
	}
	validity, err1 := strconv.ParseUint(f[0], 10, 32)
	last, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil {
		return nil
	}
	b := &IMAPBase{UIDValidity: uint32(validity), LastUID: uint32(last)}
	if len(f) > 2 {
		b.Keywords = f[2:]
	}
	return b
}

// StripMeta returns the header block without the mbox-internal headers Status, X-Status,
// X-Keywords, X-UID, X-IMAP, X-IMAPbase and Content-Length (names compared without regard to
// case, each with its folded continuation lines). Everything else is kept byte for byte,
// including the empty line that ends the block.
func StripMeta(header []byte) []byte {
	out := make([]byte, 0, len(header))
	eachField(header, func(name, raw []byte) {
		if name == nil || !isMetaName(name) {
			out = append(out, raw...)
		}
	})
	return out
}

// DateHeader returns the parsed Date: header of a raw header block, ok false when it is absent
// or unparseable. It follows net/mail.ParseDate and also accepts common junk: a trailing
// comment or zone name, a missing weekday comma, two-digit years, asctime dates.
func DateHeader(header []byte) (time.Time, bool) {
	var v string
	found := false
	eachField(header, func(name, raw []byte) {
		if !found && name != nil && bytes.EqualFold(name, []byte("Date")) {
			found = true
			v = fieldValue(raw)
		}
	})
	if !found || v == "" {
		return time.Time{}, false
	}
	return parseDate(v)
}

var dateLayouts = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04 -0700",
	"Mon, 2 Jan 06 15:04:05 -0700",
	"Mon, 2 Jan 06 15:04:05 MST",
	"2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04:05 MST",
	"2 Jan 06 15:04:05 -0700",
	"Mon 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05",
	"2 Jan 2006 15:04:05",
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 -0700 2006",
	"Mon Jan 2 15:04:05 MST 2006",
	"Mon, Jan 2 2006 15:04:05 -0700",
	time.RFC3339,
}

func parseDate(v string) (time.Time, bool) {
	if t, err := mail.ParseDate(v); err == nil {
		return t, true
	}
	s := v
	// Drop comments such as "(PDT)" or "(envelope-from ...)".
	for {
		i := strings.IndexByte(s, '(')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], ')')
		if j < 0 {
			s = s[:i]
			break
		}
		s = s[:i] + " " + s[i+j+1:]
	}
	s = strings.Join(strings.Fields(s), " ")
	s = strings.TrimRight(s, " .,;")
	if t, err := mail.ParseDate(s); err == nil {
		return t, true
	}
	// A weekday without its comma is common.
	if len(s) > 4 && s[3] == ' ' && lookup3(weekdays, []byte(s[:3])) >= 0 {
		if t, err := mail.ParseDate(s[:3] + "," + s[3:]); err == nil {
			return t, true
		}
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	// A zone name after a numeric offset ("+0200 CEST") confuses the layouts above.
	if f := strings.Fields(s); len(f) > 1 && isNumericZone([]byte(f[len(f)-2])) {
		return parseDate(strings.Join(f[:len(f)-1], " "))
	}
	return time.Time{}, false
}
