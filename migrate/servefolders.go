package migrate

// The worker's side of the folder migration: it opens the folder root beneath the home,
// finds the mbox folders, and converts each under Dovecot's locks, or proves what earlier
// runs migrated; root keeps the states from what it says (runfolders.go).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/lock"
	"github.com/maildirmig/maildirmig/internal/safefs"
	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
)

// openFolderHome checks the request's folder root and opens the home it lies beneath, as the
// folder operations of the worker need.
func openFolderHome(req *workerRequest) (int, error) {
	if err := CheckFolderRoot(req.FolderRoot); err != nil {
		return -1, err
	}
	return openHome(req)
}

// serveFolders is the worker's side of the folder migration. A first pass converts what is
// new in each folder and names those whose migrated part changed (msgFolderChanged); root
// then asks for a second pass with their records (req.FolderPrior), which mirrors them, and
// removes the Maildir++ folders of mbox folders that are gone (req.FolderRemoved).
func serveFolders(ctx context.Context, req *workerRequest, _ *os.File, emit func(workerMsg)) error {
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
	folders, skipped, err := discoverFolders(root)
	if err != nil {
		return err
	}
	second := req.FolderPrior != nil || len(req.FolderRemoved) > 0
	if !second {
		for _, s := range skipped {
			emit(workerMsg{T: msgFolderSkipped, Folder: s.Source, Err: s.Reason})
		}
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
		if _, ok := req.FolderPrior[f.Source]; second && !ok {
			continue
		}
		emit(workerMsg{T: msgFolderStart, Folder: f.Source, FolderInfo: &f})
		next, st, err := convertFolder(ctx, req, root, openInbox, f, emit)
		if errors.Is(err, errFolderChanged) {
			continue
		}
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
	if second {
		return removeFolders(ctx, req, home, emit)
	}
	if inbox == nil {
		// Subscriptions change without a folder changing: a Maildir made already follows them.
		d, err := maildir.OpenAt(home, req.Maildir, false)
		if err != nil {
			return nil
		}
		inbox = d
	}
	names, err := folderSubscriptions(home, root, req.FolderRoot)
	if err != nil {
		return err
	}
	live, err := liveMaildir(inbox)
	if err != nil {
		return err
	}
	return writeSubscriptions(inbox, names, live == "")
}

// errFolderChanged ends the first pass over a folder whose migrated part changed.
var errFolderChanged = errors.New("migrate: folder changed since the last pass")

// liveMaildir says why Dovecot uses the Maildir d now (its index files there), "" when it
// does not.
func liveMaildir(d *maildir.Dir) (string, error) {
	marker, err := maildir.LiveMarker(d)
	if marker == "" || err != nil {
		return "", err
	}
	return "Dovecot keeps " + marker + " in " + d.Path(), nil
}

// removeFolders removes the Maildir++ folders of the mbox folders req.FolderRemoved names,
// whose files are gone: each only while nothing but maildirmig wrote in it and Dovecot does
// not use the Maildir.
func removeFolders(ctx context.Context, req *workerRequest, home int, emit func(workerMsg)) error {
	if len(req.FolderRemoved) == 0 {
		return nil
	}
	inbox, err := maildir.OpenAt(home, req.Maildir, false)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
			for _, src := range req.FolderRemoved {
				emit(workerMsg{T: msgFolderRemoved, Folder: src})
			}
			return nil
		}
		return err
	}
	defer inbox.Close()
	parentLive, err := liveMaildir(inbox)
	if err != nil {
		return err
	}
	for _, src := range req.FolderRemoved {
		if err := ctx.Err(); err != nil {
			return err
		}
		kept, err := removeFolder(req, inbox, src, parentLive)
		if err != nil {
			emit(workerMsg{T: msgFolderFailed, Folder: src, Kind: folderFailError, Err: err.Error()})
			continue
		}
		emit(workerMsg{T: msgFolderRemoved, Folder: src, Err: kept})
	}
	return nil
}

