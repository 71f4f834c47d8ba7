package check

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// uidlist checks the dovecot-uidlist at path (est is its lstat) beneath the Maildir mfd. Dovecot
// calls a file it cannot parse broken and rebuilds it with a new UIDVALIDITY, so every IMAP
// client and every POP3 client that leaves mail on the server downloads the whole mailbox again.
func (c *checker) uidlist(mfd int, path string, est *unix.Stat_t) {
	switch {
	case est.Mode&unix.S_IFMT == unix.S_IFLNK:
		c.report(c.problem(Critical, Symlink, path, "dovecot-uidlist is a symlink"))
		return
	case est.Mode&unix.S_IFMT != unix.S_IFREG:
		c.report(c.problem(Critical, BadUIDList, path, "dovecot-uidlist is a "+typeName(est.Mode)+", not a regular file"))
		return
	case int(est.Uid) != c.uid:
		return // reported as an owner problem by the caller; not ours to read
	case est.Mode&0o400 == 0:
		c.report(c.problem(Critical, BadUIDList, path, fmt.Sprintf("dovecot-uidlist mode %04o: the user cannot read it", est.Mode&permBits)))
		return
	}
	fd, err := unix.Openat(mfd, "dovecot-uidlist", unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return // Dovecot replaced it while we looked
	}
	if err != nil {
		c.unchecked(path, &os.PathError{Op: "openat", Path: path, Err: err})
		return
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		c.unchecked(path, &os.PathError{Op: "fstat", Path: path, Err: err})
		return
	}
	// Read only the user's own file and nothing else's: a hard link to a file of someone
	// else's would have another owner or more than one link.
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != c.uid || st.Nlink != 1 {
		c.unchecked(path, errors.New("dovecot-uidlist changed while checking or has several links"))
		return
	}
	if err := parseUIDList(f); err != nil {
		c.report(c.problem(Critical, BadUIDList, path,
			"Dovecot will rebuild it with a new UIDVALIDITY and clients will download everything again: "+err.Error()))
	}
}

// parseUIDList validates a dovecot-uidlist in the versions Dovecot reads: 3 (Dovecot 1.1 and
// later: "3 V<uidvalidity> N<nextuid> G<guid> ...", then "<uid> [<ext> ...] :<name>") and 1
// (Courier's: "1 <uidvalidity> <nextuid>", then "<uid> <name>"). UIDs must be ascending and
// below the next UID.
func parseUIDList(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64*1024)
	line, err := readLine(br)
	if err == io.EOF {
		return errors.New("empty file")
	}
	if err != nil {
		return err
	}
	head := strings.Fields(line)
	if len(head) == 0 {
		return errors.New("line 1: empty header")
	}
	var validity, next uint64
	version := head[0]
	switch version {
	case "3":
		for _, f := range head[1:] {
			var err error
			switch f[0] {
			case 'V':
				validity, err = strconv.ParseUint(f[1:], 10, 32)
			case 'N':
				next, err = strconv.ParseUint(f[1:], 10, 32)
			}
			if err != nil {
				return fmt.Errorf("line 1: header field %q is not a number", f)
			}
		}
	case "1":
		if len(head) != 3 {
			return fmt.Errorf("line 1: version 1 header has %d fields, want 3", len(head))
		}
		var err1, err2 error
		validity, err1 = strconv.ParseUint(head[1], 10, 32)
		next, err2 = strconv.ParseUint(head[2], 10, 32)
		if err1 != nil || err2 != nil {
			return errors.New("line 1: version 1 header fields are not numbers")
		}
	default:
		return fmt.Errorf("line 1: unknown version %q", version)
	}
	if validity == 0 {
		return errors.New("line 1: UIDVALIDITY missing or zero")
	}
	if next == 0 {
		return errors.New("line 1: next UID missing or zero")
	}
	var last uint64
	for n := 2; ; n++ {
		line, err := readLine(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		uidText, rest, ok := strings.Cut(line, " ")
		uid, err := strconv.ParseUint(uidText, 10, 32)
		if !ok || err != nil || uid == 0 {
			return fmt.Errorf("line %d: no UID at the start", n)
		}
		name := rest
		if version == "3" {
			i := strings.Index(rest, ":")
			if i < 0 || (i > 0 && rest[i-1] != ' ') {
				return fmt.Errorf("line %d: no \" :<file name>\" field", n)
			}
			name = rest[i+1:]
		}
		if name == "" {
			return fmt.Errorf("line %d: empty file name", n)
		}
		if uid <= last {
			return fmt.Errorf("line %d: UID %d not above the previous %d", n, uid, last)
		}
		if uid >= next {
			return fmt.Errorf("line %d: UID %d not below the next UID %d", n, uid, next)
		}
		last = uid
	}
}

// readLine returns the next line without its newline; a line longer than the reader's buffer is
// an error rather than unbounded memory.
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return "", errors.New("line longer than 64 KiB")
	}
	if err == io.EOF && len(line) > 0 {
		err = nil // a last line without newline
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(line), "\n"), nil
}
