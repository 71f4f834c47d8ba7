package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/maildir"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// walker walks one Maildir beneath a home, as the home's user (Home.Check), and tells
// Home.Problem what it finds.
type walker struct {
	h    *Home
	ctx  context.Context
	res  *HomeResult
	user string // "" for an explicit path
	uid  int
	gid  int
}

func (c *walker) problem(sev Severity, kind Kind, path, detail string) *Problem {
	return &Problem{Severity: sev, Kind: kind, User: c.user, Path: path, Detail: detail}
}

func (c *walker) report(p *Problem) {
	if c.h.Problem != nil {
		c.h.Problem(*p)
	}
}

func (c *walker) unchecked(path string, err error) {
	c.report(c.problem(Unknown, Unchecked, path, "cannot check: "+errText(err)))
}

// errText strips the path an *os.PathError repeats, since the problem carries it already.
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

const (
	nofollow = unix.AT_SYMLINK_NOFOLLOW
	wantDir  = 0o700
	wantFile = 0o600
	permBits = 0o7777
)

// home checks the Maildir in the user's home, and looks at the home's mbox.
func (c *walker) home() {
	u := c.h.User
	// Unlike the writers (safefs.OpenHome), check follows a symlinked home as Dovecot does: it
	// runs with u's identity and reports what Dovecot would see.
	c.h.look()
	home, err := unix.Open(u.Home, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		// No home, no Maildir, nothing Dovecot could use; only a spool with mail matters.
		return
	}
	if err != nil {
		c.unchecked(u.Home, &os.PathError{Op: "open", Path: u.Home, Err: err})
		c.res.Exists = true
		return
	}
	defer unix.Close(home)
	c.userMaildir(home, u.Home)
	if c.h.Mailbox != "" {
		p := filepath.Join(u.Home, c.h.Mailbox)
		c.h.look()
		var st unix.Stat_t
		err := unix.Fstatat(home, c.h.Mailbox, &st, nofollow)
		if err == nil {
			c.res.Mailbox = fileStat(&st)
		} else if !errors.Is(err, unix.ENOENT) {
			c.unchecked(p, &os.PathError{Op: "fstatat", Path: p, Err: err})
		}
	}
}

// userMaildir checks the Maildir beneath the home's descriptor.
func (c *walker) userMaildir(home int, homePath string) {
	name := c.h.Maildir
	path := filepath.Join(homePath, name)
	c.h.look()
	var st unix.Stat_t
	err := unix.Fstatat(home, name, &st, nofollow)
	if errors.Is(err, unix.ENOENT) {
		return
	}
	c.res.Exists = true
	if err != nil {
		c.unchecked(path, &os.PathError{Op: "fstatat", Path: path, Err: err})
		return
	}
	if info := c.maildir(home, name, path, &st, false); info != nil {
		c.res.Usable, c.res.Newest = true, info.newest
	}
}

// path checks an explicit Maildir, owned by whoever owns it.
func (c *walker) path(p string) {
	parent, name := filepath.Split(filepath.Clean(p))
	if parent == "" {
		parent = "."
	}
	open := parent
	if !filepath.IsAbs(open) && c.h.Dir != "" {
		open = filepath.Join(c.h.Dir, open)
	}
	c.h.look()
	dfd, err := unix.Open(open, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		c.report(c.problem(Critical, Missing, p, "Maildir does not exist"))
		return
	}
	if err != nil {
		c.unchecked(p, &os.PathError{Op: "open", Path: parent, Err: err})
		return
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, nofollow); err != nil {
		if errors.Is(err, unix.ENOENT) {
			c.report(c.problem(Critical, Missing, p, "Maildir does not exist"))
			return
		}
		c.unchecked(p, &os.PathError{Op: "fstatat", Path: p, Err: err})
		return
	}
	if os.Geteuid() == 0 && st.Uid != 0 {
		// Root was given this path while it was no directory of a user's, and now it is
		// one: what root would make or change in it would be root's, not its owner's.
		c.unchecked(p, fmt.Errorf("owned by uid %d now, not when it was first looked at: run check again", st.Uid))
		return
	}
	c.uid, c.gid = int(st.Uid), int(st.Gid)
	c.maildir(dfd, name, p, &st, false)
}

// maildirInfo is what the spool check needs to know about a checked Maildir.
type maildirInfo struct {
	newest time.Time // latest mtime of the Maildir, cur/ and new/
}

