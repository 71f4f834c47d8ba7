package migrate

// The worker's side of a rollback: it lists the Maildir as Dovecot shows it, writes it as an
// mbox (package export) into root's file beside the spool, or into a file of its own beside
// ~/Mailbox and each ~/mail folder, reads it back and proves it; for a source in the home it
// also puts the new mbox in place (settleRollback), since root never acts in a home.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/export"
	"github.com/maildirmig/maildirmig/internal/fault"
	"github.com/maildirmig/maildirmig/internal/lock"
	"github.com/maildirmig/maildirmig/internal/safefs"
	"github.com/maildirmig/maildirmig/maildir"
)

// rollbackDone is what a worker says of one source it rolled back.
type rollbackDone struct {
	Messages    int64    `json:"messages"`
	Bytes       int64    `json:"bytes"` // of the Maildir's part of the mbox
	SHA         [32]byte `json:"sha"`   // of that part
	UIDValidity uint32   `json:"uidvalidity"`
	NextUID     uint32   `json:"next_uid"`
	Seq         int64    `json:"seq"` // the sequence number the next new message gets
	// Where the worker put the mbox in place itself (~/Mailbox, a folder): whether it replaced
	// the source, the bytes kept past the Maildir's part, and the mbox now.
	Changed bool   `json:"changed,omitempty"`
	Kept    int64  `json:"kept,omitempty"`
	Dev     uint64 `json:"dev,omitempty"`
	Inode   uint64 `json:"inode,omitempty"`
	Size    int64  `json:"size,omitempty"`
}

// runRollbackWorker runs a rollback request as cred: src is the old source (nil for none),
// target the file root made for a spool's new mbox (nil when the worker writes its own).
func runRollbackWorker(ctx context.Context, cred Credentials, req *workerRequest, src, target *os.File, handle func(workerMsg)) error {
	if os.Geteuid() != 0 || cred.UID == 0 {
		if target != nil {
			// The in-process worker writes a descriptor of its own, as a worker process does.
			dup, err := dupCloexec(int(target.Fd()))
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			target = os.NewFile(uintptr(dup), target.Name())
			defer target.Close()
		}
		return serveRollback(ctx, req, rollbackSource{old: src, target: target}, handle)
	}
	return spawnWorker(ctx, cred, req, src, target, handle)
}

// rollbackSource is what a rollback worker got from root: the old source, and the file to
// write the spool's new mbox into.
type rollbackSource struct {
	old, target *os.File
}

// rollbackFiles gives a worker process its descriptors: the old source at 3 when there is one
// (req.Inode), root's file at 4 for a spool.
func rollbackFiles(req *workerRequest, fd3 *os.File) (rollbackSource, error) {
	var s rollbackSource
	if req.Inode != 0 {
		s.old = fd3
	}
	if req.RollbackTo == "" && !req.DryRun {
		// Named as root made it, for messages.
		name, err := os.Readlink("/proc/self/fd/4")
		if err != nil {
			name = "the new mbox beside the spool"
		}
		s.target = os.NewFile(4, name)
		if s.target == nil {
			return s, errors.New("migrate: rollback: no file to write")
		}
	}
	return s, nil
}

// serveRollback writes the Maildir of req back, as an mbox, into root's file (a spool) or
// beside ~/Mailbox and puts it in place there.
func serveRollback(ctx context.Context, req *workerRequest, src rollbackSource, emit func(workerMsg)) error {
	home, err := openHome(req)
	if err != nil {
		return err
	}
	defer unix.Close(home)
	d, err := maildir.OpenAt(home, req.Maildir, false)
	if err != nil {
		return fmt.Errorf("migrate: rollback: %w", err)
	}
	defer d.Close()
	if req.RollbackTo == "" {
		done, err := rollbackInto(ctx, req, d, src.target, "", emit)
		if err != nil {
			return err
		}
		emit(workerMsg{T: msgRolledBack, RolledBack: &done})
		return nil
	}
	if strings.ContainsAny(req.RollbackTo, "/\x00") || req.RollbackTo == "." || req.RollbackTo == ".." {
		return fmt.Errorf("migrate: rollback: %q is not a file name", req.RollbackTo)
	}
	done, err := rollbackBeside(ctx, req, d, home, req.Home, req.RollbackTo, src.old, req.TailFrom, req.PriorSHA, req.PriorOffset, "", emit)
	if err != nil {
		return err
	}
	emit(workerMsg{T: msgRolledBack, RolledBack: &done})
	return nil
}

