package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/mbox"
)

// countLimit is the largest source Plan reads to count messages: beyond it a dry run would
// take as long as the migration.
const countLimit = 64 << 20

// Actions a plan entry announces.
const (
	ActionMigrate   = "migrate"
	ActionUpToDate  = "up-to-date"
	ActionNoMailbox = "no-mailbox"
	ActionRefuse    = "refuse"
)

// PlanEntry is what a run would do for one user.
type PlanEntry struct {
	User     string
	UID      int
	Src      string
	Dst      string
	Home     string // the home directory, resolved under Config.Root
	Size     int64  // source size, -1 without a mailbox
	Migrated int64  // bytes migrated by earlier runs
	Messages int64  // messages in the part still to migrate; -1 when not counted
	Action   string // one of the Action constants
	Reason   string // why a user is refused
	Free     int64  // free bytes on the destination's filesystem, -1 when unknown
	FS       string // the destination filesystem's id, to add up what each filesystem receives

	Folders        []Folder        // mbox folders beneath the folder root (none with Config.NoFolders)
	SkippedFolders []SkippedFolder // entries there that would not be migrated
	FolderBytes    int64           // folder bytes not yet migrated
}

// Plan reports, without writing or locking anything, what Run would do for each selected
// user. A user whose destination filesystem cannot hold what is still to migrate (added over
// all users of that filesystem) is refused.
func Plan(ctx context.Context, cfg Config) ([]PlanEntry, error) {
	cfg.defaults()
	list, err := cfg.listUsers()
	if err != nil {
		return nil, err
	}
	store := StateStore{Dir: cfg.resolve(cfg.StateDir)}
	var out []PlanEntry
	need := map[string]int64{}
	for _, u := range list {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		src, home, dst := cfg.Paths(u)
		e := PlanEntry{User: u.Name, UID: u.UID, Src: src, Dst: dst, Home: home, Size: -1, Messages: -1, Free: -1}
		var fs unix.Statfs_t
		if err := unix.Statfs(home, &fs); err == nil {
			e.Free = int64(fs.Bavail) * int64(fs.Bsize)
			e.FS = fmt.Sprintf("%x%x", fs.Fsid.Val[0], fs.Fsid.Val[1])
		}
		e.Action, e.Reason = planUser(&e, u.Name, owner(u), store, cfg)
		if !cfg.NoFolders {
			planFolders(&e, u.Name, owner(u), home, cfg)
		}
		if e.Action == ActionMigrate && e.Free >= 0 {
			need[e.FS] += e.Todo()
			if need[e.FS] > e.Free {
				e.Action, e.Reason = ActionRefuse, fmt.Sprintf("%s has %d bytes free, %d needed by this and earlier users", home, e.Free, need[e.FS])
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func planUser(e *PlanEntry, user string, uid int, store StateStore, cfg Config) (action, reason string) {
	f, st, err := openSpool(e.Src, uid)
	if errors.Is(err, ErrNoMailbox) {
		return ActionNoMailbox, ""
	}
	if err != nil {
		return ActionRefuse, err.Error()
	}
	defer f.Close()
	e.Size = st.Size
	prev, err := store.Load(user, cfg.Source.Kind(), e.Src)
	if err != nil {
		return ActionRefuse, err.Error()
	}
	// Where the run would resume, by the rules it would apply.
	next := &State{Maildir: e.Dst, KeepHeaders: cfg.Convert.KeepHeaders, Unescape: unescapeName(cfg.Convert.Unescape), Zone: zoneName(cfg.Convert.Location)}
	rs, _, err := startResume(f, e.Src, st, prev, next, cfg.Force)
	if err != nil {
		return ActionRefuse, err.Error()
	}
	start := rs.start
	e.Migrated = start
	if start >= st.Size {
		e.Messages = 0
		return ActionUpToDate, ""
	}
	if st.Size-start <= countLimit {
		n, err := countMessages(io.NewSectionReader(f, start, st.Size-start), st.Size-start)
		if err != nil {
			return ActionRefuse, err.Error()
		}
		e.Messages = n
	}
	return ActionMigrate, ""
}

func countMessages(src io.ReaderAt, size int64) (int64, error) {
	r := mbox.NewReader(src, size, mbox.Options{})
	var n int64
	for {
		m, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if !m.Pseudo {
			n++
		}
	}
}

// Todo is how many source bytes, INBOX and folders, are still to migrate.
func (e PlanEntry) Todo() int64 {
	n := e.FolderBytes
	if e.Size > 0 {
		n += e.Size - e.Migrated
	}
	return n
}

// planFolders adds the user's folders to e; a folder that cannot be listed makes the user
// refused, as the run would fail it.
func planFolders(e *PlanEntry, user string, uid int, home string, cfg Config) {
	folders, skipped, err := listFolders(home, uid, cfg.folderRoot())
	if err != nil {
		if e.Action != ActionRefuse {
			e.Action, e.Reason = ActionRefuse, err.Error()
		}
		return
	}
	e.Folders, e.SkippedFolders = folders, skipped
	states, err := folderStates{Dir: filepath.Join(cfg.resolve(cfg.StateDir), "folders")}.Load(user)
	if err != nil {
		states = map[string]*State{}
	}
	for _, f := range folders {
		todo := f.Size
		if st := states[f.Source]; st != nil && st.Offset <= f.Size {
			todo -= st.Offset
		}
		if todo > 0 || states[f.Source] == nil {
			e.FolderBytes += todo
			if e.Action == ActionNoMailbox || e.Action == ActionUpToDate {
				e.Action = ActionMigrate
			}
		}
	}
	if len(folders) > 0 && e.Action == ActionNoMailbox {
		e.Action = ActionUpToDate
	}
}