// maildir checks the Maildir name beneath dfd (st is its lstat) and, unless it is itself a
// folder, its Maildir++ folders. It returns nil when it is not a usable directory.
func (c *walker) maildir(dfd int, name, path string, st *unix.Stat_t, folder bool) *maildirInfo {
	if !c.isDir(st, path, "Maildir") || !c.dirOwnerMode(dfd, name, path, st) {
		return nil
	}
	fd, ok := c.openDir(dfd, name, path, st)
	if !ok {
		return nil
	}
	defer unix.Close(fd)
	if folder {
		c.res.Folders++
	} else {
		c.res.Maildirs++
	}
	info := &maildirInfo{newest: mtime(st)}

	for _, sub := range []string{"cur", "new", "tmp"} {
		c.sub(fd, path, sub, info)
	}

	folders := 0
	c.readDir(fd, path, func(entry string) {
		switch entry {
		case "cur", "new", "tmp":
			return
		}
		epath := filepath.Join(path, entry)
		var est unix.Stat_t
		if err := unix.Fstatat(fd, entry, &est, nofollow); err != nil {
			if !errors.Is(err, unix.ENOENT) {
				c.unchecked(epath, &os.PathError{Op: "fstatat", Path: epath, Err: err})
			}
			return
		}
		isDir := est.Mode&unix.S_IFMT == unix.S_IFDIR
		switch {
		case !folder && strings.HasPrefix(entry, ".") && entry != "." && entry != "..":
			if est.Mode&unix.S_IFMT == unix.S_IFLNK {
				c.report(c.problem(Critical, Symlink, epath, "Maildir++ folder is a symlink"))
				return
			}
			if !isDir {
				return
			}
			if folders == c.h.MaxFolders {
				c.report(c.problem(Unknown, Unchecked, path,
					fmt.Sprintf("more than %d Maildir++ folders: the others were not checked", c.h.MaxFolders)))
			}
			if folders >= c.h.MaxFolders {
				folders++
				return
			}
			folders++
			c.maildir(fd, entry, epath, &est, true)
			return
		case entry == "dovecot-uidlist":
			c.uidlist(fd, epath, &est)
		}
		// Dovecot rewrites its index, uidlist and keyword files: one it cannot write breaks the
		// mailbox, as after a doveadm run as root.
		if (isDir || est.Mode&unix.S_IFMT == unix.S_IFREG) && int(est.Uid) != c.uid {
			c.report(c.problem(Critical, Owner, epath, c.ownerDetail(&est)))
		}
	})
	return info
}

// sub checks cur, new or tmp beneath the Maildir fd and every entry in it.
func (c *walker) sub(mfd int, mpath, sub string, info *maildirInfo) {
	path := filepath.Join(mpath, sub)
	var st unix.Stat_t
	err := unix.Fstatat(mfd, sub, &st, nofollow)
	if errors.Is(err, unix.ENOENT) {
		p := c.problem(Critical, Missing, path, sub+"/ is missing: Dovecot cannot use the Maildir")
		if c.h.Fix {
			if err := c.mkdir(mfd, sub); err != nil {
				p.Detail += " (fix failed: " + errText(err) + ")"
			} else {
				p.Fixed = "created " + sub + "/ mode 0700"
			}
		}
		c.report(p)
		return
	}
	if err != nil {
		c.unchecked(path, &os.PathError{Op: "fstatat", Path: path, Err: err})
		return
	}
	if !c.isDir(&st, path, sub+"/") || !c.dirOwnerMode(mfd, sub, path, &st) {
		return
	}
	fd, ok := c.openDir(mfd, sub, path, &st)
	if !ok {
		return
	}
	defer unix.Close(fd)
	if sub != "tmp" {
		info.newest = later(info.newest, mtime(&st))
	}
	c.readDir(fd, path, func(name string) { c.entry(fd, path, sub, name, info) })
}

// entry checks one directory entry of cur/, new/ or tmp/.
func (c *walker) entry(dfd int, dpath, sub, name string, info *maildirInfo) {
	c.res.Files++
	path := filepath.Join(dpath, name)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, nofollow); err != nil {
		// Dovecot moves files between new/ and cur/ while we look: a vanished file is normal.
		if !errors.Is(err, unix.ENOENT) {
			c.unchecked(path, &os.PathError{Op: "fstatat", Path: path, Err: err})
		}
		return
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		c.report(c.problem(Critical, NotRegular, path, "is a "+maildir.FileType(st.Mode)+", not a regular file"))
		return
	}
	if sub == "tmp" {
		// Aged by ctime, as Dovecot's own tmp/ cleanup does: a file being saved carries its
		// message's received date as mtime before the save commits (Dovecot's large APPEND,
		// COPY and imports, a live maildirmig's writes), while every write, chmod or rename
		// sets ctime to now, and no user can set it back.
		age := c.h.Now.Sub(ctime(&st))
		if age > c.h.StaleTmp && !maildir.TmpInUse(dfd, name) {
			p := c.problem(Warning, StaleTmp, path,
				fmt.Sprintf("tmp/ file last changed %s ago (an interrupted delivery)", age.Round(time.Hour)))
			if c.h.Fix {
				if err := unix.Unlinkat(dfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
					p.Detail += " (fix failed: unlink: " + err.Error() + ")"
				} else {
					p.Fixed = "removed"
				}
			}
			c.report(p)
		}
		return
	}
	c.res.Messages++
	c.res.Bytes += st.Size
	if m := mtime(&st); m.After(info.newest) {
		info.newest = m
	}
	if int(st.Uid) != c.uid {
		c.report(c.problem(Critical, Owner, path, c.ownerDetail(&st)))
	} else {
		c.mode(path, &st, false, func(m uint32) error { return chmodAt(dfd, name, &st, m) })
	}
	if st.Size == 0 {
		c.report(c.problem(Warning, Empty, path, "message file is empty"))
	}
	n, err := maildir.ParseName(name)
	if err != nil {
		c.report(c.problem(Warning, BadName, path, strings.TrimPrefix(err.Error(), "maildir: ")))
		// Dovecot still trusts an S= it can read in a name we call invalid.
	}
	if n.Size >= 0 && n.Size != st.Size {
		c.report(c.problem(Critical, SizeMismatch, path,
			fmt.Sprintf("name says S=%d but the file has %d bytes: Dovecot trusts S= and breaks FETCH of this message", n.Size, st.Size)))
	}
	if err == nil && sub == "new" && n.HasInfo {
		c.report(c.problem(Warning, InfoInNew, path, "file in new/ carries flags (\":"+n.Info+"\"): it belongs in cur/"))
	}
}

