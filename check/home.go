package check

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/fault"
)

// Home is the work check and skel do inside one user's home: everything that opens, looks at,
// reads, creates, changes or removes a file beneath it. It runs as the home's user (AsUser),
// so the kernel grants it exactly what it grants the user and Dovecot, and what it creates is
// the user's; what it finds goes back as data, each problem to Problem and the rest in a
// HomeResult. Root keeps the user list, the spools, the state and the audit log.
type Home struct {
	User    User   `json:"user"`
	Maildir string `json:"maildir"`           // the Maildir's name in the home
	Mailbox string `json:"mailbox,omitempty"` // an mbox in the home to look at ("" = none)
	// Path, when set, is an explicit Maildir to check instead of the one in User.Home; its
	// expected owner is whoever owns it. A relative Path is taken from Dir (the directory
	// maildirmig was started in: a worker runs in /) and reported as given.
	Path       string        `json:"path,omitempty"`
	Dir        string        `json:"dir,omitempty"`
	Fix        bool          `json:"fix,omitempty"`
	DryRun     bool          `json:"dry_run,omitempty"` // EnsureMaildir: say what it would make
	Now        time.Time     `json:"now"`
	StaleTmp   time.Duration `json:"stale_tmp"`
	MaxFolders int           `json:"max_folders"`

	// Problem receives each problem found, repairs included, as it is found.
	Problem func(Problem) `json:"-"`
	// Work, when set, is told of the work as it goes: how many entries were looked at and
	// bytes read since it was last called. It is the progress a watchdog sees: a home that
	// stops answering stops it.
	Work func(n int64) `json:"-"`
}

// HomeResult is what Home.Check found that the rest of the check needs: the counts, and for
// the spool check whether the home has a Maildir, when it last changed, and the home's mbox.
type HomeResult struct {
	Maildirs int64 `json:"maildirs"`
	Folders  int64 `json:"folders"`
	Messages int64 `json:"messages"`
	Bytes    int64 `json:"bytes"`
	Files    int64 `json:"files"`

	// Exists says something by the Maildir's name is in the home, or could not be looked at;
	// Usable, that it is a directory that was checked, which last changed at Newest (the
	// latest mtime of the Maildir, cur/ and new/).
	Exists bool      `json:"exists,omitempty"`
	Usable bool      `json:"usable,omitempty"`
	Newest time.Time `json:"newest"`
	// Mailbox is the lstat of Home.Mailbox, nil when there is none or no home.
	Mailbox *FileStat `json:"mailbox,omitempty"`
}

// FileStat is what the spool check needs of an mbox's lstat.
type FileStat struct {
	Mode  uint32    `json:"mode"`
	Size  int64     `json:"size"`
	Mtime time.Time `json:"mtime"`
	Dev   uint64    `json:"dev"`
	Ino   uint64    `json:"ino"`
	UID   uint32    `json:"uid"`
	Nlink uint64    `json:"nlink"`
}

func fileStat(st *unix.Stat_t) *FileStat {
	return &FileStat{Mode: st.Mode, Size: st.Size, Mtime: mtime(st), Dev: uint64(st.Dev), Ino: st.Ino, UID: st.Uid, Nlink: uint64(st.Nlink)}
}

// Ensured is what EnsureMaildir found or did.
type Ensured int

const (
	Existed     Ensured = iota // something by the Maildir's name was there: left as it is
	Created                    // an empty Maildir was made
	WouldCreate                // with DryRun: none is there, one would be made
	NoHome                     // the home does not exist
)

// AsUser does a Home's work as the home's user. maildirmig's runs it in a worker process
// with the user's uid, gid and groups, which root watches and kills when it reports no work
// for the stall timeout (a home on a hung NFS or FUSE mount), so that only that user is
// given up on.
type AsUser interface {
	Check(ctx context.Context, h *Home) (HomeResult, error)
	EnsureMaildir(ctx context.Context, h *Home) (Ensured, error)
}

// InProcess does a Home's work in this process, with its identity: right where that is the
// home user's own (a user checking their own Maildir, root in root's home, a tree of the
// invoking user's under --root). Run as root for anyone else's home, it refuses.
type InProcess struct{}

// Check runs h.Check.
func (InProcess) Check(ctx context.Context, h *Home) (HomeResult, error) { return h.Check(ctx) }

// EnsureMaildir runs h.EnsureMaildir.
func (InProcess) EnsureMaildir(_ context.Context, h *Home) (Ensured, error) { return h.EnsureMaildir() }

// asRoot refuses, as root, to work in another user's home: that runs as the user.
func (h *Home) asRoot() error {
	if os.Geteuid() == 0 && h.User.UID != 0 {
		return fmt.Errorf("check: user %s: root does not work in the home of uid %d itself: it runs as the user", h.displayName(), h.User.UID)
	}
	return nil
}

func (h *Home) displayName() string {
	if h.User.Name == "" {
		return fmt.Sprintf("(uid %d)", h.User.UID)
	}
	return h.User.Name
}

// Check checks the Maildir in the home (or h.Path) and the home's mbox, as whoever runs it:
// the home's user. Problems go to h.Problem; the error is for a check that could not be made
// at all (a cancelled ctx, root asked to do it for someone else).
func (h *Home) Check(ctx context.Context) (HomeResult, error) {
	var res HomeResult
	if err := h.asRoot(); err != nil {
		return res, err
	}
	w := &walker{h: h, ctx: ctx, res: &res, user: h.User.Name, uid: h.User.UID, gid: h.User.GID}
	if h.Path != "" {
		w.path(h.Path)
	} else {
		w.home()
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("check: %w", err)
	}
	return res, nil
}

// EnsureMaildir makes an empty Maildir, Home/Maildir/{cur,new,tmp} mode 0700, when the home has
// nothing by that name, as whoever runs it: the home's user, so that it is theirs without a
// chown and the kernel checks every step as it would for them. An existing entry is left as
// it is (check reports what is wrong with it). The home is opened by the rule of
// safefs.OpenHome: not a symlink, a directory owned by the user, writable by nobody else; each
// directory is made beneath descriptors opened without following symlinks, so a user who
// races it can at most make the creation fail.
func (h *Home) EnsureMaildir() (Ensured, error) {
	if err := h.asRoot(); err != nil {
		return Existed, err
	}
	u := h.User
	path := filepath.Join(u.Home, h.Maildir)
	h.look()
	var st unix.Stat_t
	if err := unix.Stat(u.Home, &st); errors.Is(err, unix.ENOENT) {
		return NoHome, nil
	}
	if h.DryRun {
		h.look()
		if err := unix.Lstat(path, &st); errors.Is(err, unix.ENOENT) {
			return WouldCreate, nil
		}
		return Existed, nil
	}
	made, err := ensureMaildir(h, u, h.Maildir)
	if err != nil {
		return Existed, err
	}
	if made {
		return Created, nil
	}
	return Existed, nil
}

// look counts one thing looked at beneath the home, for h.Work. A nil h is root's own work
// (MakeSkel), which counts nothing.
func (h *Home) look() {
	if h == nil {
		return
	}
	fault.Look.Hit()
	if h.Work != nil {
		h.Work(1)
	}
}
