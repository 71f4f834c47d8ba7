package maildir

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	uidlistName  = "dovecot-uidlist"
	keywordsName = "dovecot-keywords"
	maxKeywords  = 26
)

// uidlist is Dovecot's dovecot-uidlist: UIDVALIDITY, the next UID, the mailbox
// GUID and one line per listed message, in ascending UID order.
type uidlist struct {
	exists   bool
	validity uint32
	next     uint32
	guid     string
	extra    []string // other header fields, kept as read
	lines    []uidLine
	byBase   map[string]uint32
}

type uidLine struct {
	uid  uint32
	text string // the whole line without its newline, as written
	base string
}

// parseUidlist reads version 3 (Dovecot 1.1 and later) and version 1
// (Courier-compatible) files.
func parseUidlist(r io.Reader) (*uidlist, error) {
	u := &uidlist{exists: true, byBase: map[string]uint32{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("empty file")
	}
	head := strings.Fields(sc.Text())
	if len(head) == 0 {
		return nil, fmt.Errorf("empty header")
	}
	version := head[0]
	switch version {
	case "3":
		for _, f := range head[1:] {
			var err error
			switch f[0] {
			case 'V':
				u.validity, err = parseUint32(f[1:])
			case 'N':
				u.next, err = parseUint32(f[1:])
			case 'G':
				u.guid = f[1:]
			default:
				u.extra = append(u.extra, f)
			}
			if err != nil {
				return nil, fmt.Errorf("header field %q: %w", f, err)
			}
		}
	case "1":
		if len(head) != 3 {
			return nil, fmt.Errorf("version 1 header %q: want 3 fields", sc.Text())
		}
		var err1, err2 error
		u.validity, err1 = parseUint32(head[1])
		u.next, err2 = parseUint32(head[2])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("version 1 header %q: not numbers", sc.Text())
		}
	default:
		return nil, fmt.Errorf("unsupported version %q", version)
	}
	if u.validity == 0 {
		return nil, fmt.Errorf("no UIDVALIDITY in header")
	}
	for n := 2; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		sp := strings.IndexByte(line, ' ')
		if sp < 0 {
			return nil, fmt.Errorf("line %d: no file name", n)
		}
		uid, err := parseUint32(line[:sp])
		if err != nil || uid == 0 {
			return nil, fmt.Errorf("line %d: bad uid %q", n, line[:sp])
		}
		var name string
		if version == "1" {
			name = line[sp+1:]
			line = strconv.FormatUint(uint64(uid), 10) + " :" + name
		} else {
			i := strings.Index(line, " :")
			if i < 0 {
				return nil, fmt.Errorf("line %d: no \" :\" before the file name", n)
			}
			name = line[i+2:]
		}
		if len(u.lines) > 0 && uid <= u.lines[len(u.lines)-1].uid {
			return nil, fmt.Errorf("line %d: uid %d not above the previous", n, uid)
		}
		base := baseOf(name)
		u.lines = append(u.lines, uidLine{uid: uid, text: line, base: base})
		u.byBase[base] = uid
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(u.lines) > 0 && u.next <= u.lines[len(u.lines)-1].uid {
		u.next = u.lines[len(u.lines)-1].uid + 1
	}
	if u.next == 0 {
		u.next = 1
	}
	return u, nil
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

func (u *uidlist) add(uid uint32, base string) {
	u.lines = append(u.lines, uidLine{uid: uid, text: strconv.FormatUint(uint64(uid), 10) + " :" + base, base: base})
	u.byBase[base] = uid
}

func (u *uidlist) bytes() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "3 V%d N%d G%s", u.validity, u.next, u.guid)
	for _, f := range u.extra {
		b.WriteString(" " + f)
	}
	b.WriteByte('\n')
	for _, l := range u.lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.Bytes()
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

// readSmallFile reads a control file of the Maildir without following a symlink.
// It returns nil, nil when the file does not exist.
func readSmallFile(dirfd int, name, display string) ([]byte, *unix.Stat_t, error) {
	fd, err := openBeneath(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC)
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
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, nil, fmt.Errorf("maildir: stat %s: %w", display, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil, &unsafeError{display, "is not a regular file (" + fileType(st.Mode) + ")"}
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<30))
	if err != nil {
		return nil, nil, fmt.Errorf("maildir: read %s: %w", display, err)
	}
	return b, &st, nil
}