// isDir reports whether st is a directory, reporting a symlink or other file type if not.
func (c *walker) isDir(st *unix.Stat_t, path, what string) bool {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return true
	case unix.S_IFLNK:
		c.report(c.problem(Critical, Symlink, path, what+" is a symlink"))
	default:
		c.report(c.problem(Critical, NotDir, path, what+" is a "+maildir.FileType(st.Mode)+", not a directory"))
	}
	return false
}

// openDir opens name beneath dfd without following a symlink and makes sure it is the
// directory that st described (a user may swap it in between).
func (c *walker) openDir(dfd int, name, path string, st *unix.Stat_t) (int, bool) {
	fd, err := safefs.OpenDir(dfd, name)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			c.report(c.problem(Critical, Symlink, path, "changed into a symlink or file while checking"))
		} else {
			c.unchecked(path, &os.PathError{Op: "openat", Path: path, Err: err})
		}
		return -1, false
	}
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil || now.Dev != st.Dev || now.Ino != st.Ino {
		unix.Close(fd)
		c.unchecked(path, errors.New("directory replaced while checking"))
		return -1, false
	}
	*st = now
	return fd, true
}

// dirOwnerMode checks the owner and mode of the directory name beneath dfd (st is its lstat),
// before it is opened: a mode that locks the user out is repaired first with Config.Fix. It
// reports whether the directory is worth opening: one of someone else's is not.
func (c *walker) dirOwnerMode(dfd int, name, path string, st *unix.Stat_t) bool {
	if int(st.Uid) != c.uid {
		c.report(c.problem(Critical, Owner, path, c.ownerDetail(st)))
		return false
	}
	c.mode(path, st, true, func(m uint32) error { return chmodAt(dfd, name, st, m) })
	return true
}

// mode checks that a directory is 0700 or a message file 0600; fix repairs it for Config.Fix.
// Only call it for things the user owns: changing the mode of anyone else's file is not safe.
func (c *walker) mode(path string, st *unix.Stat_t, dir bool, fix func(mode uint32) error) {
	mode := st.Mode & permBits
	want, what := uint32(wantFile), "message file"
	if dir {
		want, what = wantDir, "directory"
	}
	if mode == want {
		return
	}
	sev := Warning
	detail := fmt.Sprintf("%s mode %04o, want %04o", what, mode, want)
	// Dovecot needs to read messages, and to list, create and rename in directories.
	need := want & 0o700
	if !dir {
		need = 0o400
	}
	if mode&need != need {
		sev = Critical
		detail += ": the user cannot use it"
	}
	p := c.problem(sev, Mode, path, detail)
	if c.h.Fix {
		if err := fix(want); err != nil {
			p.Detail += " (fix failed: " + errText(err) + ")"
		} else {
			p.Fixed = fmt.Sprintf("chmod %04o", want)
		}
	}
	c.report(p)
}

func (c *walker) ownerDetail(st *unix.Stat_t) string {
	return fmt.Sprintf("owned by uid %d, not by %s (uid %d)", st.Uid, c.who(), c.uid)
}

func (c *walker) who() string {
	if c.user == "" {
		return "the Maildir's owner"
	}
	return c.user
}

// readDir calls fn with each entry name of the directory fd, in batches so that a directory of
// a million messages costs bounded memory.
func (c *walker) readDir(fd int, path string, fn func(name string)) {
	// An independent descriptor: reading moves the offset, which a dup would share.
	rfd, err := safefs.OpenDir(fd, ".")
	if err != nil {
		c.unchecked(path, &os.PathError{Op: "openat", Path: path, Err: err})
		return
	}
	f := os.NewFile(uintptr(rfd), path)
	defer f.Close()
	for c.ctx.Err() == nil {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			if c.ctx.Err() != nil {
				return
			}
			c.h.look()
			fn(n)
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			c.unchecked(path, err)
			return
		}
	}
}

func mtime(st *unix.Stat_t) time.Time { return time.Unix(st.Mtim.Unix()) }

func ctime(st *unix.Stat_t) time.Time { return time.Unix(st.Ctim.Unix()) }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
