package maildir

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

const (
	uidlistName  = "dovecot-uidlist"
	keywordsName = "dovecot-keywords"
	maxKeywords  = 26
)

// maxUIDListLine bounds a line of dovecot-uidlist, and so the memory a reader
// needs. Dovecot 2.3 reads longer lines, but nothing it writes comes near: a
// file name has at most 255 bytes and the extension fields are short.
const maxUIDListLine = 64 * 1024

// uidlist is Dovecot's dovecot-uidlist: UIDVALIDITY, the next UID, the mailbox
// GUID and one line per listed message, in ascending UID order.
type uidlist struct {
	version  byte // '1' or '3'
	validity uint32
	next     uint32 // raised past the last line's UID, as Dovecot raises it
	headNext uint32 // the next UID the header says
	last     uint32 // the last line's UID, 0 without lines
	guid     string
	extra    []string          // other header fields, kept as read
	lines    []uidLine         // only from parseUIDList
	byBase   map[string]uint32 // only from parseUIDList
}

type uidLine struct {
	uid   uint32
	text  string // the whole line without its newline, as written
	base  string
	batch uint64 // a Writer's batch that must be moved in before the line is listed; 0 for none
}

// UIDListError reports a dovecot-uidlist that Dovecot would call broken. Dovecot
// deletes such a file and builds a new one: with a new UIDVALIDITY when the
// header is at fault, or with new UIDs for the messages from the faulty line on,
// and either way IMAP and POP3 clients download those messages again.
type UIDListError struct {
	Path   string // the file, where the caller named it
	Line   int    // 1 is the header
	Reason string
}

func (e *UIDListError) Error() string {
	path := e.Path
	if path == "" {
		path = uidlistName
	}
	return fmt.Sprintf("maildir: %s: line %d: %s", path, e.Line, e.Reason)
}

// CheckUIDList reads a dovecot-uidlist from r the way Dovecot 2.3 reads it, and
// returns a *UIDListError if Dovecot would call it broken, or the error of
// reading r. It is the parser the [Writer] keeps the file with, so what a
// check accepts is what the Writer can carry forward. It streams: its memory
// does not grow with the file, whose size the user decides.
func CheckUIDList(r io.Reader) error {
	_, err := scanUIDList(r, func(uidLine) error { return nil })
	return err
}

// parseUIDList reads version 3 (Dovecot 1.1 and later: "3 V<uidvalidity>
// N<nextuid> G<guid> ...", then "<uid> [<ext> ...] :<name>") and version 1
// (Courier's: "1 <uidvalidity> <nextuid>", then "<uid> <name>").
//
// What it calls broken is what Dovecot 2.3.19 calls broken, tried with doveadm
// (TestDovecotJudgesUIDLists): a header without a version digit and a space, an
// unparsable UIDVALIDITY, next UID or mailbox GUID, either of them zero, an
// empty line, a UID that is not above the one before or is 2^32-1, a version 3
// line without a " :<name>" field, a name with a slash, and in version 1 (only)
// a UID not below the next UID: in version 3 Dovecot raises the next UID
// instead, and so does this parser. A last line without a newline is a write in
// progress (Dovecot appends to the file in place) and Dovecot skips it, so this
// parser skips it too rather than call a file broken while Dovecot writes it.
// Stricter than Dovecot, only to bound memory: a line longer than 64 KiB.
// Looser than Dovecot, since UIDs survive it: an extension field whose key is
// not a capital letter, which Dovecot logs, drops and rewrites.
func parseUIDList(r io.Reader) (*uidlist, error) {
	var lines []uidLine
	byBase := map[string]uint32{}
	u, err := scanUIDList(r, func(l uidLine) error {
		lines = append(lines, l)
		byBase[l.base] = l.uid
		return nil
	})
	if err != nil {
		return nil, err
	}
	u.lines, u.byBase = lines, byBase
	return u, nil
}

