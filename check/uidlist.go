package check

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/maildir"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// uidlist checks the dovecot-uidlist at path (est is its lstat) beneath the Maildir mfd. Dovecot
// calls a file it cannot parse broken and rebuilds it, with a new UIDVALIDITY when the header is
// at fault, else with new UIDs from the faulty line on, so every IMAP client and every POP3
// client that leaves mail on the server downloads those messages again. The format is
// maildir's: the Writer carries the file forward with the same parser, so check and the Writer
// cannot disagree on it. Which file to read, and whose, stays here.
func (c *walker) uidlist(mfd int, path string, est *unix.Stat_t) {
	switch {
	case est.Mode&unix.S_IFMT == unix.S_IFLNK:
		c.report(c.problem(Critical, Symlink, path, "dovecot-uidlist is a symlink"))
		return
	case est.Mode&unix.S_IFMT != unix.S_IFREG:
		c.report(c.problem(Critical, BadUIDList, path, "dovecot-uidlist is a "+maildir.FileType(est.Mode)+", not a regular file"))
		return
	case int(est.Uid) != c.uid:
		return // reported as an owner problem by the caller; not ours to read
	case est.Mode&0o400 == 0:
		c.report(c.problem(Critical, BadUIDList, path, fmt.Sprintf("dovecot-uidlist mode %04o: the user cannot read it", est.Mode&permBits)))
		return
	}
	fd, err := safefs.Open(mfd, "dovecot-uidlist", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
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
	err = maildir.CheckUIDList(workReader{f, c.h})
	if ue, ok := errors.AsType[*maildir.UIDListError](err); ok {
		c.report(c.problem(Critical, BadUIDList, path, fmt.Sprintf(
			"Dovecot will rebuild it with a new UIDVALIDITY or new UIDs, and clients will download the messages again: line %d: %s",
			ue.Line, ue.Reason)))
	} else if err != nil {
		c.unchecked(path, err) // the *os.File names the path
	}
}

// workReader reads r, telling h of the bytes read as work.
type workReader struct {
	r io.Reader
	h *Home
}

func (w workReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 && w.h.Work != nil {
		w.h.Work(int64(n))
	}
	return n, err
}
