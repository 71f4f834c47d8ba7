package migrate

// The folder part of a batch migration. After the INBOX, a worker running as the user opens
// the folder root (~/mail) beneath the home, finds the mbox folders with DiscoverFolders,
// and converts each into its Maildir++ folder under the same locks Dovecot takes on an mbox
// folder; root keeps a state per folder and writes the audit log from what the worker says.
// The sources stay as they are: --after is for the spool, which the MTA keeps delivering to;
// folders are the user's own files, and root renaming them inside a home would be unsafe.

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
	"github.com/maildirmig/maildirmig/users"
)

// Audit events of folders; each carries the user's fields plus "folder" (the IMAP name) and
// "folder_src" (the mbox file beneath the folder root).
const (
	EventFolderStart  = "folder-start"
	EventFolderDone   = "folder-done"
	EventFolderFailed = "folder-failed"
)

// Notice kinds of folders.
const (
	EventFolderSkipped   = "folder-skipped" // an entry beneath the folder root that is not migrated
	EventFolderNotMbox   = "folder-not-mbox"
	EventFolderNoDotlock = "folder-no-dotlock" // the folder's directory refuses a dotlock: fcntl only
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

// Worker answers about folders.
const (
	msgFolderSkipped = "folder-skipped"
	msgFolderStart   = "folder-start"
	msgFolderDone    = "folder-done"
	msgFolderFailed  = "folder-failed"
	msgFolderFrom    = "folder-from" // N: the offset the folder is converted from
)

// Kinds of a folder's failure, as the worker reports them.
const (
	folderFailNotMbox = "not-mbox"
	folderFailLock    = "lock-timeout"
	folderFailError   = "error"
)

var errNotMbox = errors.New("not an mbox")

// folderStates keeps, per user, one State per folder Source, in a subdirectory of the state
// directory (a user name holds no '/', so no user's own state file can clash with it).
type folderStates struct {
	Dir string
}

func (s folderStates) path(user string) (string, error) {
	return StateStore{Dir: s.Dir}.path(user)
}

func (s folderStates) Load(user string) (map[string]*State, error) {
	p, err := s.path(user)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]*State{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: folder state: %w", err)
	}
	m := map[string]*State{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("migrate: folder state %s: %w", p, err)
	}
	return m, nil
}

// folderUIDs keeps, in the process that holds the states, the UID records of the folders a worker
// converts, as run.go keeps those of the INBOX.
type folderUIDs struct {
	store StateStore
	user  string
	files map[string]*os.File // by the folder's full source path
	bufs  map[string]*bufio.Writer
}

func (s folderStates) uids(user string) *folderUIDs {
	return &folderUIDs{store: StateStore{Dir: s.Dir}, user: user, files: map[string]*os.File{}, bufs: map[string]*bufio.Writer{}}
}

// uidsPath names the UID records of the folder whose full source path is src.
func (s folderStates) uidsPath(user, src string) (string, error) {
	return StateStore{Dir: s.Dir}.uidsPath(user, kindFolder, src)
}

// open starts the records of src; fresh empties them, for a folder converted from offset 0.
func (u *folderUIDs) open(src string, fresh bool) error {
	if f := u.files[src]; f != nil {
		f.Close()
	}
	f, err := u.store.openUIDs(u.user, kindFolder, src, fresh)
	if err != nil {
		return err
	}
	u.files[src], u.bufs[src] = f, bufio.NewWriter(f)
	return nil
}

func (u *folderUIDs) record(src string, rec MessageRecord) {
	if w := u.bufs[src]; w != nil && !rec.Skipped {
		fmt.Fprintf(w, "%d %d\n", rec.Index, rec.UID)
	}
}

// sync makes the records of src durable, before a state saying they are migrated.
func (u *folderUIDs) sync(src string) error {
	w := u.bufs[src]
	if w == nil {
		return fmt.Errorf("migrate: state: no UID records open for %s", src)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	if err := u.files[src].Sync(); err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	return nil
}

func (u *folderUIDs) Close() {
	for _, f := range u.files {
		f.Close()
	}
}

// skippedPath names the record of the entries beneath a user's folder root that the last run
// skipped, by Source, with the reason: a skipped entry is warned about on the console only
// the first time, so that cron does not mail the same warning every night.
func (s folderStates) skippedPath(user string) (string, error) {
	p, err := s.path(user)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(p, ".json") + ".skipped", nil
}

// LoadSkipped returns the entries the last run skipped; none when there is no record.
func (s folderStates) LoadSkipped(user string) (map[string]string, error) {
	p, err := s.skippedPath(user)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: folder state: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("migrate: folder state %s: %w", p, err)
	}
	return m, nil
}

