package check

import (
	"context"
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/worker"
)

// hintStalled is the hint of a home whose check was given up on for making no progress.
const hintStalled = "the home did not answer for --stall-timeout (a hung NFS or FUSE mount, a user who stopped the check): look at the mount, or raise --stall-timeout if the home is only slow"

// checker is root's side of the check of one user or one path: it hands the work inside the
// home to Config.AsUser, records what comes back into its own report, and looks at the
// spool itself.
type checker struct {
	cfg    *Config
	r      *Report
	listed map[Kind]int
	user   string // "" for an explicit path
	uid    int
}

func newChecker(cfg *Config, r *Report) *checker {
	return &checker{cfg: cfg, r: r, listed: map[Kind]int{}}
}

func (c *checker) problem(sev Severity, kind Kind, path, detail string) *Problem {
	return &Problem{Severity: sev, Kind: kind, User: c.user, Path: path, Detail: detail}
}

func (c *checker) report(p *Problem) {
	if p.Fixed != "" && c.cfg.OnFix != nil {
		c.cfg.OnFix(*p)
	}
	c.r.add(*p, c.listed, c.cfg.MaxListed)
}

func (c *checker) unchecked(path string, err error) {
	c.report(c.problem(Unknown, Unchecked, path, "cannot check: "+errText(err)))
}

// home is the work inside the home of u, or in the Maildir at path when path is set.
func (c *checker) home(u User, path string) *Home {
	return &Home{
		User: u, Maildir: c.cfg.Maildir, Mailbox: c.cfg.Mailbox, Path: path,
		Fix: c.cfg.Fix, Now: c.cfg.Now, StaleTmp: c.cfg.StaleTmp, MaxFolders: c.cfg.MaxFolders,
		Problem: func(p Problem) { c.report(&p) },
	}
}

// checkUser checks u's Maildir (and its folders) as u, then u's spool files as root: the spool
// directory and the state directory are root's.
func (c *checker) checkUser(ctx context.Context, u User) {
	c.r.Users++
	c.user, c.uid = u.Name, u.UID
	res, ok := c.do(ctx, c.home(u, ""), u.Home)
	if ok {
		c.spools(u, &res)
	}
}

// checkPath checks an explicit Maildir as its owner: whoever owns the path (not following a
// symlink) is whom the work runs as. One that cannot be looked at is checked as this process,
// which reports why.
func (c *checker) checkPath(ctx context.Context, p string) {
	var u User
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		u.UID, u.GID = int(st.Uid), int(st.Gid)
	}
	h := c.home(u, p)
	h.Dir, _ = os.Getwd()
	c.do(ctx, h, p)
}

// do runs h as its user and adds its counts to the report; what could not be checked at all
// (a worker that failed or stalled) is reported against path. It reports whether the home was
// checked.
func (c *checker) do(ctx context.Context, h *Home, path string) (HomeResult, bool) {
	res, err := c.cfg.AsUser.Check(ctx, h)
	c.r.Maildirs += res.Maildirs
	c.r.Folders += res.Folders
	c.r.Messages += res.Messages
	c.r.Bytes += res.Bytes
	c.r.Files += res.Files
	if err != nil {
		if ctx.Err() != nil {
			// Run says the check was cut short; this user is not a failure of theirs.
			return res, false
		}
		p := c.problem(Unknown, Unchecked, path, "cannot check: "+errText(err))
		if errors.Is(err, worker.ErrStalled) {
			p.Hint = hintStalled
		}
		c.report(p)
		return res, false
	}
	return res, true
}