// removeFolder removes the Maildir++ folder of the gone mbox folder src, and returns why it
// kept it instead ("" when it is gone).
func removeFolder(req *workerRequest, inbox *maildir.Dir, src, parentLive string) (kept string, err error) {
	st := req.FolderStates[src]
	if st == nil {
		return "", nil
	}
	dirName := filepath.Base(st.Maildir)
	if dirName == "" || dirName[0] != '.' || strings.ContainsAny(dirName, "/\x00") {
		return "", fmt.Errorf("migrate: %q is not a Maildir++ folder name", dirName)
	}
	d, err := maildir.OpenAt(inbox.FD(), dirName, false)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	mr := &mirrorer{req: req, d: d, own: map[string]*ownFile{}, bySeq: map[int64][]string{}, live: parentLive}
	err = mr.look()
	if err == nil && mr.live != "" {
		d.Close()
		return mr.live, nil
	}
	var w *maildir.Writer
	if err == nil {
		w, err = maildir.NewWriter(d, maildir.Options{Fsync: maildir.Fsync(req.Fsync), Host: req.Host, Unlisted: true})
	}
	for base, f := range mr.own {
		if !f.ours {
			continue
		}
		if err != nil {
			break
		}
		err = w.Remove(base)
	}
	if err == nil {
		err = w.SyncDirs()
	}
	if w != nil {
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	d.Close()
	if err != nil {
		return "", err
	}
	if err := maildir.RemoveFolder(inbox, dirName); err != nil {
		return err.Error(), nil
	}
	return "", nil
}

// folderSubscriptions reads Dovecot's ~/mail/.subscriptions, or else UW-IMAP's ~/.mailboxlist.
func folderSubscriptions(home, root int, rootDir string) ([]string, error) {
	f, err := openBeneath(root, ".subscriptions")
	if err == nil {
		defer f.Close()
		return readSubscriptions(f)
	}
	if !errors.Is(err, unix.ENOENT) {
		return nil, err
	}
	f, err = openBeneath(home, ".mailboxlist")
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, _, err := readMailboxList(f, rootDir)
	return names, err
}

// checkSpaceAt refuses a folder pass whose need, the bytes of the folder it reads that are
// new, the Maildir d's filesystem cannot hold, as checkSpace refuses an INBOX's: the folder is
// the user's file, and a sparse one costs them nothing.
func checkSpaceAt(d *maildir.Dir, need int64) error {
	return checkSpaceFD(d.FD(), d.Path(), need)
}

// openDirBeneath opens the directory path (levels separated by '/') beneath dirfd, following
// no symlink at any level.
func openDirBeneath(dirfd int, path string) (int, error) {
	if path == "" || path == "." {
		return -1, &os.PathError{Op: "open", Path: path, Err: unix.EINVAL}
	}
	fd, err := safefs.OpenDir(dirfd, path)
	if err != nil {
		return -1, beneathError(path, err)
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
	timeout := req.lockTimeout()
	lockCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The dotlock is made through the directory's descriptor, so that a directory swapped
	// since it was opened cannot move it elsewhere.
	dl, err := lock.TakeDotlockAt(lockCtx, parent, base+".lock", path.Join("~", req.FolderRoot, f.Source)+".lock", timeout)
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
		emit(workerMsg{T: msgEvent, Folder: f.Source, Event: &Event{Kind: EventFolderNoDotlock, Message: -1,
			Detail: fmt.Sprintf("no dotlock beside %s (%v): fcntl lock only", f.Source, errors.Unwrap(err))}})
	default:
		return nil, Stats{}, ctxLockError(ctx, err)
	}
	src, err := openBeneath(parent, base)
	if err != nil {
		return nil, Stats{}, err
	}
	defer src.Close()
	if err := lock.Shared(lockCtx, src, timeout); err != nil {
		return nil, Stats{}, ctxLockError(ctx, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return nil, Stats{}, fmt.Errorf("migrate: %s: %w", f.Source, err)
	}
	prev := req.FolderStates[f.Source]
	// The destination as root records it: the request's home is root's path of it.
	next = &State{Dev: uint64(st.Dev), Inode: st.Ino, Maildir: filepath.Join(req.Home, req.Maildir, f.Maildir),
		KeepHeaders: req.KeepHeaders, Unescape: unescapeName(mbox.Unescape(req.Unescape)), Zone: req.Zone}
	// Hashing the migrated part of a large folder again is work root must see.
	rs, zoneKept, err := startResume(newWorkMeter(emit).readerAt(src), path.Join("~", req.FolderRoot, f.Source), st, prev, next, req.Force)
	if err != nil {
		return nil, Stats{}, err
	}
	if zoneKept != nil {
		emit(workerMsg{T: msgEvent, Folder: f.Source, Event: zoneKept})
	}
	start, index := rs.start, rs.index
	var convert func(durable func(int64, Stats) error) (Stats, error)
	if rs.mirror {
		prior, ok := req.FolderPrior[f.Source]
		if !ok {
			emit(workerMsg{T: msgFolderChanged, Folder: f.Source})
			return nil, Stats{}, errFolderChanged
		}
		// Root starts a new generation of the folder's records.
		emit(workerMsg{T: msgFolderFrom, Folder: f.Source, N: 0})
		convert = func(func(int64, Stats) error) (Stats, error) {
			inbox, err := openInbox()
			if err != nil {
				return Stats{}, err
			}
			parentLive, err := liveMaildir(inbox)
			if err != nil {
				return Stats{}, err
			}
			if err := checkSpaceAt(inbox, mirrorGrowth(rs, st.Size)); err != nil {
				return Stats{}, err
			}
			d, err := openFolder(inbox, f.Maildir)
			if err != nil {
				return Stats{}, err
			}
			defer d.Close()
			freq := *req
			freq.Prior, freq.NextSeq, freq.Foreign, freq.StartIndex = prior, index, foreignFiles{}, prev.BaseIndex
			freq.Interrupted = prev.Open
			freq.Location = loadableZone(next.Zone)
			return mirror(ctx, &freq, src, st.Size, time.Unix(st.Mtim.Unix()), d, f.Source, parentLive, emit)
		}
		if stats, err = rs.run(convert, nil); err != nil {
			return nil, stats, err
		}
		at := *next
		return &at, stats, nil
	}
	// Root keeps the records of the folder, afresh when it is converted from the start.
	emit(workerMsg{T: msgFolderFrom, Folder: f.Source, N: start})
	// A folder never migrated gets its Maildir++ folder even when it is empty, and an empty
	// one the UIDs Dovecot's index keeps for it (emptyuids.go).
	if start < st.Size || prev == nil || st.Size == 0 {
		convert = func(durable func(int64, Stats) error) (Stats, error) {
			if start < st.Size {
				if err := CheckMbox(io.NewSectionReader(src, start, st.Size-start), st.Size-start); err != nil {
					return Stats{}, fmt.Errorf("%w: %w", errNotMbox, err)
				}
			}
			inbox, err := openInbox()
			if err != nil {
				return Stats{}, err
			}
			if err := checkSpaceAt(inbox, st.Size-start); err != nil {
				return Stats{}, err
			}
			d, err := openFolder(inbox, f.Maildir)
			if err != nil {
				return Stats{}, err
			}
			defer d.Close()
			if st.Size == 0 {
				if _, err := keepIndexUIDs(root, f.Source, f.Source, req, func() (*maildir.Dir, error) { return d, nil }, emit); err != nil {
					return Stats{}, err
				}
			}
			freq := *req
			freq.StartOffset, freq.StartIndex = start, index
			freq.Loose, freq.LooseFrom = next.Loose, next.LooseFrom
			freq.Location = loadableZone(next.Zone)
			// Each resume point goes to root with the state to save there, so that an
			// interrupted folder resumes from it.
			var bad error
			stats, err := convertChecked(ctx, &freq, src, st.Size, time.Unix(st.Mtim.Unix()), d, f.Source, func(m workerMsg) {
				if m.T == msgDurable && m.Stats != nil && bad == nil {
					if bad = durable(m.Stats.EndOffset, *m.Stats); bad != nil {
						return
					}
					at := *next
					m.State = &at
				}
				emit(m)
			})
			if err == nil {
				err = bad
			}
			return stats, err
		}
	}
	// Root records the state: it comes with each resume point and with the folder's end.
	if stats, err = rs.run(convert, nil); err != nil {
		return nil, stats, err
	}
	at := *next
	return &at, stats, nil
}

// serveVerifyFolders is the worker's side of verifyFolders.
func serveVerifyFolders(ctx context.Context, req *workerRequest, _ *os.File, emit func(workerMsg)) error {
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
		res, err := verifyFolder(ctx, req, home, src, req.FolderStates[src], newWorkMeter(emit))
		if err != nil {
			emit(workerMsg{T: msgFolderFailed, Folder: src, Err: err.Error()})
			continue
		}
		emit(workerMsg{T: msgVerified, Folder: src, Verified: &res})
	}
	return nil
}

func verifyFolder(ctx context.Context, req *workerRequest, home int, src string, st *State, work *workMeter) (VerifyResult, error) {
	if st == nil || st.Offset == 0 {
		return VerifyResult{}, nil
	}
	root, err := openDirBeneath(home, req.FolderRoot)
	if err != nil {
		return VerifyResult{}, err
	}
	defer unix.Close(root)
	f, err := openBeneath(root, src)
	if err != nil {
		return VerifyResult{}, err
	}
	defer f.Close()
	var fst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
		return VerifyResult{}, fmt.Errorf("migrate: %s: %w", src, err)
	}
	if _, _, _, err := st.Resume(work.readerAt(f), fst); err != nil {
		return VerifyResult{}, err
	}
	dirName, err := maildirFolderName(imapNameOf(strings.Split(src, "/")))
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
	vreq := st.verifyRequest(opVerify)
	vreq.Prior = req.FolderPrior[src]
	return verifyMaildir(ctx, vreq, f, st.Offset, d, work)
}
