package migrate

// The folder part of a batch migration. After the INBOX, a worker running as the user opens
// the folder root (~/mail) beneath the home, finds the mbox folders with discoverFolders,
// and converts each into its Maildir++ folder under the same locks Dovecot takes on an mbox
// folder; root keeps a state per folder and writes the audit log from what the worker says.
// The sources stay as they are: --after is for the spool, which the MTA keeps delivering to;
// folders are the user's own files, and root renaming them inside a home would be unsafe.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/audit"
	"github.com/maildirmig/maildirmig/mbox"
	"github.com/maildirmig/maildirmig/users"
)

// Audit events of folders; each carries the user's fields plus "folder" (the IMAP name) and
// "folder_src" (the mbox file beneath the folder root). The registry, audit.Events, names
// and describes them.
const (
	EventFolderStart   = audit.EventFolderStart
	EventFolderDone    = audit.EventFolderDone
	EventFolderFailed  = audit.EventFolderFailed
	EventFolderRemoved = audit.EventFolderRemoved
)

// Notice kinds of folders.
const (
	EventFolderSkipped   = "folder-skipped" // an entry beneath the folder root that is not migrated
	EventFolderNotMbox   = "folder-not-mbox"
	EventFolderNoDotlock = "folder-no-dotlock" // the folder's directory refuses a dotlock: fcntl only
	EventFolderKept      = "folder-kept"       // its mbox is gone, but its Maildir++ folder has to stay
)

// OutcomeSkipped is the outcome of a folder that is not an mbox: warned about, not migrated,
// not a failure of its user.
const OutcomeSkipped = "skipped"

// DefaultFolderRoot is where mbox clients (Dovecot's mbox:~/mail, Pine, mutt) keep folders,
// relative to the home.
const DefaultFolderRoot = "mail"

// FolderResult is what happened to one mbox folder.
type FolderResult struct {
	Folder
	Outcome string // OutcomeMigrated, OutcomeUpToDate, OutcomeSkipped, OutcomeFailed or OutcomeLockTimeout
	Stats   Stats
	Err     error
}

// Kinds of a folder's failure, as the worker reports them.
const (
	folderFailNotMbox = "not-mbox"
	folderFailLock    = "lock-timeout"
	folderFailError   = "error"
)

var errNotMbox = errors.New("not an mbox")

// folderRoot is the folder root relative to a home.
func (c *Config) folderRoot() string {
	if c.Folders == "" {
		return DefaultFolderRoot
	}
	return c.Folders
}

// CheckFolderRoot refuses a folder root that is not a plain path beneath the home.
func CheckFolderRoot(dir string) error {
	if dir == "" {
		return nil
	}
	if filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "." || dir == ".." || strings.HasPrefix(dir, "../") {
		return fmt.Errorf("migrate: folder root %q: want a clean path relative to the home", dir)
	}
	return nil
}