// rollbackBeside writes the Maildir d as an mbox beside name in dirfd (the directory dir),
// proves it, and puts it in place of old (nil for none) with settleRollback; folder tags what
// it emits.
func rollbackBeside(ctx context.Context, req *workerRequest, d *maildir.Dir, dirfd int, dir, name string, old *os.File, tailFrom int64, priorSHA string, priorOffset int64, folder string, emit func(workerMsg)) (rollbackDone, error) {
	var oldSt unix.Stat_t
	if old != nil {
		if err := unix.Fstat(int(old.Fd()), &oldSt); err != nil {
			return rollbackDone{}, fmt.Errorf("migrate: rollback: %s: %w", filepath.Join(dir, name), err)
		}
	}
	if req.DryRun {
		return rollbackInto(ctx, req, d, nil, folder, emit)
	}
	tmp, tmpName, err := createBeside(dirfd, dir, name, old, &oldSt, os.Getuid(), os.Getgid())
	if err != nil {
		return rollbackDone{}, err
	}
	defer func() {
		tmp.Close()
		if tmpName != "" {
			_ = unix.Unlinkat(dirfd, tmpName, 0)
		}
	}()
	done, err := rollbackInto(ctx, req, d, tmp, folder, emit)
	if err != nil {
		return done, err
	}
	s, err := settleRollback(dirfd, name, old, &oldSt, tmpName, tmp, done.Bytes, done.SHA, tailFrom, priorSHA, priorOffset)
	if err != nil {
		return done, err
	}
	if s.changed {
		tmpName = ""
	}
	done.Changed, done.Kept, done.Dev, done.Inode, done.Size = s.changed, s.kept, uint64(s.st.Dev), s.st.Ino, s.st.Size
	return done, nil
}

// mboxHeaderRoom is what an mbox takes for a message beside its bytes, in the free-space
// check: its From_ line and the headers the writer adds (X-UID, Status, X-Status, X-Keywords
// with its padding, Content-Length), a little more than most messages need.
const mboxHeaderRoom = 256

// madeAt is the UIDVALIDITY of a Maildir that has none (no dovecot-uidlist, no state): the
// time its directory was made, so that a rollback run again after one killed before its state
// was saved writes the same mbox, and knows the first one's for its own instead of writing
// every message again; now, where the file system does not keep that time.
func madeAt(d *maildir.Dir) uint32 {
	var st unix.Statx_t
	if err := unix.Statx(d.FD(), "", unix.AT_EMPTY_PATH, unix.STATX_BTIME, &st); err == nil && st.Mask&unix.STATX_BTIME != 0 && st.Btime.Sec > 0 {
		return uint32(st.Btime.Sec)
	}
	return uint32(time.Now().Unix())
}

