package migrate

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/maildir"
)

// uidListing is what a Maildir's dovecot-uidlist says, for telling deleted messages apart.
type uidListing struct {
	Validity uint32      `json:"validity"`
	Next     uint32      `json:"next"`
	Listed   [][2]uint32 `json:"listed,omitempty"` // listed UIDs, as ascending runs first..last
}

// has reports whether uid is listed.
func (l *uidListing) has(uid uint32) bool {
	for _, r := range l.Listed {
		if r[0] <= uid && uid <= r[1] {
			return true
		}
	}
	return false
}

// readUIDListing reads the dovecot-uidlist of d; nil when there is none or it cannot be read
// (every missing message then counts as lost).
func readUIDListing(d *maildir.Dir) *uidListing {
	fd, err := unix.Openat(d.FD(), "dovecot-uidlist", unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), "dovecot-uidlist")
	defer f.Close()
	if err := maildir.CheckUIDList(f); err != nil {
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil
	}
	br := bufio.NewReader(f)
	head, err := br.ReadString('\n')
	if err != nil {
		return nil
	}
	l := &uidListing{}
	if f := strings.Fields(head); len(f) > 0 && f[0] == "3" {
		for _, field := range f[1:] {
			v, err := strconv.ParseUint(field[1:], 10, 32)
			switch {
			case err != nil:
			case field[0] == 'V':
				l.Validity = uint32(v)
			case field[0] == 'N':
				l.Next = uint32(v)
			}
		}
	} else if len(f) >= 3 {
		v, err1 := strconv.ParseUint(f[1], 10, 32)
		n, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil {
			return nil
		}
		l.Validity, l.Next = uint32(v), uint32(n)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			// An unterminated last line is still being written: not listed yet.
			break
		}
		a, _, _ := strings.Cut(line, " ")
		v, err := strconv.ParseUint(a, 10, 32)
		if err != nil {
			return nil
		}
		uid := uint32(v)
		if n := len(l.Listed); n > 0 && l.Listed[n-1][1]+1 == uid {
			l.Listed[n-1][1] = uid
		} else {
			l.Listed = append(l.Listed, [2]uint32{uid, uid})
		}
		if uid >= l.Next {
			l.Next = uid + 1
		}
	}
	return l
}

// sortDeleted moves from res.Missing to res.Deleted the messages the user deleted through
// Dovecot: their recorded UID is no longer in the Maildir's dovecot-uidlist, which has the
// UIDVALIDITY the migration recorded and a next UID above theirs. Without the UID records,
// a dovecot-uidlist or that UIDVALIDITY, every missing message stays missing.
func sortDeleted(res *VerifyResult, lookup func(want map[int64]bool) (map[int64]uint32, error), validity uint32) error {
	l := res.Listing
	res.Listing = nil
	lost := res.Lost
	res.Lost = nil
	if len(lost) == 0 || l == nil || validity == 0 || l.Validity != validity {
		return nil
	}
	want := make(map[int64]bool, len(lost))
	for _, m := range lost {
		want[m.Pos] = true
	}
	uids, err := lookup(want)
	if err != nil {
		return err
	}
	gone := make(map[int]bool)
	for _, m := range lost {
		if uid := uids[m.Pos]; uid != 0 && uid < l.Next && !l.has(uid) {
			gone[m.Missing] = true
		}
	}
	if len(gone) == 0 {
		return nil
	}
	missing := res.Missing[:0:0]
	for i, s := range res.Missing {
		if gone[i] {
			res.Deleted = append(res.Deleted, s)
		} else {
			missing = append(missing, s)
		}
	}
	res.Missing = missing
	return nil
}
