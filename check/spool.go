package check

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Hints for the spool problems, worded for the administrator who reads the cron mail.
const (
	hintPostfix = "set home_mailbox = Maildir/ in Postfix's main.cf (postconf -e home_mailbox=Maildir/) and run postfix reload, then migrate again to pick up what arrived"
	hintMigrate = "migrate the user with maildirmig mbox --user NAME (or maildirmig Mailbox for ~/Mailbox)"
)

// spools looks for mail that still arrives in an mbox: the user's spool file and their home
// mbox (Config.Mailbox, opened beneath the home descriptor hfd, or skipped when hfd < 0). md is
// the user's checked Maildir, nil when there is none (exists false) or it is not a usable
// directory (exists true: already reported, and nothing to compare with).
func (c *checker) spools(hfd int, home string, md *maildirInfo, exists bool) {
	type spool struct {
		path    string
		st      unix.Stat_t
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
			found = append(found, spool{p, st, false})
		} else if !errors.Is(err, unix.ENOENT) {
			c.unchecked(p, &os.PathError{Op: "lstat", Path: p, Err: err})
		}
	}
	if c.cfg.Mailbox != "" && hfd >= 0 {
		p := filepath.Join(home, c.cfg.Mailbox)
		var st unix.Stat_t
		err := unix.Fstatat(hfd, c.cfg.Mailbox, &st, nofollow)
		if err == nil {
			found = append(found, spool{p, st, true})
		} else if !errors.Is(err, unix.ENOENT) {
			c.unchecked(p, &os.PathError{Op: "fstatat", Path: p, Err: err})
		}
	}
	for _, s := range found {
		if s.st.Mode&unix.S_IFMT != unix.S_IFREG || s.st.Size == 0 {
			continue
		}
		changed := mtime(&s.st)
		if md == nil && exists {
			continue
		}
		if md == nil {
			p := c.problem(Warning, NotMigrated, s.path,
				fmt.Sprintf("mbox holds %d bytes of mail and there is no %s", s.st.Size, c.cfg.Maildir))
			p.Hint = hintMigrate
			c.report(p)
			continue
		}
		since, how, err := c.migratedAt(s.path, s.mailbox)
		if err != nil {
			// Without the time of the migration the Maildir's would hide a spool still
			// receiving mail once the user has read some: say so rather than guess.
			c.unchecked(s.path, err)
			continue
		}
		if since.IsZero() {
			since, how = md.newest, "the Maildir last changed"
		}
		if changed.After(since) {
			p := c.problem(Warning, SpoolReceiving, s.path, fmt.Sprintf(
				"mbox (%d bytes) changed at %s, after %s (%s): the MTA still delivers to it",
				s.st.Size, changed.UTC().Format(time.RFC3339), how, since.UTC().Format(time.RFC3339)))
			p.Hint = hintPostfix
			c.report(p)
		}
	}
}

// migratedAt returns when src was last migrated for the user, with a second of slack (a
// truncation or rename under the lock may land just after the state's time was taken), or
// the zero time when it never was or Config.Migrated is not set.
func (c *checker) migratedAt(src string, mailbox bool) (time.Time, string, error) {
	if c.cfg.Migrated == nil {
		return time.Time{}, "", nil
	}
	t, err := c.cfg.Migrated(c.user, src, mailbox)
	if err != nil || t.IsZero() {
		return time.Time{}, "", err
	}
	return t.Add(time.Second), "the migration", nil
}

func validUserName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "/\x00") && !strings.HasPrefix(name, ".")
}