// folders migrates the user's mbox folders after the INBOX, as the user, and adds a
// FolderResult per folder to res. The error is for what stops the folder part as a whole.
func (r *runner) folders(ctx context.Context, u users.User, home string, res *UserResult, with func(...any) map[string]any, log func(string, map[string]any)) error {
	rootDir := r.cfg.folderRoot()
	rootPath := filepath.Join(home, rootDir)
	// Looking costs root nothing and spares most users a worker; the worker decides for real.
	var st unix.Stat_t
	if err := unix.Lstat(rootPath, &st); errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	store := folderStates{Dir: filepath.Join(r.state.Dir, "folders")}
	prev, err := store.Load(u.Name)
	if err != nil {
		return err
	}
	req := r.request(opFolders, u, home)
	req.FolderRoot, req.FolderStates, req.Zone = rootDir, withLostRecords(StateStore{Dir: store.Dir}, u.Name, prev), r.zone
	req.Force, req.LockTimeout = r.cfg.Force, r.cfg.LockTimeout
	maildirPath := filepath.Join(home, r.cfg.Maildir)
	byName := map[string]int{} // Source → index in res.Folders
	var saveErr error
	recs := store.records(u.Name)
	defer recs.Close()
	var changed []string         // folders whose migrated part changed: mirrored by a second pass
	removed := map[string]bool{} // folders whose mbox is gone, until a worker meets them
	for src := range prev {
		removed[src] = true
	}
	warned, warnedMore, err := store.LoadSkipped(u.Name)
	if err != nil {
		return err
	}
	skipped := map[string]string{}
	newly := map[string]string{} // skipped entries the record did not have, with their warning
	logged := 0                  // notices of skipped entries in the audit log
	fail := func(err error) {
		if saveErr == nil {
			saveErr = err
		}
	}
	folderWith := func(src string, kv ...any) map[string]any {
		return folderFields(with, res, byName, rootPath, maildirPath, src, kv...)
	}
	// remember saves the state a worker reports for the folder src, its records first.
	remember := func(src string, st *State) *State {
		i, ok := byName[src]
		if !ok {
			return nil
		}
		st.User, st.UID = u.Name, u.UID
		st.Source = filepath.Join(rootPath, src)
		st.Maildir = filepath.Join(maildirPath, res.Folders[i].Maildir)
		if err := recs.sync(st.Source, st); err != nil {
			fail(err)
			return nil
		}
		old := prev[src]
		prev[src] = st
		if err := store.Save(u.Name, prev); err != nil {
			fail(err)
			return st
		}
		if old != nil && old.Gen != st.Gen {
			StateStore{Dir: store.Dir}.dropOlder(u.Name, kindFolder, st.Source, st)
		}
		return st
	}
	warn := func(format string, args ...any) {
		if r.cfg.Warn != nil {
			r.cfg.Warn(fmt.Sprintf("user %s: ", u.Name) + fmt.Sprintf(format, args...))
		}
	}
	// skip notes the entry src, to be warned about on the console unless an earlier run did
	// already (warnSkipped).
	skip := func(src, reason, format string, args ...any) {
		skipped[src] = reason
		if _, ok := warned[src]; !ok {
			newly[src] = fmt.Sprintf(format, args...)
		}
	}
	// logSkipped puts a notice of a skipped entry in the audit log, every run, for the first
	// maxSkippedLogged of them: the user decides how many there are.
	logSkipped := func(src string, kv ...any) {
		if logged++; logged <= maxSkippedLogged {
			log(EventNotice, folderWith(src, kv...))
		}
	}
	handle := func(m workerMsg) {
		r.dispatch(u.Name, m, func(kv ...any) map[string]any { return folderWith(m.Folder, kv...) }, "folder "+folderName(res, byName, m.Folder),
			func(rec MessageRecord) { recs.add(filepath.Join(rootPath, m.Folder), rec) }, log)
		switch m.T {
		case msgFolderSkipped:
			logSkipped(m.Folder, "kind", EventFolderSkipped, "detail", m.Err)
			skip(m.Folder, m.Err, "%s not migrated: %s", filepath.Join(rootPath, m.Folder), m.Err)
		case msgFolderStart:
			if m.FolderInfo == nil {
				return
			}
			delete(removed, m.Folder)
			if _, again := byName[m.Folder]; !again {
				byName[m.Folder] = len(res.Folders)
				res.Folders = append(res.Folders, FolderResult{Folder: *m.FolderInfo})
			}
			log(EventFolderStart, folderWith(m.Folder, "size", m.FolderInfo.Size))
		case msgFolderChanged:
			changed = append(changed, m.Folder)
		case msgFolderRemoved:
			st := prev[m.Folder]
			if st == nil {
				return
			}
			if m.Err != "" {
				log(EventNotice, with("kind", EventFolderKept, "folder_src", filepath.Join(rootPath, m.Folder), "dst", st.Maildir,
					"detail", "its mbox is gone; its Maildir++ folder stays: "+m.Err))
				warn("folder %s is gone, but %s stays: %s", filepath.Join(rootPath, m.Folder), st.Maildir, m.Err)
			} else {
				log(EventFolderRemoved, with("folder_src", filepath.Join(rootPath, m.Folder), "dst", st.Maildir))
			}
			delete(prev, m.Folder)
			if err := store.Save(u.Name, prev); err != nil {
				fail(err)
				return
			}
			last := *st
			last.Gen++
			StateStore{Dir: store.Dir}.dropOlder(u.Name, kindFolder, st.Source, &last)
			res.FoldersRemoved++
		case msgFolderFrom:
			if err := recs.open(filepath.Join(rootPath, m.Folder), prev[m.Folder], m.N == 0); err != nil {
				fail(err)
			}
		case msgFolderDone:
			i, ok := byName[m.Folder]
			if !ok || m.State == nil || m.Stats == nil {
				return
			}
			f := &res.Folders[i]
			f.Stats = *m.Stats
			f.Outcome = OutcomeUpToDate
			st := m.Stats
			if m.Stats.Messages > 0 && !m.Stats.Mirror || m.State.Offset == 0 && prev[m.Folder] == nil ||
				st.Mirror && (st.Written > 0 || st.Live == "" && st.Changed+st.Removed > 0) {
				f.Outcome = OutcomeMigrated
			}
			next := remember(m.Folder, m.State)
			if next == nil {
				return
			}
			log(EventFolderDone, folderWith(m.Folder, "outcome", f.Outcome, "messages", f.Stats.Messages, "written", f.Stats.Written,
				"existed", f.Stats.Existed, "skipped", f.Stats.Skipped, "bytes", f.Stats.Bytes, "end_offset", next.Offset,
				"uidvalidity", next.UIDValidity, "next_uid", f.Stats.NextUID, "renumbered", f.Stats.Renumbered, "loose", f.Stats.Loose))
		case msgDurable:
			if m.State != nil && m.Stats != nil {
				remember(m.Folder, m.State)
			}
		case msgFolderFailed:
			i, ok := byName[m.Folder]
			if !ok {
				return
			}
			f := &res.Folders[i]
			f.Err = errors.New(m.Err)
			switch m.Kind {
			case folderFailNotMbox:
				f.Outcome = OutcomeSkipped
				logSkipped(m.Folder, "kind", EventFolderNotMbox, "detail", m.Err)
				skip(m.Folder, m.Err, "folder %s (%s) not migrated: %s", f.Name, filepath.Join(rootPath, m.Folder), m.Err)
				return
			case folderFailLock:
				f.Outcome = OutcomeLockTimeout
				f.Err = fmt.Errorf("%w: %s", ErrLockTimeout, m.Err)
			default:
				f.Outcome = OutcomeFailed
			}
			log(EventFolderFailed, folderWith(m.Folder, "outcome", f.Outcome, "err", m.Err))
		}
	}
	cred := Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}
	if err := markOpen(store, u.Name, prev); err != nil {
		return err
	}
	err = runWorker(ctx, cred, req, nil, handle)
	if err == nil && !rootGone(rootPath) && (len(changed) > 0 || len(removed) > 0) {
		// A second pass mirrors the folders that changed, from their records, and removes
		// the Maildir++ folders of those whose mbox is gone.
		again := r.request(opFolders, u, home)
		again.FolderRoot, again.FolderStates, again.Zone = rootDir, withLostRecords(StateStore{Dir: store.Dir}, u.Name, prev), r.zone
		again.Force, again.LockTimeout = r.cfg.Force, r.cfg.LockTimeout
		again.FolderPrior = map[string]string{}
		for _, src := range changed {
			if again.FolderStates[src] != nil && again.FolderStates[src].RecordsLost {
				again.FolderPrior[src] = ""
				continue
			}
			text, rerr := StateStore{Dir: store.Dir}.readRecords(u.Name, kindFolder, filepath.Join(rootPath, src), prev[src])
			if rerr != nil {
				fail(rerr)
				continue
			}
			again.FolderPrior[src] = text
		}
		// A folder present now may have the gone one's Maildir++ folder (Lists/dovecot renamed
		// Lists.dovecot): its messages are there, and that folder stays.
		present := map[string]string{}
		for _, f := range res.Folders {
			present[f.Maildir] = f.Source
		}
		for src := range removed {
			if skippedNow(skipped, src) {
				continue
			}
			if st := prev[src]; st != nil {
				if other, ok := present[filepath.Base(st.Maildir)]; ok {
					handle(workerMsg{T: msgFolderRemoved, Folder: src, Err: "it is the Maildir++ folder of " + filepath.Join(rootPath, other) + " now"})
					continue
				}
			}
			again.FolderRemoved = append(again.FolderRemoved, src)
		}
		sort.Strings(again.FolderRemoved)
		if saveErr == nil && (len(again.FolderPrior) > 0 || len(again.FolderRemoved) > 0) {
			err = runWorker(ctx, cred, again, nil, handle)
		}
	}
	if logged > maxSkippedLogged {
		log(EventNotice, with("kind", EventFolderSkipped, "folder_src", rootPath,
			"detail", fmt.Sprintf("%d more entries beneath %s not migrated, not logged one by one", logged-maxSkippedLogged, rootPath)))
	}
	if err != nil {
		// The worker may have stopped before it met every entry: keep those it did not.
		for src, reason := range warned {
			if _, ok := skipped[src]; !ok {
				skipped[src] = reason
			}
		}
	}
	warnSkipped(newly, skipped, warned, warnedMore, func(more int) {
		warn("%d more entries beneath %s not migrated", more, rootPath)
	}, warn)
	if !maps.Equal(skipped, warned) {
		if serr := store.SaveSkipped(u.Name, skipped); serr != nil {
			fail(serr)
		}
	}
	if err != nil {
		return fmt.Errorf("migrate: folders in %s: %w", rootPath, err)
	}
	if saveErr != nil {
		return saveErr
	}
	return foldersFailed(res.Folders)
}