// rollbackInto writes the messages of the Maildir d as an mbox into out from its start (nil
// in a dry run, which only lists them), makes it durable, reads it back and proves it, and
// emits a record of each message with its identity, for root's records. folder tags what it
// emits.
func rollbackInto(ctx context.Context, req *workerRequest, d *maildir.Dir, out *os.File, folder string, emit func(workerMsg)) (rollbackDone, error) {
	var done rollbackDone
	l, err := d.List()
	if err != nil {
		return done, fmt.Errorf("migrate: rollback: %w", err)
	}
	defer l.Close()
	loc, err := requestLocation(req)
	if err != nil {
		return done, err
	}
	uidValidity := req.UIDValidity
	if l.UIDValidity == 0 && uidValidity == 0 {
		uidValidity = madeAt(d)
	}
	opts := export.Options{Location: loc, UIDValidity: uidValidity, Host: req.Host}
	done.Messages, done.UIDValidity, done.NextUID, done.Seq = int64(l.Messages), l.UIDValidity, l.NextUID, req.NextSeq
	if done.UIDValidity == 0 {
		done.UIDValidity = uidValidity
	}
	if out == nil {
		return done, nil
	}
	if err := ctx.Err(); err != nil {
		return done, err
	}
	// A user's sparse message costs them nothing; written out it takes its size, on a
	// filesystem others may share (root's spool directory): refuse what cannot fit before
	// writing any of it.
	size, err := l.Bytes()
	if err != nil {
		return done, fmt.Errorf("migrate: rollback: %w", err)
	}
	if err := checkSpaceFD(int(out.Fd()), out.Name(), size+int64(l.Messages)*mboxHeaderRoom); err != nil {
		return done, err
	}
	work := newWorkMeter(emit)
	w := &exportWriter{f: out, work: work}
	res, err := export.Write(w, l, opts)
	if w.err != nil {
		// The new mbox could not be written (a full disk, an I/O error): say so of that
		// file, not of the Maildir message being copied at the time.
		return done, fmt.Errorf("migrate: rollback: %w", w.err)
	}
	if err != nil {
		return done, fmt.Errorf("migrate: rollback: %w", err)
	}
	done.Bytes, done.Messages = res.Bytes, int64(res.Messages)
	if err := fault.Fsync.Err(out.Sync()); err != nil {
		return done, fmt.Errorf("migrate: rollback: fsync %s: %w", out.Name(), err)
	}
	// What was written is read back with maildirmig's own reader against the Maildir; each
	// message found as written gets its record, under the identity a later pass knows it by.
	var recs []MessageRecord
	opts.Verified = func(m *maildir.Listed, sum [32]byte) {
		seq := done.Seq
		if o, ok := maildir.ParseOwn(m.Name); ok {
			seq = o.Seq
		} else {
			done.Seq++
		}
		k := maildir.OwnKeyOf(m.Date.Unix(), 0, sum, m.Size)
		recs = append(recs, MessageRecord{Index: seq, UID: m.UID, Name: m.Name, Sub: m.Sub, Size: m.Size,
			Key: recordKey(k)})
	}
	if done.SHA, err = export.Verify(work.readerAt(out), res, l, opts); err != nil {
		return done, fmt.Errorf("migrate: rollback: %w", err)
	}
	for _, r := range recs {
		// The files of ours keep their sequence numbers; Dovecot's get new ones, above all.
		done.Seq = max(done.Seq, r.Index+1)
	}
	for i := range recs {
		emit(workerMsg{T: msgRecord, Record: &recs[i], Folder: folder})
	}
	return done, nil
}

// exportWriter writes the new mbox into f from its start, through the fault seam, counting
// it as work.
type exportWriter struct {
	f    *os.File
	work *workMeter
	off  int64
	err  error // the first write that failed
}