// SaveSkipped replaces the record of skipped entries atomically.
func (s folderStates) SaveSkipped(user string, m map[string]string) error {
	p, err := s.skippedPath(user)
	if err != nil {
		return err
	}
	return s.write(user, p, m)
}

// Save replaces the user's folder states atomically.
func (s folderStates) Save(user string, m map[string]*State) error {
	p, err := s.path(user)
	if err != nil {
		return err
	}
	return s.write(user, p, m)
}

// write replaces the file p of user with v in JSON, atomically.
func (s folderStates) write(user, p string, v any) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("migrate: folder state: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return fmt.Errorf("migrate: folder state: %w", err)
	}
	tmp, err := os.CreateTemp(s.Dir, stateTempPattern(p))
	if err != nil {
		return fmt.Errorf("migrate: folder state: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		return fmt.Errorf("migrate: folder state: %w", err)
	}
	return syncDir(s.Dir)
}

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
	opts := r.cfg.Convert
	req := &workerRequest{
		Op: opFolders, Home: home, Owner: owner(u), Maildir: r.cfg.Maildir, FolderRoot: rootDir, FolderStates: prev,
		Force: r.cfg.Force, LockTimeout: r.cfg.LockTimeout,
		KeepHeaders: opts.KeepHeaders, Unescape: int(opts.Unescape), FlushEvery: opts.FlushEvery,
		Fsync: int(opts.Maildir.Fsync), Host: opts.Maildir.Host, BatchFiles: opts.Maildir.BatchFiles, BatchBytes: opts.Maildir.BatchBytes,
	}
	if opts.Location != nil {
		req.Location = opts.Location.String()
	}
	maildirPath := filepath.Join(home, r.cfg.Maildir)
	byName := map[string]int{} // Source → index in res.Folders
	var saveErr error
	uids := store.uids(u.Name)
	defer uids.Close()
	warned, err := store.LoadSkipped(u.Name)
	if err != nil {
		return err
	}
	skipped := map[string]string{}
	fail := func(err error) {
		if saveErr == nil {
			saveErr = err
		}
	}
	folderWith := func(src string, kv ...any) map[string]any {
		m := with(kv...)
		m["folder_src"] = filepath.Join(rootPath, src)
		if i, ok := byName[src]; ok {
			m["folder"] = res.Folders[i].Name
			m["dst"] = filepath.Join(maildirPath, res.Folders[i].Maildir)
		}
		return m
	}
	// remember saves the state a worker reports for the folder src, its UID records first.
	remember := func(src string, st *State, messages int64) *State {
		i, ok := byName[src]
		if !ok {
			return nil
		}
		st.User, st.UID = u.Name, u.UID
		st.Source = filepath.Join(rootPath, src)
		st.Maildir = filepath.Join(maildirPath, res.Folders[i].Maildir)
		if messages > 0 {
			if err := uids.sync(st.Source); err != nil {
				fail(err)
				return nil
			}
		}
		prev[src] = st
		if err := store.Save(u.Name, prev); err != nil {
			fail(err)
		}
		return st
	}
	warn := func(format string, args ...any) {
		if r.cfg.Warn != nil {
			r.cfg.Warn(fmt.Sprintf("user %s: ", u.Name) + fmt.Sprintf(format, args...))
		}
	}
	// skip warns about the entry src on the console unless an earlier run did already; the
	// audit log has a notice every time.
	skip := func(src, reason, format string, args ...any) {
		skipped[src] = reason
		if _, ok := warned[src]; !ok {
			warn(format, args...)
		}
	}
	err = runWorker(ctx, Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}, req, nil, func(m workerMsg) {
		switch m.T {
		case msgFolderSkipped:
			log(EventNotice, folderWith(m.Folder, "kind", EventFolderSkipped, "detail", m.Err))
			skip(m.Folder, m.Err, "%s not migrated: %s", filepath.Join(rootPath, m.Folder), m.Err)
		case msgFolderStart:
			if m.FolderInfo == nil {
				return
			}
			byName[m.Folder] = len(res.Folders)
			res.Folders = append(res.Folders, FolderResult{Folder: *m.FolderInfo})
			log(EventFolderStart, folderWith(m.Folder, "size", m.FolderInfo.Size))
		case msgFolderFrom:
			if err := uids.open(filepath.Join(rootPath, m.Folder), m.N == 0); err != nil {
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
			if m.Stats.Messages > 0 || m.State.Offset == 0 && prev[m.Folder] == nil {
				f.Outcome = OutcomeMigrated
			}
			next := remember(m.Folder, m.State, m.Stats.Messages)
			if next == nil {
				return
			}
			log(EventFolderDone, folderWith(m.Folder, "outcome", f.Outcome, "messages", f.Stats.Messages, "written", f.Stats.Written,
				"existed", f.Stats.Existed, "skipped", f.Stats.Skipped, "bytes", f.Stats.Bytes, "end_offset", next.Offset,
				"uidvalidity", next.UIDValidity, "next_uid", f.Stats.NextUID, "renumbered", f.Stats.Renumbered, "loose", f.Stats.Loose))
		case "durable":
			if m.State != nil && m.Stats != nil {
				remember(m.Folder, m.State, m.Stats.Messages)
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
				log(EventNotice, folderWith(m.Folder, "kind", EventFolderNotMbox, "detail", m.Err))
				skip(m.Folder, m.Err, "folder %s (%s) not migrated: %s", f.Name, filepath.Join(rootPath, m.Folder), m.Err)
				return
			case folderFailLock:
				f.Outcome = OutcomeLockTimeout
				f.Err = fmt.Errorf("%w: %s", ErrLockTimeout, m.Err)
			default:
				f.Outcome = OutcomeFailed
			}
			log(EventFolderFailed, folderWith(m.Folder, "outcome", f.Outcome, "err", m.Err))
		case "event":
			if m.Event == nil {
				return
			}
			e := *m.Event
			log(EventNotice, folderWith(m.Folder, "kind", e.Kind, "message", e.Message, "offset", e.Offset, "detail", e.Detail))
			if r.cfg.Notice != nil {
				e.Detail = "folder " + folderName(res, byName, m.Folder) + ": " + e.Detail
				r.cfg.Notice(u.Name, e)
			}
		case "record":
			if m.Record != nil {
				uids.record(filepath.Join(rootPath, m.Folder), *m.Record)
			}
			if m.Record != nil && r.cfg.AuditMessages {
				rec := m.Record
				log(EventMessage, folderWith(m.Folder, "index", rec.Index, "offset", rec.Offset, "size", rec.Size, "sha256", rec.SHA256,
					"stored_sha256", nonEmpty(rec.StoredSHA256), "name", nonEmpty(rec.Name), "sub", nonEmpty(rec.Sub),
					"uid_imap", rec.UID, "existed", rec.Existed, "skipped", rec.Skipped))
			}
		case "progress":
			if r.cfg.Progress != nil {
				r.cfg.Progress(m.N)
			}
		}
	})
	if err != nil {
		// The worker may have stopped before it met every entry: keep those it did not.
		for src, reason := range warned {
			if _, ok := skipped[src]; !ok {
				skipped[src] = reason
			}
		}
	}
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
	var errs []error
	for _, f := range res.Folders {
		if f.Outcome == OutcomeFailed || f.Outcome == OutcomeLockTimeout {
			errs = append(errs, fmt.Errorf("folder %s: %w", f.Name, f.Err))
		}
	}
	return errors.Join(errs...)
}