// scanUIDList is parseUIDList without keeping the lines: it hands each one to
// each, in file order, and returns the header. Its memory does not grow with
// the file.
func scanUIDList(r io.Reader, each func(uidLine) error) (*uidlist, error) {
	br := bufio.NewReaderSize(r, maxUIDListLine)
	head, err := readUIDListLine(br, 1)
	if err == io.EOF {
		return nil, &UIDListError{Line: 1, Reason: "no complete header line"}
	}
	if err != nil {
		return nil, err
	}
	u := &uidlist{}
	if len(head) < 2 || head[1] != ' ' || (head[0] != '1' && head[0] != '3') {
		return nil, &UIDListError{Line: 1, Reason: fmt.Sprintf("header %.20q does not start with version 1 or 3 and a space", head)}
	}
	version := head[0]
	u.version = version
	if version == '3' {
		// Like Dovecot, a field is a key letter and a value up to the next
		// space; runs of spaces separate fields.
		for rest := head[2:]; rest != ""; {
			key := rest[0]
			value, after, _ := strings.Cut(rest[1:], " ")
			rest = strings.TrimLeft(after, " ")
			var err error
			switch key {
			case 'V':
				u.validity, err = parseUint32(value)
			case 'N':
				u.next, err = parseUint32(value)
			case 'G':
				if !isGUID(value) {
					err = errors.New("not 32 hex digits")
				}
				u.guid = value
			default:
				u.extra = append(u.extra, string(key)+value)
			}
			if err != nil {
				return nil, &UIDListError{Line: 1, Reason: fmt.Sprintf("header field %q: %v", string(key)+value, err)}
			}
		}
	} else {
		f := strings.Fields(head[2:])
		if len(f) < 2 {
			return nil, &UIDListError{Line: 1, Reason: fmt.Sprintf("version 1 header has %d fields, want 3", len(f)+1)}
		}
		var err1, err2 error
		u.validity, err1 = parseUint32(f[0])
		u.next, err2 = parseUint32(f[1])
		if err1 != nil || err2 != nil {
			return nil, &UIDListError{Line: 1, Reason: "version 1 header fields are not numbers"}
		}
	}
	if u.validity == 0 {
		return nil, &UIDListError{Line: 1, Reason: "UIDVALIDITY missing or zero"}
	}
	if u.next == 0 {
		return nil, &UIDListError{Line: 1, Reason: "next UID missing or zero"}
	}
	var last uint32
	for n := 2; ; n++ {
		line, err := readUIDListLine(br, n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		i := 0
		for i < len(line) && '0' <= line[i] && line[i] <= '9' {
			i++
		}
		if i == 0 || i == len(line) || line[i] != ' ' {
			return nil, &UIDListError{Line: n, Reason: "no UID and space at the start"}
		}
		uid, err := parseUint32(line[:i])
		switch {
		case err != nil || uid == math.MaxUint32:
			return nil, &UIDListError{Line: n, Reason: fmt.Sprintf("UID %s too high", line[:i])}
		case uid == 0:
			return nil, &UIDListError{Line: n, Reason: "UID 0"}
		case uid <= last:
			return nil, &UIDListError{Line: n, Reason: fmt.Sprintf("UID %d not above the previous %d", uid, last)}
		case version == '1' && uid >= u.next:
			return nil, &UIDListError{Line: n, Reason: fmt.Sprintf("UID %d not below the next UID %d", uid, u.next)}
		}
		last = uid
		name := strings.TrimLeft(line[i:], " ")
		if version == '3' {
			// Extension fields come first; the name is the rest of the
			// line after the first field that starts with a colon.
			for name != "" && name[0] != ':' {
				_, name, _ = strings.Cut(name, " ")
				name = strings.TrimLeft(name, " ")
			}
			if name == "" {
				return nil, &UIDListError{Line: n, Reason: "no \" :<file name>\" field"}
			}
			name = name[1:]
		} else {
			line = strconv.FormatUint(uint64(uid), 10) + " :" + name
		}
		if name == "" {
			return nil, &UIDListError{Line: n, Reason: "empty file name"}
		}
		if strings.Contains(name, "/") {
			return nil, &UIDListError{Line: n, Reason: fmt.Sprintf("file name %q has a slash", name)}
		}
		if err := each(uidLine{uid: uid, text: line, base: baseOf(name)}); err != nil {
			return nil, err
		}
	}
	u.headNext, u.last = u.next, last
	if u.next <= last {
		u.next = last + 1
	}
	return u, nil
}

// readUIDListLine returns line n without its newline, or io.EOF at the end,
// where an unterminated last line is still being written.
func readUIDListLine(br *bufio.Reader, n int) (string, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return "", &UIDListError{Line: n, Reason: "longer than 64 KiB"}
	}
	if err != nil {
		return "", err
	}
	return string(line[:len(line)-1]), nil
}

func isGUID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func parseUint32(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err
}

func baseOf(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return name[:i]
	}
	return name
}

func newGUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// parseKeywords reads dovecot-keywords: "<index> <name>" lines.
func parseKeywords(r io.Reader) ([maxKeywords]string, error) {
	var kw [maxKeywords]string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		idx, name, ok := strings.Cut(line, " ")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil || name == "" {
			return kw, fmt.Errorf("line %d: want \"<index> <name>\"", n)
		}
		if i < 0 || i >= maxKeywords {
			// Dovecot's Maildir keeps only 26 letters; higher indexes
			// cannot appear in a name, so they are not ours to map.
			continue
		}
		kw[i] = name
	}
	return kw, sc.Err()
}

func keywordsBytes(kw *[maxKeywords]string) []byte {
	var b bytes.Buffer
	for i, k := range kw {
		if k != "" {
			fmt.Fprintf(&b, "%d %s\n", i, k)
		}
	}
	return b.Bytes()
}

// maxSmallFile is the most bytes readSmallFile reads. The file it reads, dovecot-keywords,
// names at most 26 keywords of at most a few hundred bytes each: anything near this size was
// made to fill memory (a sparse file costs its user nothing).
const maxSmallFile = 1 << 20

// readSmallFile reads a control file of the Maildir without following a symlink, and refuses
// one larger than maxSmallFile. It returns nil, nil when the file does not exist.
func readSmallFile(dirfd int, name, display string) ([]byte, *unix.Stat_t, error) {
	f, st, err := openControl(dirfd, name, display)
	if f == nil || err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if st.Size > maxSmallFile {
		return nil, nil, fmt.Errorf("maildir: %s: %d bytes, more than the %d a %s can need: refused", display, st.Size, maxSmallFile, name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSmallFile+1))
	if err != nil {
		return nil, nil, fmt.Errorf("maildir: read %s: %w", display, err)
	}
	if len(b) > maxSmallFile {
		return nil, nil, fmt.Errorf("maildir: %s: grew past the %d bytes a %s can need while it was read: refused", display, maxSmallFile, name)
	}
	return b, st, nil
}

// openControl opens a control file of the Maildir for reading without
// following a symlink, and refuses anything but a regular file. It returns
// nil, nil, nil when the file does not exist.
func openControl(dirfd int, name, display string) (*os.File, *unix.Stat_t, error) {
	fd, err := safefs.Open(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return nil, nil, nil
	}
	if err == unix.ELOOP {
		return nil, nil, &unsafeError{display, "is a symlink (not followed)"}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("maildir: open %s: %w", display, err)
	}
	f := os.NewFile(uintptr(fd), display)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("maildir: stat %s: %w", display, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, nil, &unsafeError{display, "is not a regular file (" + FileType(st.Mode) + ")"}
	}
	return f, &st, nil
}

// UIDValidity returns the UIDVALIDITY of the Maildir's dovecot-uidlist, after
// reading the whole file as Dovecot would (a *UIDListError when Dovecot would
// call it broken). Without the file the error matches os.ErrNotExist.
func (d *Dir) UIDValidity() (uint32, error) {
	display := d.path + "/" + uidlistName
	f, _, err := openControl(d.fd, uidlistName, display)
	if err != nil {
		return 0, err
	}
	if f == nil {
		return 0, fmt.Errorf("maildir: %s: %w", display, os.ErrNotExist)
	}
	defer f.Close()
	u, err := scanUIDList(f, func(uidLine) error { return nil })
	if err != nil {
		if ue, ok := errors.AsType[*UIDListError](err); ok {
			ue.Path = display
			return 0, ue
		}
		return 0, fmt.Errorf("maildir: read %s: %w", display, err)
	}
	return u.validity, nil
}

// UIDListHeader is what the header of a dovecot-uidlist says, with the next UID
// raised past the last line's as Dovecot raises it.
type UIDListHeader struct {
	Validity uint32
	Next     uint32
}

// ScanUIDList reads the Maildir's dovecot-uidlist as Dovecot would and hands
// every line's UID and base name to each, in file order. Without the file it
// returns a zero header and ok false; a file Dovecot would call broken is a
// *UIDListError.
func (d *Dir) ScanUIDList(each func(uid uint32, base string)) (h UIDListHeader, ok bool, err error) {
	display := d.path + "/" + uidlistName
	f, _, err := openControl(d.fd, uidlistName, display)
	if err != nil || f == nil {
		return h, false, err
	}
	defer f.Close()
	u, err := scanUIDList(f, func(l uidLine) error {
		each(l.uid, l.base)
		return nil
	})
	if err != nil {
		if ue, ok := errors.AsType[*UIDListError](err); ok {
			ue.Path = display
			return h, false, ue
		}
		return h, false, fmt.Errorf("maildir: read %s: %w", display, err)
	}
	return UIDListHeader{Validity: u.validity, Next: u.next}, true, nil
}