func (w *exportWriter) Write(p []byte) (int, error) {
	n, err := fault.Export.On(w.f, "write").N(w.f.WriteAt(p, w.off))
	w.off += int64(n)
	w.work.add(n)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// serveRollbackFolders is the worker's side of rollbackFolders: every Maildir++ folder of the
// user's Maildir is written back into its mbox file beneath the folder root, made when it is
// new; the mbox files of folders gone from the Maildir are moved out of the folder root (never
// removed); the subscriptions are the Maildir's.
func serveRollbackFolders(ctx context.Context, req *workerRequest, _ *os.File, emit func(workerMsg)) error {
	home, err := openFolderHome(req)
	if err != nil {
		return err
	}
	defer unix.Close(home)
	inbox, err := maildir.OpenAt(home, req.Maildir, false)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer inbox.Close()
	dirs, err := maildirFolders(inbox.FD())
	if err != nil {
		return err
	}
	paths, refused := mboxFolderPathsEach(dirs)
	if len(dirs) == 0 && len(req.FolderStates) == 0 {
		return nil
	}
	root := -1
	if !req.DryRun {
		// A dry run makes nothing, not even the folder root.
		if root, err = mkdirBeneath(home, req.FolderRoot); err != nil {
			return fmt.Errorf("migrate: rollback: %s: %w", req.FolderRoot, err)
		}
		defer unix.Close(root)
	}
	kept := map[string]bool{}
	for i, dir := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		src := paths[i]
		if src != "" {
			// Its mbox stays where it is, written back or not.
			kept[src] = true
		}
		if refused[i] != nil {
			// A name the user made that an mbox folder root cannot hold: that folder alone
			// is refused, named, and nothing is written for it.
			emit(workerMsg{T: msgFolderFailed, Folder: dir, Kind: folderFailError, FolderInfo: &Folder{Name: dir, Maildir: dir},
				Err: fmt.Sprintf("migrate: rollback: %s: %v", filepath.Join(req.Home, req.Maildir, dir), refused[i])})
			continue
		}
		name, _ := folderLevelsName(src)
		emit(workerMsg{T: msgFolderStart, Folder: src, FolderInfo: &Folder{Name: name, Source: src, Maildir: dir}})
		done, err := rollbackFolder(ctx, req, inbox, root, dir, src, emit)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			kind := folderFailError
			if errors.Is(err, ErrLockTimeout) {
				kind = folderFailLock
			}
			emit(workerMsg{T: msgFolderFailed, Folder: src, Kind: kind, Err: err.Error()})
			continue
		}
		emit(workerMsg{T: msgRolledBack, Folder: src, RolledBack: &done})
	}
	if req.DryRun {
		return nil
	}
	var gone []string
	for src := range req.FolderStates {
		if !kept[src] {
			gone = append(gone, src)
		}
	}
	sort.Strings(gone)
	for _, src := range gone {
		to, err := moveAside(home, root, req.FolderRoot, src)
		if err != nil {
			emit(workerMsg{T: msgFolderFailed, Folder: src, Kind: folderFailError, Err: err.Error()})
			continue
		}
		emit(workerMsg{T: msgFolderRemoved, Folder: src, Err: to})
	}
	return rollbackSubscriptions(inbox, root, filepath.Join(req.Home, req.FolderRoot))
}

// folderLevelsName is the IMAP name Dovecot shows for the mbox folder src.
func folderLevelsName(src string) (string, error) {
	return imapNameOf(strings.Split(src, "/")), nil
}