func folderName(res *UserResult, byName map[string]int, src string) string {
	if i, ok := byName[src]; ok {
		return res.Folders[i].Name
	}
	return src
}

// openFolderHome checks the request's folder root and opens the home it lies beneath, as the
// folder operations of the worker need.
func openFolderHome(req *workerRequest) (int, error) {
	if err := CheckFolderRoot(req.FolderRoot); err != nil {
		return -1, err
	}
	return openHome(req)
}

// serveFolders is the worker's side of the folder migration.
func serveFolders(ctx context.Context, req *workerRequest, emit func(workerMsg)) error {
	home, err := openFolderHome(req)
	if err != nil {
		return err
	}
	defer unix.Close(home)
	root, err := openDirBeneath(home, req.FolderRoot)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("migrate: folders: %w", err)
	}
	defer unix.Close(root)
	folders, skipped, err := DiscoverFolders(root)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		emit(workerMsg{T: msgFolderSkipped, Folder: s.Source, Err: s.Reason})
	}
	if len(folders) == 0 {
		return nil
	}
	// The Maildir is made only once a folder has something for it.
	var inbox *maildir.Dir
	openInbox := func() (*maildir.Dir, error) {
		if inbox == nil {
			d, err := maildir.OpenAt(home, req.Maildir, true)
			if err != nil {
				return nil, err
			}
			inbox = d
		}
		return inbox, nil
	}
	defer func() {
		if inbox != nil {
			inbox.Close()
		}
	}()
	for _, f := range folders {
		if err := ctx.Err(); err != nil {
			return err
		}
		emit(workerMsg{T: msgFolderStart, Folder: f.Source, FolderInfo: &f})
		next, st, err := convertFolder(ctx, req, root, openInbox, f, emit)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, maildir.ErrUnsafe) && inbox == nil {
				// The Maildir itself is unsafe: every folder would fail the same way.
				return err
			}
			kind := folderFailError
			switch {
			case errors.Is(err, errNotMbox):
				kind = folderFailNotMbox
			case errors.Is(err, ErrLockTimeout):
				kind = folderFailLock
			}
			emit(workerMsg{T: msgFolderFailed, Folder: f.Source, Kind: kind, Err: err.Error()})
			continue
		}
		emit(workerMsg{T: msgFolderDone, Folder: f.Source, Stats: &st, State: next})
	}
	if inbox == nil {
		return nil
	}
	names, err := folderSubscriptions(home, root, req.FolderRoot)
	if err != nil {
		return err
	}
	return WriteSubscriptions(inbox, names)
}

