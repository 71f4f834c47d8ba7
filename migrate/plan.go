package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/worker"
	"github.com/maildirmig/maildirmig/mbox"
	"github.com/maildirmig/maildirmig/users"
)

// countLimit is the largest source Plan reads to count messages: beyond it a dry run would
// take as long as the migration.
const countLimit = 64 << 20

// Actions a plan entry announces.
const (
	ActionMigrate   = "migrate"
	ActionMirror    = "mirror" // the migrated part changed: a pass mirrors the whole source
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
	// What a mirror pass would do (ActionMirror): messages it would write, files it would
	// rename for their flags and remove, and why it would only add (Live).
	Added, Changed, Removed int64
	Live                    string
	Reason                  string // why a user is refused
	Free                    int64  // free bytes on the destination's filesystem, -1 when unknown
	FS                      string // the destination filesystem's id, to add up what each filesystem receives

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
	store := StateStore{Dir: cfg.State()}
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
		e.Action, e.Reason = planUser(ctx, &e, u, store, cfg)
		if !cfg.NoFolders {
			planFolders(&e, u.Name, owner(u), home, cfg)
		}
		if (e.Action == ActionMigrate || e.Action == ActionMirror) && e.Free >= 0 {
			need[e.FS] += e.Todo()
			if need[e.FS] > e.Free {
				e.Action, e.Reason = ActionRefuse, fmt.Sprintf("%s has %d bytes free, %d needed by this and earlier users", home, e.Free, need[e.FS])
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func planUser(ctx context.Context, e *PlanEntry, u users.User, store StateStore, cfg Config) (action, reason string) {
	user := u.Name
	f, st, err := openSpool(e.Src, owner(u))
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
	if rs.mirror {
		if grown := mirrorGrowth(rs, st.Size); e.Free >= 0 && grown > e.Free {
			// Not read: the pass would refuse it too.
			return ActionRefuse, fmt.Sprintf("%s has %d bytes free, %d needed", e.Home, e.Free, grown)
		}
		s, err := dryMirror(ctx, &cfg, store, u, f, st.Size, e.Home, rs)
		if err != nil {
			return ActionRefuse, err.Error()
		}
		e.Migrated, e.Messages = st.Size, s.Written
		e.Added, e.Changed, e.Removed, e.Live = s.Written, s.Changed, s.Removed, s.Live
		if s.Written+s.Changed+s.Removed == 0 {
			return ActionUpToDate, ""
		}
		return ActionMirror, ""
	}
	start := rs.start
	e.Migrated = start
	if start >= st.Size {
		e.Messages = 0
		return ActionUpToDate, ""
	}
	if st.Size-start <= countLimit {
		n, err := mbox.Count(io.NewSectionReader(f, start, st.Size-start), st.Size-start, mbox.Options{})
		if err != nil {
			return ActionRefuse, err.Error()
		}
		e.Messages = n
	}
	return ActionMigrate, ""
}

// dryMirror has a worker count, reading and writing nothing but the source, what a mirror pass
// of f into u's Maildir would do.
func dryMirror(ctx context.Context, cfg *Config, store StateStore, u users.User, f *os.File, size int64, home string, rs *resume) (Stats, error) {
	var prior string
	if !rs.prev.RecordsLost {
		var err error
		if prior, err = store.readRecords(u.Name, cfg.Source.Kind(), rs.next.Source, rs.prev); err != nil {
			return Stats{}, err
		}
	}
	foreign, err := cfg.foreign(store, u, cfg.Source, rs.next.Maildir)
	if err != nil {
		return Stats{}, err
	}
	req := convertRequest(opMirror, cfg.Convert)
	req.Home, req.Owner, req.Maildir = home, owner(u), cfg.Maildir
	req.Size, req.Location, req.DryRun = size, loadableZone(rs.next.Zone), true
	req.Prior, req.NextSeq, req.Foreign, req.StartIndex, req.Interrupted = prior, rs.index, foreign, rs.prev.BaseIndex, rs.prev.Open
	var st Stats
	var got bool
	err = runWorker(worker.WithStallTimeout(ctx, cfg.StallTimeout), Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}, req, f, func(m workerMsg) {
		if m.T == msgStats && m.Stats != nil {
			st, got = *m.Stats, true
		}
	})
	if err == nil && !got {
		err = errors.New("migrate: the worker ended without a result")
	}
	return st, err
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
	states, err := folderStates{Dir: filepath.Join(cfg.State(), "folders")}.Load(user)
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