// maildirFolders lists the Maildir++ folders of the Maildir dirfd: its directories whose
// names begin with '.', sorted.
func maildirFolders(dirfd int) ([]string, error) {
	names, err := readDirNames(dirfd)
	if err != nil {
		return nil, fmt.Errorf("migrate: rollback: %w", err)
	}
	var out []string
	for _, n := range names {
		if len(n) < 2 || n[0] != '.' || n == ".." {
			continue
		}
		var st unix.Stat_t
		if unix.Fstatat(dirfd, n, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// rollbackFolder writes the Maildir++ folder dir of inbox back into the mbox file src beneath
// the folder root (made, with its parent directories, when it is new), under the locks
// Dovecot takes on an mbox folder.
func rollbackFolder(ctx context.Context, req *workerRequest, inbox *maildir.Dir, root int, dir, src string, emit func(workerMsg)) (rollbackDone, error) {
	d, err := maildir.OpenAt(inbox.FD(), dir, false)
	if err != nil {
		return rollbackDone{}, err
	}
	defer d.Close()
	st := req.FolderStates[src]
	sub := *req
	sub.NextSeq, sub.UIDValidity = 0, 0
	if st != nil {
		sub.NextSeq, sub.UIDValidity, sub.Location = st.Messages, st.UIDValidity, loadableZone(st.Zone)
	}
	if req.DryRun {
		// What it would write; nothing is made or locked in the home.
		return rollbackInto(ctx, &sub, d, nil, src, emit)
	}
	parentPath, base := path.Split(src)
	// Where the folder's mbox is, for messages.
	at := filepath.Join(req.Home, req.FolderRoot, parentPath)
	parent := root
	if parentPath != "" {
		if parent, err = mkdirBeneath(root, strings.TrimSuffix(parentPath, "/")); err != nil {
			return rollbackDone{}, fmt.Errorf("migrate: rollback: %s: %w", at, err)
		}
		defer unix.Close(parent)
	}
	timeout := req.lockTimeout()
	lockCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dl, err := lock.TakeDotlockAt(lockCtx, parent, base+".lock", path.Join("~", req.FolderRoot, src)+".lock", timeout)
	switch {
	case err == nil:
		defer dl.Release()
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS):
	default:
		return rollbackDone{}, ctxLockError(ctx, err)
	}
	var old *os.File
	fd, err := safefs.Open(parent, base, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case err == nil:
		old = os.NewFile(uintptr(fd), src)
		defer old.Close()
	case errors.Is(err, unix.ENOENT):
	default:
		return rollbackDone{}, fmt.Errorf("migrate: rollback: %s: %w", filepath.Join(at, base), beneathError(src, err))
	}
	tailFrom, priorSHA, priorOffset := int64(0), "", int64(0)
	if st != nil {
		priorSHA, priorOffset = st.SHA256, st.Offset
	}
	if old != nil {
		var ost unix.Stat_t
		if err := unix.Fstat(fd, &ost); err != nil || ost.Mode&unix.S_IFMT != unix.S_IFREG {
			return rollbackDone{}, fmt.Errorf("migrate: rollback: %s: %w: not a regular file", filepath.Join(at, base), maildir.ErrUnsafe)
		}
		if err := lock.File(lockCtx, old, timeout, false); err != nil {
			return rollbackDone{}, ctxLockError(ctx, err)
		}
		if st == nil {
			// An mbox Dovecot made for a folder created after the switch, never migrated:
			// what is in it arrived since.
			tailFrom = 0
		} else if tailFrom, err = rollbackTail(st, old, ost); err != nil {
			return rollbackDone{}, err
		}
	}
	return rollbackBeside(ctx, &sub, d, parent, at, base, old, tailFrom, priorSHA, priorOffset, src, emit)
}

// mkdirBeneath opens the directory p (levels separated by '/') beneath dirfd, making the
// levels that are missing, mode 0700, and following no symlink.
func mkdirBeneath(dirfd int, p string) (int, error) {
	fd, err := dupCloexec(dirfd)
	if err != nil {
		return -1, err
	}
	for _, level := range strings.Split(p, "/") {
		if level == "" || level == "." || level == ".." {
			unix.Close(fd)
			return -1, fmt.Errorf("%q is not a plain path", p)
		}
		if err := unix.Mkdirat(fd, level, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(fd)
			return -1, err
		}
		next, err := safefs.OpenDir(fd, level)
		unix.Close(fd)
		if err != nil {
			return -1, beneathError(p, err)
		}
		fd = next
	}
	return fd, nil
}

// movedAsideDir is where a rollback moves, beside the folder root, the mbox files of folders
// gone from the Maildir: out of Dovecot's sight, and not lost.
func movedAsideDir(folderRoot string) string {
	return folderRoot + ".rolled-back-" + time.Now().UTC().Format("20060102")
}

// moveAside moves the mbox file src beneath the folder root root (the directory folderRoot
// beneath home) to the same path beneath movedAsideDir in the home, and returns where.
func moveAside(home, root int, folderRoot, src string) (string, error) {
	parentPath, base := path.Split(src)
	from := root
	if parentPath != "" {
		fd, err := openDirBeneath(root, strings.TrimSuffix(parentPath, "/"))
		if errors.Is(err, unix.ENOENT) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		defer unix.Close(fd)
		from = fd
	}
	// A rollback of the folder that died left its half-written mbox here; no later one
	// will, the folder being gone.
	sweepRollbackTemps(from, base)
	var st unix.Stat_t
	if err := unix.Fstatat(from, base, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
		// Moved by a run that died before it could remove the directories it emptied.
		removeEmptyParents(root, parentPath)
		return "", nil
	} else if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", fmt.Errorf("migrate: rollback: %s: not a regular file, left as it is", src)
	}
	asideRoot := movedAsideDir(folderRoot)
	toDir, err := mkdirBeneath(home, filepath.Join(asideRoot, parentPath))
	if err != nil {
		return "", fmt.Errorf("migrate: rollback: %s: %w", asideRoot, err)
	}
	defer unix.Close(toDir)
	if err := fault.Aside.Err(unix.Renameat2(from, base, toDir, base, unix.RENAME_NOREPLACE)); err != nil {
		return "", fmt.Errorf("migrate: rollback: move %s to %s: %w", src, asideRoot, err)
	}
	_ = unix.Fsync(from)
	_ = unix.Fsync(toDir)
	removeEmptyParents(root, parentPath)
	return path.Join("~", asideRoot, src), nil
}

// removeEmptyParents removes the directories of parentPath beneath root, deepest first, as
// long as they are empty: an empty directory left behind would show as a folder of its own.
func removeEmptyParents(root int, parentPath string) {
	for p := strings.TrimSuffix(parentPath, "/"); p != "" && p != "."; p = path.Dir(p) {
		if unix.Unlinkat(root, p, unix.AT_REMOVEDIR) != nil {
			break
		}
	}
}

// rollbackSubscriptions makes the mbox subscriptions (~/mail/.subscriptions, in the folder
// root root, the directory dir) the Maildir's, written atomically; nothing is written when
// they are already.
func rollbackSubscriptions(inbox *maildir.Dir, root int, dir string) error {
	var want []byte
	f, err := openBeneath(inbox.FD(), "subscriptions")
	switch {
	case err == nil:
		b, rerr := io.ReadAll(io.LimitReader(f, 16<<20))
		f.Close()
		if rerr != nil {
			return fmt.Errorf("migrate: rollback: %s/subscriptions: %w", inbox.Path(), rerr)
		}
		want = MboxSubscriptions(b)
	case errors.Is(err, unix.ENOENT):
		want = []byte(subscriptionsV2)
	default:
		return err
	}
	if old, err := openBeneath(root, ".subscriptions"); err == nil {
		b, rerr := io.ReadAll(io.LimitReader(old, 16<<20))
		old.Close()
		if rerr == nil && slices.Equal(b, want) {
			return nil
		}
	}
	// Named as the mboxes' are, so that the run after one that died here sweeps it.
	out, tmp, err := createBeside(root, dir, ".subscriptions", nil, &unix.Stat_t{}, os.Getuid(), os.Getgid())
	if err != nil {
		return err
	}
	_, err = fault.Subscriptions.On(out, "write").N(out.Write(want))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fault.Subscriptions.Err(unix.Renameat(root, tmp, root, ".subscriptions"))
	}
	if err != nil {
		unix.Unlinkat(root, tmp, 0)
		return fmt.Errorf("migrate: rollback: %s: %w", filepath.Join(dir, ".subscriptions"), err)
	}
	if err := unix.Fsync(root); err != nil {
		return fmt.Errorf("migrate: rollback: %s: fsync its directory: %w", filepath.Join(dir, ".subscriptions"), err)
	}
	return nil
}