// folderSubscriptions reads Dovecot's ~/mail/.subscriptions, or else UW-IMAP's ~/.mailboxlist.
func folderSubscriptions(home, root int, rootDir string) ([]string, error) {
	f, err := OpenBeneath(root, ".subscriptions")
	if err == nil {
		defer f.Close()
		return ReadSubscriptions(f)
	}
	if !errors.Is(err, unix.ENOENT) {
		return nil, err
	}
	f, err = OpenBeneath(home, ".mailboxlist")
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, _, err := ReadMailboxList(f, rootDir)
	return names, err
}

// openDirBeneath opens the directory path (levels separated by '/') beneath dirfd, following
// no symlink at any level.
func openDirBeneath(dirfd int, path string) (int, error) {
	fd := dirfd
	for _, level := range strings.Split(path, "/") {
		if level == "" || level == "." || level == ".." {
			if fd != dirfd {
				unix.Close(fd)
			}
			return -1, &os.PathError{Op: "open", Path: path, Err: unix.EINVAL}
		}
		next, err := unix.Openat(fd, level, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if fd != dirfd {
			unix.Close(fd)
		}
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				err = fmt.Errorf("%w: a symlink or not a directory", maildir.ErrUnsafe)
			}
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		fd = next
	}
	if fd == dirfd {
		return dupCloexec(dirfd)
	}
	return fd, nil
}

