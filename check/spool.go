package check

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/maildirmig/maildirmig/mbox"
	"golang.org/x/sys/unix"
)

// Hints for the spool problems, worded for the administrator who reads the cron mail.
const (
	hintPostfix = "set home_mailbox = Maildir/ in Postfix's main.cf (postconf -e home_mailbox=Maildir/) and run postfix reload, then migrate again to pick up what arrived"
	hintMigrate = "migrate the user with maildirmig mbox --user NAME (or maildirmig Mailbox for ~/Mailbox)"
)

// spools looks for mail that still arrives in an mbox of u's: their spool file, looked at
// here, and their home mbox (Config.Mailbox), which the work in the home looked at (res). res
// also says whether u has a Maildir and when it last changed.
func (c *checker) spools(u User, res *HomeResult) {
	type spool struct {
		path    string
		st      *FileStat
		mailbox bool // in the home, not the spool directory
	}
	var found []spool
	if c.cfg.SpoolDir != "" && validUserName(c.user) {
		p := filepath.Join(c.cfg.SpoolDir, c.user)
		var st unix.Stat_t
		// The spool directory is root's; the file in it is the user's and may be anything, so
		// it is looked at, never opened.
		err := unix.Fstatat(unix.AT_FDCWD, p, &st, nofollow)
		if err == nil {
			found = append(found, spool{p, fileStat(&st), false})
		} else if !errors.Is(err, unix.ENOENT) {
			c.unchecked(p, &os.PathError{Op: "lstat", Path: p, Err: err})
		}
	}
	if res.Mailbox != nil {
		found = append(found, spool{filepath.Join(u.Home, c.cfg.Mailbox), res.Mailbox, true})
	}
	for _, s := range found {
		if s.st.Mode&unix.S_IFMT != unix.S_IFREG || s.st.Size == 0 {
			continue
		}
		if !res.Usable && res.Exists {
			continue
		}
		if !res.Usable {
			p := c.problem(Warning, NotMigrated, s.path,
				fmt.Sprintf("mbox holds %d bytes of mail and there is no %s", s.st.Size, c.cfg.Maildir))
			p.Hint = hintMigrate
			c.report(p)
			continue
		}
		var m *Migration
		if c.cfg.Migrated != nil {
			var err error
			if m, err = c.cfg.Migrated(c.user, s.path, s.mailbox); err != nil {
				// Without the migration's record a spool still receiving mail could hide
				// behind the Maildir's time: say so rather than guess.
				c.unchecked(s.path, err)
				continue
			}
		}
		if m != nil {
			c.arrived(s.path, s.st, m, !s.mailbox)
			continue
		}
		// Never migrated by maildirmig: a spool changed after the Maildir last changed is the
		// best sign there is.
		if changed := s.st.Mtime; changed.After(res.Newest) {
			p := c.problem(Warning, SpoolReceiving, s.path, fmt.Sprintf(
				"mbox (%d bytes) changed at %s, after the Maildir last changed (%s), and no pass migrated it: the MTA still delivers to it",
				s.st.Size, changed.UTC().Format(time.RFC3339), res.Newest.UTC().Format(time.RFC3339)))
			p.Hint = hintPostfix
			c.report(p)
		}
	}
}

// arrived reports mail that reached the mbox at path (lstat st) since the last pass m: bytes
// past what it migrated, or another file in its place. A spool (count) is read to count the
// messages; root does not open an mbox in a home.
func (c *checker) arrived(path string, st *FileStat, m *Migration, count bool) {
	replaced := m.Dev != 0 && m.Inode != 0 && (st.Dev != m.Dev || st.Ino != m.Inode)
	from := m.Offset
	if replaced {
		from = 0
	}
	if !replaced && st.Size <= m.Offset {
		return
	}
	what := fmt.Sprintf("%d bytes", st.Size-from)
	if count {
		if n, err := countMessages(path, st, from, c.uid); err == nil {
			what = fmt.Sprintf("%d bytes (%d messages)", st.Size-from, n)
		} else if errors.Is(err, errNotOwn) {
			what += fmt.Sprintf(" (not read: %v)", err)
		}
	}
	detail := what + " arrived after the last pass: the MTA still delivers to it"
	if replaced {
		detail = "another file is there since the last pass, with " + what + ": the MTA still delivers to it"
	}
	p := c.problem(Warning, SpoolReceiving, path, "mbox: "+detail)
	p.Hint = hintPostfix
	c.report(p)
}

// countLimit is the most bytes of a spool countMessages reads.
const countLimit = 64 << 20

// errNotOwn is wrapped by countMessages's refusal of a spool that is not its user's own file:
// a hard link to someone else's file, or to one of the user's own elsewhere.
var errNotOwn = errors.New("not the user's own file with one link")

// countMessages counts the messages of the spool path from offset from, reading it as root
// reads spools: without following a symlink, only the regular file of st's inode, owned by
// uid with one link, at most countLimit bytes.
func countMessages(path string, st *FileStat, from int64, uid int) (int, error) {
	if int(st.UID) != uid || st.Nlink != 1 {
		return 0, fmt.Errorf("%w (owner uid %d, %d links)", errNotOwn, st.UID, st.Nlink)
	}
	if st.Size-from > countLimit {
		return 0, fmt.Errorf("check: %s: more than %d bytes to count", path, countLimit)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil || now.Ino != st.Ino || uint64(now.Dev) != st.Dev || now.Mode&unix.S_IFMT != unix.S_IFREG ||
		int(now.Uid) != uid || now.Nlink != 1 {
		return 0, fmt.Errorf("check: %s: changed while it was looked at", path)
	}
	n, err := mbox.Count(io.NewSectionReader(f, from, st.Size-from), st.Size-from, mbox.Options{})
	return int(n), err
}

func validUserName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "/\x00") && !strings.HasPrefix(name, ".")
}
