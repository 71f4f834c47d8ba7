package check

import (
	"encoding/json"
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
		path string
		st   unix.Stat_t
	}
	var found []spool
	if c.cfg.SpoolDir != "" && validUserName(c.user) {
		p := filepath.Join(c.cfg.SpoolDir, c.user)
		var st unix.Stat_t
		// The spool directory is root's; the file in it is the user's and may be anything, so
		// it is looked at, never opened.
		err := unix.Fstatat(unix.AT_FDCWD, p, &st, nofollow)
		if err == nil {
			found = append(found, spool{p, st})
		} else if !errors.Is(err, unix.ENOENT) {
			c.unchecked(p, &os.PathError{Op: "lstat", Path: p, Err: err})
		}
	}
	if c.cfg.Mailbox != "" && hfd >= 0 {
		p := filepath.Join(home, c.cfg.Mailbox)
		var st unix.Stat_t
		err := unix.Fstatat(hfd, c.cfg.Mailbox, &st, nofollow)
		if err == nil {
			found = append(found, spool{p, st})
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
		since, how := c.migratedAt(s.path)
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

// migratedAt returns when maildirmig last migrated src for the user, from the state directory
// (the "time" and "source" fields migrate writes), or the zero time.
func (c *checker) migratedAt(src string) (time.Time, string) {
	if c.cfg.StateDir == "" || !validUserName(c.user) {
		return time.Time{}, ""
	}
	b, err := os.ReadFile(filepath.Join(c.cfg.StateDir, c.user+".json"))
	if err != nil {
		return time.Time{}, ""
	}
	var st struct {
		Source string    `json:"source"`
		Time   time.Time `json:"time"`
	}
	if json.Unmarshal(b, &st) != nil {
		return time.Time{}, ""
	}
	// The state names the source as migrate saw it, possibly without --root; match on the
	// file name so that a state about ~/Mailbox says nothing about the spool.
	if st.Source != "" && filepath.Base(st.Source) != filepath.Base(src) {
		return time.Time{}, ""
	}
	// A second of slack: a truncation or rename under the lock may land just after the
	// state's time stamp was taken.
	return st.Time.Add(time.Second), "the migration"
}

func validUserName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "/\x00") && !strings.HasPrefix(name, ".")
}