// markOpen saves the user's folder states marked Open before a worker may write into their
// Maildir++ folders: should it be interrupted, the next pass knows the files of ours it left
// unrecorded. Each folder's state is saved again without the mark when the worker is done
// with it.
func markOpen(store folderStates, user string, states map[string]*State) error {
	changed := false
	for _, st := range states {
		if st != nil && !st.Open {
			st.Open, changed = true, true
		}
	}
	if !changed {
		return nil
	}
	return store.Save(user, states)
}

// withLostRecords returns the folder states to hand a worker: copies of states, as they are
// now, with RecordsLost set on those whose records are lost.
func withLostRecords(store StateStore, user string, states map[string]*State) map[string]*State {
	out := make(map[string]*State, len(states))
	for src, st := range states {
		if st != nil {
			c := *st
			c.RecordsLost = store.recordsLost(user, kindFolder, st.Source, st)
			c.MaildirGone = st.Offset > 0 && maildirGone(st.Maildir)
			st = &c
		}
		out[src] = st
	}
	return out
}

// skippedNow reports whether the folder src, or a directory above it, was skipped by this run
// (a symlink, a name with no Maildir++ equivalent, too deep): its mbox is not gone, it was
// not looked at, and its Maildir++ folder stays.
func skippedNow(skipped map[string]string, src string) bool {
	for p := src; ; {
		if _, ok := skipped[p]; ok {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// rootGone reports whether the folder root is missing now: then no folder is taken for gone.
func rootGone(rootPath string) bool {
	var st unix.Stat_t
	return unix.Lstat(rootPath, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR
}

// How many skipped entries beneath a user's folder root one run names: on the console, those
// not warned about before; in the audit log, all, every run. The rest are counted in one line.
const (
	maxSkippedNamed  = 5
	maxSkippedLogged = 100
)

// warnSkipped warns about the entries newly skipped, by name for the first maxSkippedNamed of
// them, and with one line (more) for the rest. The record of the last run keeps only the first
// entries and a count of the others (keptSkipped): when it still matches what was skipped now,
// those others are the ones warned about then, and nothing is said.
func warnSkipped(newly, skipped, warned map[string]string, warnedMore int, more func(int), warn func(string, ...any)) {
	if warnedMore > 0 && len(skipped) == len(warned)+warnedMore {
		same := true
		for src := range warned {
			if _, ok := skipped[src]; !ok {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	srcs := make([]string, 0, len(newly))
	for src := range newly {
		srcs = append(srcs, src)
	}
	sort.Strings(srcs)
	for _, src := range srcs[:min(len(srcs), maxSkippedNamed)] {
		warn("%s", newly[src])
	}
	if n := len(srcs) - maxSkippedNamed; n > 0 {
		more(n)
	}
}

func folderName(res *UserResult, byName map[string]int, src string) string {
	if i, ok := byName[src]; ok {
		return res.Folders[i].Name
	}
	return src
}

// listFolders lists, without reading or locking anything, the mbox folders beneath the folder
// root of the home, sorted by name, with the entries that would be skipped. A missing folder
// root gives nothing; a home the worker would refuse (openHome, for uid) is an error.
func listFolders(home string, uid int, rootDir string) ([]Folder, []SkippedFolder, error) {
	if rootDir == "" {
		rootDir = DefaultFolderRoot
	}
	if err := CheckFolderRoot(rootDir); err != nil {
		return nil, nil, err
	}
	// As a run: no folder root, no folders, and a home opened by the worker's rule.
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(home, rootDir), &st); errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil, nil
	}
	hfd, err := openHome(&workerRequest{Home: home, Owner: uid})
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(hfd)
	root, err := openDirBeneath(hfd, rootDir)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("migrate: folders: %w", err)
	}
	defer unix.Close(root)
	folders, skipped, err := discoverFolders(root)
	sort.Slice(folders, func(i, j int) bool { return folders[i].Name < folders[j].Name })
	return folders, skipped, err
}

// FolderVerify is the proof for one folder.
type FolderVerify struct {
	Source string // beneath the folder root
	Result VerifyResult
	Err    error
}

// verifyFolders proves, as the user, every migrated message of the user's folders is in its
// Maildir++ folder.
func verifyFolders(ctx context.Context, cfg *Config, u users.User, home string) ([]FolderVerify, error) {
	store := folderStates{Dir: filepath.Join(cfg.State(), "folders")}
	states, err := store.Load(u.Name)
	if err != nil || len(states) == 0 {
		return nil, err
	}
	req := &workerRequest{Op: opVerifyFolders, Home: home, Owner: owner(u), Maildir: cfg.Maildir, FolderRoot: cfg.folderRoot(), FolderStates: states,
		FolderPrior: map[string]string{}}
	for src, st := range states {
		if req.FolderPrior[src], err = (StateStore{Dir: store.Dir}).readRecords(u.Name, kindFolder, st.Source, st); err != nil {
			return nil, err
		}
	}
	var out []FolderVerify
	err = runWorker(ctx, Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}, req, nil, func(m workerMsg) {
		switch {
		case m.T == msgVerified && m.Verified != nil:
			v := FolderVerify{Source: m.Folder, Result: *m.Verified}
			// A message the user deleted through Dovecot is no loss, as for the INBOX.
			if st := states[m.Folder]; st != nil {
				v.Err = sortDeleted(&v.Result, func(want map[int64]bool) (map[int64]uint32, error) {
					return StateStore{Dir: store.Dir}.lookupUIDs(u.Name, kindFolder, st.Source, st, want)
				}, st.UIDValidity)
			}
			out = append(out, v)
		case m.T == msgFolderFailed:
			out = append(out, FolderVerify{Source: m.Folder, Err: errors.New(m.Err)})
		}
	})
	return out, err
}

func unescapeValue(name string) mbox.Unescape {
	switch name {
	case "mboxrd":
		return mbox.UnescapeMboxrd
	case "mboxo":
		return mbox.UnescapeMboxo
	}
	return mbox.UnescapeNone
}

// folderFields are the audit fields of the folder src (its path beneath rootPath) of a user's
// run res: the user's (with), the folder's source, and its name and Maildir++ folder once its
// worker named them (byName indexes res.Folders), then kv.
func folderFields(with func(...any) map[string]any, res *UserResult, byName map[string]int, rootPath, maildirPath, src string, kv ...any) map[string]any {
	m := with(kv...)
	m["folder_src"] = filepath.Join(rootPath, src)
	if i, ok := byName[src]; ok {
		m["folder"] = res.Folders[i].Name
		m["dst"] = filepath.Join(maildirPath, res.Folders[i].Maildir)
	}
	return m
}

// foldersFailed is the error of the folders that failed, each named, on one line: the console
// prints an error per user, and a newline in it would be escaped there.
func foldersFailed(folders []FolderResult) error {
	var errs failures
	for _, f := range folders {
		if f.Outcome == OutcomeFailed || f.Outcome == OutcomeLockTimeout {
			errs = append(errs, fmt.Errorf("folder %s: %w", f.Name, f.Err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// failures is several errors as one, separated by "; ", each still found by errors.Is and As.
type failures []error

func (e failures) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e failures) Unwrap() []error { return e }