// convertFolder converts what is new in the folder f, locked as Dovecot locks an mbox folder
// it writes (a dotlock beside it, then fcntl), and returns the state to remember.
func convertFolder(ctx context.Context, req *workerRequest, root int, openInbox func() (*maildir.Dir, error), f Folder, emit func(workerMsg)) (next *State, stats Stats, err error) {
	parentPath, base := ".", f.Source
	if i := strings.LastIndexByte(f.Source, '/'); i >= 0 {
		parentPath, base = f.Source[:i], f.Source[i+1:]
	}
	var parent int
	if parentPath == "." {
		parent, err = dupCloexec(root)
	} else {
		parent, err = openDirBeneath(root, parentPath)
	}
	if err != nil {
		return nil, Stats{}, err
	}
	defer unix.Close(parent)
	timeout := req.LockTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	lockCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The dotlock is made through the directory's descriptor, so that a directory swapped
	// since it was opened cannot move it elsewhere.
	dl, err := takeDotlock(lockCtx, parent, base+".lock", path.Join("~", req.FolderRoot, f.Source)+".lock", timeout)
	switch {
	case err == nil:
		defer func() {
			// A dotlock left behind holds back Dovecot and the user's mail client until it
			// is stale: the folder fails with it, though its messages are durable.
			if rerr := dl.Release(); rerr != nil {
				next, err = nil, errors.Join(err, fmt.Errorf("migrate: releasing the dotlock of %s: %w", f.Source, rerr))
			}
		}()
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS):
		// Dovecot reads such a folder under its fcntl lock alone, and so do we.
		emit(workerMsg{T: "event", Folder: f.Source, Event: &Event{Kind: EventFolderNoDotlock, Message: -1,
			Detail: fmt.Sprintf("no dotlock beside %s (%v): fcntl lock only", f.Source, errors.Unwrap(err))}})
	default:
		return nil, Stats{}, ctxLockError(ctx, err)
	}
	src, err := OpenBeneath(parent, base)
	if err != nil {
		return nil, Stats{}, err
	}
	defer src.Close()
	if err := lockShared(lockCtx, src, timeout); err != nil {
		return nil, Stats{}, ctxLockError(ctx, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return nil, Stats{}, fmt.Errorf("migrate: %s: %w", f.Source, err)
	}
	prev := req.FolderStates[f.Source]
	start, index, h, forced, err := prev.resumeForced(src, st, req.Force)
	if err != nil {
		return nil, Stats{}, err
	}
	next = &State{Dev: uint64(st.Dev), Inode: st.Ino, KeepHeaders: req.KeepHeaders, Unescape: unescapeName(mbox.Unescape(req.Unescape))}
	if prev != nil {
		next.BaseIndex, next.Bytes, next.UIDValidity = prev.BaseIndex, prev.Bytes, prev.UIDValidity
		if start == 0 {
			next.BaseIndex = index
		}
	}
	stats = Stats{EndOffset: start, UIDValidity: next.UIDValidity}
	baseBytes := next.Bytes
	// hashed is how far h has read; advance returns the state of the folder migrated up to
	// the resume point end.
	hashed := start
	advance := func(end int64, s Stats) (*State, error) {
		if end < hashed || end > st.Size {
			return nil, fmt.Errorf("migrate: %s: resume point %d outside %d..%d", f.Source, end, hashed, st.Size)
		}
		if _, err := io.Copy(h, io.NewSectionReader(src, hashed, end-hashed)); err != nil {
			return nil, fmt.Errorf("migrate: hashing %s: %w", f.Source, err)
		}
		hashed = end
		at := *next
		at.Size, at.Offset, at.SHA256 = st.Size, end, hex.EncodeToString(h.Sum(nil))
		at.Messages = index + s.Messages
		at.Bytes = baseBytes + end - start
		if s.UIDValidity != 0 {
			at.UIDValidity = s.UIDValidity
		}
		switch {
		case start > 0:
			at.Loose, at.LooseFrom = prev.Loose, prev.LooseFrom
		case end > 0:
			at.Loose, at.LooseFrom = s.Loose, s.LooseFrom
		}
		at.Time = time.Now().UTC()
		return &at, nil
	}
	// Root keeps the UID records of the folder, afresh when it is converted from the start.
	emit(workerMsg{T: msgFolderFrom, Folder: f.Source, N: start})
	if start < st.Size || prev == nil {
		if start < st.Size {
			if err := CheckMbox(io.NewSectionReader(src, start, st.Size-start), st.Size-start); err != nil {
				return nil, Stats{}, fmt.Errorf("%w: %w", errNotMbox, err)
			}
		}
		inbox, err := openInbox()
		if err != nil {
			return nil, Stats{}, err
		}
		d, err := OpenFolder(inbox, f.Maildir)
		if err != nil {
			return nil, Stats{}, err
		}
		defer d.Close()
		freq := *req
		freq.StartOffset, freq.StartIndex = start, index
		freq.Loose, freq.LooseFrom, freq.AnyPosition = false, nil, forced
		if start > 0 {
			freq.Loose, freq.LooseFrom = prev.Loose, prev.LooseFrom
		}
		// Each resume point goes to root with the state to save there, as for the INBOX,
		// so that an interrupted folder resumes from it.
		var bad error
		stats, err = convertChecked(ctx, &freq, src, st.Size, time.Unix(st.Mtim.Unix()), d, f.Source, func(m workerMsg) {
			if m.T == "durable" && m.Stats != nil && bad == nil {
				m.State, bad = advance(m.Stats.EndOffset, *m.Stats)
				if bad != nil {
					return
				}
			}
			emit(m)
		})
		if err == nil {
			err = bad
		}
		if err != nil {
			return nil, stats, err
		}
	}
	next, err = advance(stats.EndOffset, stats)
	if err != nil {
		return nil, stats, err
	}
	return next, stats, nil
}

// lockShared takes an OFD read lock on the whole of f, as Dovecot does to read an mbox: it
// keeps out every writer that takes fcntl locks (Dovecot, Postfix, procmail, mutt) and needs
// no write access to the user's folder.
func lockShared(ctx context.Context, f *os.File, timeout time.Duration) error {
	return lockOFD(ctx, f, unix.F_RDLCK, time.Now().Add(timeout), timeout)
}

// PlanFolders lists, without reading or locking anything, the mbox folders beneath the folder
// root of the home (opened without following symlinks), sorted by name, with the entries that
// would be skipped. A missing folder root gives nothing.
func PlanFolders(home, rootDir string) ([]Folder, []SkippedFolder, error) {
	if rootDir == "" {
		rootDir = DefaultFolderRoot
	}
	if err := CheckFolderRoot(rootDir); err != nil {
		return nil, nil, err
	}
	hfd, err := unix.Open(home, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("migrate: home: %w", &os.PathError{Op: "open", Path: home, Err: err})
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
	folders, skipped, err := DiscoverFolders(root)
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
	store := folderStates{Dir: filepath.Join(cfg.resolve(cfg.StateDir), "folders")}
	states, err := store.Load(u.Name)
	if err != nil || len(states) == 0 {
		return nil, err
	}
	req := &workerRequest{Op: opVerifyFolders, Home: home, Owner: owner(u), Maildir: cfg.Maildir, FolderRoot: cfg.folderRoot(), FolderStates: states}
	var out []FolderVerify
	err = runWorker(ctx, Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}, req, nil, func(m workerMsg) {
		switch {
		case m.T == "verified" && m.Verified != nil:
			v := FolderVerify{Source: m.Folder, Result: *m.Verified}
			// A message the user deleted through Dovecot is no loss, as for the INBOX.
			if st := states[m.Folder]; st != nil {
				p, err := store.uidsPath(u.Name, st.Source)
				if err == nil {
					err = sortDeleted(&v.Result, p, st.UIDValidity)
				}
				v.Err = err
			}
			out = append(out, v)
		case m.T == msgFolderFailed:
			out = append(out, FolderVerify{Source: m.Folder, Err: errors.New(m.Err)})
		}
	})
	return out, err
}

// serveVerifyFolders is the worker's side of verifyFolders.
func serveVerifyFolders(ctx context.Context, req *workerRequest, emit func(workerMsg)) error {
	home, err := openFolderHome(req)
	if err != nil {
		return err
	}
	defer unix.Close(home)
	sources := make([]string, 0, len(req.FolderStates))
	for src := range req.FolderStates {
		sources = append(sources, src)
	}
	sort.Strings(sources)
	for _, src := range sources {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := verifyFolder(ctx, req, home, src, req.FolderStates[src])
		if err != nil {
			emit(workerMsg{T: msgFolderFailed, Folder: src, Err: err.Error()})
			continue
		}
		emit(workerMsg{T: "verified", Folder: src, Verified: &res})
	}
	return nil
}

func verifyFolder(ctx context.Context, req *workerRequest, home int, src string, st *State) (VerifyResult, error) {
	if st == nil || st.Offset == 0 {
		return VerifyResult{}, nil
	}
	root, err := openDirBeneath(home, req.FolderRoot)
	if err != nil {
		return VerifyResult{}, err
	}
	defer unix.Close(root)
	f, err := OpenBeneath(root, src)
	if err != nil {
		return VerifyResult{}, err
	}
	defer f.Close()
	var fst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
		return VerifyResult{}, fmt.Errorf("migrate: %s: %w", src, err)
	}
	if _, _, _, err := st.Resume(f, fst, false); err != nil {
		return VerifyResult{}, err
	}
	dirName, err := MaildirFolderName(imapNameOf(strings.Split(src, "/")))
	if err != nil {
		return VerifyResult{}, err
	}
	inbox, err := maildir.OpenAt(home, req.Maildir, false)
	if err != nil {
		return VerifyResult{}, err
	}
	defer inbox.Close()
	d, err := maildir.OpenAt(inbox.FD(), dirName, false)
	if err != nil {
		return VerifyResult{}, err
	}
	defer d.Close()
	vreq := *req
	vreq.StartIndex, vreq.KeepHeaders, vreq.Unescape = st.BaseIndex, st.KeepHeaders, int(unescapeValue(st.Unescape))
	vreq.Loose, vreq.LooseFrom = st.Loose, st.LooseFrom
	return verifyMaildir(ctx, &vreq, f, st.Offset, d)
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
