package migrate

// The way back. Rollback writes each migrated user's Maildir back into the mbox it came from
// (the spool or ~/Mailbox, and each ~/mail folder), so that Dovecot set back to mbox shows
// what it showed from the Maildir: the messages in UID order with their UIDs, UIDVALIDITY and
// UIDNEXT (X-IMAPbase, X-UID), flags (Status, X-Status), keywords (X-Keywords), INTERNALDATE
// (the From_ line), every byte of every message, the folders and the subscriptions. Package
// export writes and proves each mbox; this file runs it, as migrations run: root keeps the
// user list, the spool's locks, the state and the audit log, and a worker running as the
// user reads the Maildir and writes what lies in the home.
//
// The Maildir is only read. Bytes of the source past what the last pass migrated (mail that
// reached the spool since) are kept, after the Maildir's messages. The new mbox is written
// beside the old one, read back and compared with the Maildir, then exchanged with it in one
// renameat2(RENAME_EXCHANGE), under the same locks as a migration, and only while the old one
// is still the file that was locked: a crash leaves the old mbox or the new one, never a mix.
// A source that already is what a rollback would write (a second rollback, or one run again
// after a crash that came after the exchange) is not written again. A source whose migrated
// part changed since the last pass is refused: what changed there would be lost.
//
// Afterwards the state says the source was rolled back, with records that name each message's
// file and identity: a later pass mirrors the source again, into the Maildir kept (which is
// its user's now, so the pass only adds what arrived since) or into a new one, with the same
// UIDs either way.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/audit"
	"github.com/maildirmig/maildirmig/internal/fault"
	"github.com/maildirmig/maildirmig/internal/lock"
	"github.com/maildirmig/maildirmig/users"
)

// Rollback writes every selected user's Maildir back into the sources their state says were
// migrated, Jobs at a time; users never migrated are left alone and named
// (OutcomeNeverMigrated). As Run, one user's failure never stops the others, and the error is
// for what stops the whole run.
func Rollback(ctx context.Context, cfg Config) (Summary, error) {
	return runUsers(ctx, cfg, "rollback", (*runner).rollbackUser)
}

// Outcomes of a rollback's user.
const (
	OutcomeRolledBack    = "rolled-back"
	OutcomeNeverMigrated = "never-migrated"
)

// ErrRollbackChanged is wrapped by the error that refuses to roll back a source whose migrated
// part changed since the last pass.
var ErrRollbackChanged = errors.New("migrate: the mbox changed since the last pass")

// RollbackResult is what a rollback did to one source.
type RollbackResult struct {
	Src      string
	Messages int64  // messages written back from the Maildir
	Bytes    int64  // bytes of them in the mbox
	Kept     int64  // bytes of the source past what was migrated, kept after them
	NextUID  uint32 // the UIDNEXT the mbox gives (X-IMAPbase)
	Changed  bool   // the source was replaced; false when it already was what a rollback writes
}

// rollbackUser rolls back one user: the INBOX source their state names, then their folders.
func (r *runner) rollbackUser(ctx context.Context, u users.User) (UserResult, error) {
	res := UserResult{User: u.Name, UID: u.UID}
	began := time.Now()
	var srcs [2]string
	var states [2]*State
	var home string
	for i, source := range []Source{SourceSpool, SourceMailbox} {
		c := r.cfg
		c.Source = source
		var dst string
		srcs[i], home, dst = c.Paths(u)
		if res.Dst == "" {
			res.Dst = dst
		}
		st, err := r.state.Load(u.Name, source.Kind(), srcs[i])
		if err != nil {
			res.Outcome, res.Err = OutcomeFailed, err
			return res, r.audit.Event(EventUserFailed, map[string]any{"user": u.Name, "uid": u.UID, "err": err.Error()})
		}
		states[i] = st
	}
	which := 0
	if states[0] == nil {
		which = 1
	}
	res.Src = srcs[which]
	if states[which] != nil {
		res.Dst = states[which].Maildir
	}
	ua := r.userAudit(u, res.Src, res.Dst)
	with, log := ua.with, ua.event
	folders, err := folderStates{Dir: filepath.Join(r.state.Dir, "folders")}.Load(u.Name)
	if err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		log(EventUserFailed, with("err", err.Error()))
		return res, ua.err
	}
	if states[0] == nil && states[1] == nil && (len(folders) == 0 || r.cfg.NoFolders) {
		res.Outcome = OutcomeNeverMigrated
		log(EventUserSkip, with("reason", "never migrated"))
		return res, ua.err
	}
	log(EventUserStart, with())
	switch {
	case states[0] != nil && states[1] != nil && states[0].Maildir == states[1].Maildir:
		err = fmt.Errorf("migrate: both %s and %s were migrated into %s: a rollback cannot tell which of its messages go back where", srcs[0], srcs[1], states[0].Maildir)
	case states[which] != nil:
		rc := r.cfg
		rc.Source = []Source{SourceSpool, SourceMailbox}[which]
		rr := &runner{cfg: rc, audit: r.audit, state: r.state, withFlock: rc.Source == SourceSpool && r.withFlock, zone: r.zone}
		err = rr.rollbackInbox(ctx, u, srcs[which], home, states[which], &res, with, log)
	}
	if err == nil && !r.cfg.NoFolders && ctx.Err() == nil {
		err = r.rollbackFolders(ctx, u, home, folders, &res, with, log)
	}
	res.Elapsed = time.Since(began)
	for _, f := range res.Folders {
		if f.Outcome == OutcomeRolledBack {
			res.Outcome = OutcomeRolledBack
		}
	}
	switch {
	case err == nil:
		if res.Outcome == "" {
			res.Outcome = OutcomeUpToDate
		}
		t := res.Total()
		log(EventUserDone, with("outcome", res.Outcome, "folders", len(res.Folders), "messages", t.Messages, "written", t.Written,
			"bytes", t.Bytes, "kept", res.Stats.Existed, "uidvalidity", res.Stats.UIDValidity, "next_uid", res.Stats.NextUID,
			"seconds", res.Elapsed.Seconds()))
	default:
		res.fail(err)
		log(EventUserFailed, with("outcome", res.Outcome, "err", err.Error()))
	}
	return res, ua.err
}

// rollbackInbox writes the user's INBOX Maildir back into the source src, whose state prev
// says it was migrated there: under the source's locks, as a migration takes them.
func (r *runner) rollbackInbox(ctx context.Context, u users.User, src, home string, prev *State, res *UserResult, with func(...any) map[string]any, log func(string, map[string]any)) (err error) {
	if prev.Open {
		return fmt.Errorf("migrate: a pass over %s was interrupted: run maildirmig %s again first", src, prev.Kind)
	}
	uid := owner(u)
	f, st, err := openSpool(src, uid)
	if err != nil && !errors.Is(err, ErrNoMailbox) {
		return err
	}
	if f != nil {
		defer func() { f.Close() }()
	}
	lockCtx, cancel := context.WithTimeout(ctx, r.cfg.LockTimeout)
	defer cancel()
	dl, err := r.lockSource(ctx, u, src, home)
	if err != nil {
		return ctxLockError(ctx, err)
	}
	defer func() {
		if rerr := dl.Release(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("migrate: releasing the dotlock of %s: %w", src, rerr))
		}
	}()
	if f == nil {
		// Postfix may have made the spool before the dotlock was ours.
		if f, st, err = openSpool(src, uid); err != nil && !errors.Is(err, ErrNoMailbox) {
			return err
		}
	}
	tailFrom := int64(-1)
	var tailErr chan error // set while root reads the spool beside the worker
	if f != nil {
		if err := lock.File(lockCtx, f, r.cfg.LockTimeout, r.withFlock); err != nil {
			return ctxLockError(ctx, err)
		}
		if st, err = recheckSpool(f, src, uid); err != nil {
			return err
		}
		if r.cfg.Source == SourceMailbox || r.cfg.DryRun {
			if tailFrom, err = rollbackTail(prev, f, st); err != nil {
				return err
			}
		} else {
			// Only root needs it, to settle: it reads the spool while the worker writes.
			tailErr = make(chan error, 1)
			go func(st unix.Stat_t) {
				var err error
				tailFrom, err = rollbackTail(prev, f, st)
				tailErr <- err
			}(st)
			defer func() {
				if tailErr != nil {
					<-tailErr
				}
			}()
		}
	}
	name, err := filepath.Rel(home, prev.Maildir)
	if err != nil || name == "." || strings.HasPrefix(name, "..") {
		return fmt.Errorf("migrate: rollback: %s is not beneath %s", prev.Maildir, home)
	}
	req := r.request(opRollback, u, home)
	req.Maildir, req.Location, req.UIDValidity, req.NextSeq = name, loadableZone(prev.Zone), prev.UIDValidity, prev.Messages
	req.PriorSHA, req.PriorOffset, req.DryRun = prev.SHA256, prev.Offset, r.cfg.DryRun
	if tailErr == nil {
		req.TailFrom = tailFrom
	}
	if f != nil {
		req.Dev, req.Inode = uint64(st.Dev), st.Ino
	}
	var tmp *os.File
	var tmpName string
	var dirfd = -1
	if r.cfg.Source == SourceMailbox {
		req.RollbackTo = filepath.Base(src)
	} else if !r.cfg.DryRun {
		if dirfd, err = openSpoolDir(src); err != nil {
			return err
		}
		defer unix.Close(dirfd)
		if tmp, tmpName, err = createBeside(dirfd, filepath.Dir(src), filepath.Base(src), f, &st, uid, u.GID); err != nil {
			return err
		}
		defer func() {
			tmp.Close()
			if tmpName != "" {
				_ = unix.Unlinkat(dirfd, tmpName, 0)
			}
		}()
	}
	add := func(MessageRecord) {}
	var recs *records
	if !r.cfg.DryRun {
		if recs, err = r.state.openRecords(u.Name, prev.Kind, src, prev, true); err != nil {
			return err
		}
		add = recs.add
		defer func() {
			if recs != nil {
				// No state came to name this generation: a refusal, a failure, or
				// nothing to remember.
				r.state.discardRecords(u.Name, prev.Kind, src, recs)
			}
		}()
	}
	var out rollbackDone
	var got bool
	err = runRollbackWorker(ctx, Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}, req, f, tmp, func(m workerMsg) {
		r.dispatch(u.Name, m, with, "", add, log)
		if m.T == msgRolledBack && m.RolledBack != nil {
			out, got = *m.RolledBack, true
		}
	})
	if err == nil && !got {
		err = errors.New("migrate: the worker ended without a result")
	}
	if tailErr != nil {
		terr := <-tailErr
		tailErr = nil
		if err == nil {
			err = terr
		}
	}
	if err != nil {
		return err
	}
	if r.cfg.DryRun {
		res.Stats = Stats{Messages: out.Messages, Bytes: out.Bytes, NextUID: out.NextUID, UIDValidity: out.UIDValidity}
		res.Outcome = OutcomeRolledBack
		return nil
	}
	if r.cfg.Source != SourceMailbox {
		// The worker wrote the Maildir's part into root's file beside the spool; the rest is
		// root's, in root's spool directory.
		s, err := settleRollback(dirfd, filepath.Base(src), f, &st, tmpName, tmp, out.Bytes, out.SHA, tailFrom, prev.SHA256, prev.Offset)
		if err != nil {
			return err
		}
		out.Changed, out.Kept, out.Dev, out.Inode, out.Size = s.changed, s.kept, uint64(s.st.Dev), s.st.Ino, s.st.Size
		if s.changed {
			tmpName = "" // it is the old spool now, and gone
		}
	}
	named, err := r.recordRollback(u, src, prev, recs, out, res, with, log)
	if named {
		recs.Close()
		recs = nil
	}
	return err
}

// discardRecords closes and removes r, a generation of the records of a user's source that no
// state names.
func (s StateStore) discardRecords(user, kind, src string, r *records) {
	r.Close()
	if p, err := s.recordsPath(user, kind, src, r.gen); err == nil {
		_ = os.Remove(p)
	}
}

// recordRollback saves the state of a source a rollback wrote: the mbox now (out), whose
// first out.Bytes bytes are the Maildir's messages, named with their files by the records
// recs holds. It reports whether a state may name recs now.
func (r *runner) recordRollback(u users.User, src string, prev *State, recs *records, out rollbackDone, res *UserResult, with func(...any) map[string]any, log func(string, map[string]any)) (bool, error) {
	sum := hex.EncodeToString(out.SHA[:])
	res.Stats = Stats{Messages: out.Messages, Written: out.Messages, Existed: out.Kept, Bytes: out.Bytes, NextUID: out.NextUID, UIDValidity: out.UIDValidity}
	res.Outcome = OutcomeRolledBack
	if !out.Changed {
		res.Outcome = OutcomeUpToDate
		res.Stats.Written = 0
		if prev.RolledBack && prev.SHA256 == sum && prev.Offset == out.Bytes && prev.Inode == out.Inode {
			// Nothing to remember either.
			return false, nil
		}
	}
	if err := recs.sync(); err != nil {
		return false, err
	}
	next := &State{User: u.Name, UID: u.UID, Kind: prev.Kind, Source: src, Dev: out.Dev, Inode: out.Inode, Size: out.Size,
		Offset: out.Bytes, SHA256: sum, BaseIndex: prev.BaseIndex, Messages: max(out.Seq, prev.Messages), Bytes: out.Bytes,
		Maildir: prev.Maildir, UIDValidity: out.UIDValidity, KeepHeaders: prev.KeepHeaders, Unescape: prev.Unescape,
		Zone: prev.Zone, RolledBack: true, Time: time.Now().UTC()}
	recs.note(next)
	if err := r.state.Save(next); err != nil {
		// It may have come to name them all the same (renamed into place, then failed).
		return true, err
	}
	r.state.dropOlder(u.Name, prev.Kind, src, next)
	log(EventRolledBack, with("messages", out.Messages, "bytes", out.Bytes, "kept", out.Kept, "uidvalidity", out.UIDValidity,
		"next_uid", out.NextUID, "changed", out.Changed))
	return true, nil
}

// EventRolledBack is the audit event of a source a rollback wrote (or found written already).
const EventRolledBack = audit.EventRolledBack

// rollbackTail says where the bytes of the locked source f (fstat st) that the last pass did
// not migrate begin: after what prev says was migrated when that is unchanged, at 0 when
// nothing is (a source truncated or renamed by --after, or replaced), and -1 when the
// migrated part changed or is another file: the source must then already be what a
// rollback writes (settleRollback) or the rollback is refused.
func rollbackTail(prev *State, f io.ReaderAt, st unix.Stat_t) (int64, error) {
	if prev.Offset == 0 {
		return 0, nil
	}
	start, _, _, err := prev.Resume(f, st)
	switch {
	case errors.Is(err, ErrSourceChanged):
		return -1, nil
	case err != nil:
		return 0, err
	}
	return start, nil
}

// openSpoolDir opens the directory of the spool src (root's), not following a symlink.
func openSpoolDir(src string) (int, error) {
	fd, err := unix.Open(filepath.Dir(src), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("migrate: rollback: %w", &os.PathError{Op: "open", Path: filepath.Dir(src), Err: err})
	}
	return fd, nil
}

// rollbackTempPrefix begins the name of the file a rollback writes beside a source; the
// writer's pid follows, so that a run finds those of runs that died (sweepRollbackTemps).
const rollbackTempPrefix = ".maildirmig-rollback."

// createBeside makes the file a rollback writes beside name in dirfd (the directory dir):
// exclusively, with the owner and mode of old (fstat st) when there is one, else the user's
// and 0600. It returns the file, whose Name is its path for messages, and its name in dirfd.
func createBeside(dirfd int, dir, name string, old *os.File, st *unix.Stat_t, uid, gid int) (*os.File, string, error) {
	sweepRollbackTemps(dirfd, name)
	tmp := rollbackTempPrefix + name + ".P" + strconv.Itoa(os.Getpid())
	mode := uint32(0o600)
	if old != nil {
		mode, uid, gid = st.Mode&0o7777, int(st.Uid), int(st.Gid)
	}
	fd, err := unix.Openat(dirfd, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EEXIST) {
		// Ours by its name and pid: a run before this one with the same pid.
		if err = unix.Unlinkat(dirfd, tmp, 0); err == nil {
			fd, err = unix.Openat(dirfd, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("migrate: rollback: create %s: %w", filepath.Join(dir, tmp), err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, tmp))
	if err := unix.Fchown(fd, uid, gid); err != nil && os.Geteuid() == 0 {
		f.Close()
		unix.Unlinkat(dirfd, tmp, 0)
		return nil, "", fmt.Errorf("migrate: rollback: chown %s: %w", f.Name(), err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		f.Close()
		unix.Unlinkat(dirfd, tmp, 0)
		return nil, "", fmt.Errorf("migrate: rollback: chmod %s: %w", f.Name(), err)
	}
	return f, tmp, nil
}

// sweepRollbackTemps removes, beside name in dirfd, the files of rollbacks whose process is
// gone: they are half-written mboxes, never the source.
func sweepRollbackTemps(dirfd int, name string) {
	names, err := readDirNames(dirfd)
	if err != nil {
		return
	}
	prefix := rollbackTempPrefix + name + ".P"
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, prefix)
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 || pid == os.Getpid() || !processGone(pid) {
			continue
		}
		_ = unix.Unlinkat(dirfd, n, 0)
	}
}

// processGone reports whether the process pid has ended: there is none, or it is a zombie
// (killed, and not yet reaped by a parent that may never come), which writes nothing again.
func processGone(pid int) bool {
	if unix.Kill(pid, 0) == unix.ESRCH {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// settled is what settleRollback did.
type settled struct {
	changed bool        // the source was replaced by the new mbox
	kept    int64       // bytes of the source past the Maildir's part, kept
	st      unix.Stat_t // the source now
}

// settleRollback finishes a rollback whose Maildir part, n bytes of SHA-256 sum, is written
// to tmp (named tmpName beside name in dirfd). old (fstat oldSt) is the source, locked, nil
// when there is none; tailFrom is where its bytes past the migrated part begin, -1 when its
// migrated part changed (rollbackTail); priorSHA and priorOffset are what the state says was
// migrated.
//
// Without a source the new mbox takes its name. When the source's migrated part is unchanged,
// its tail is appended to the new mbox and the two are exchanged, unless the source already
// is the new mbox (its migrated part is the Maildir's part: a rollback done before). When it
// changed, the source is kept only if it begins with the Maildir's part (a rollback done
// before, then mail delivered): else the rollback is refused (ErrRollbackChanged). A source
// with nothing migrated (tailFrom 0) that begins with the Maildir's part is a rollback done
// before too; else all of it arrived since, and follows the Maildir's part.
func settleRollback(dirfd int, name string, old *os.File, oldSt *unix.Stat_t, tmpName string, tmp *os.File, n int64, sum [32]byte, tailFrom int64, priorSHA string, priorOffset int64) (settled, error) {
	var s settled
	// Where the source is, for messages.
	at := filepath.Join(filepath.Dir(tmp.Name()), name)
	if old == nil {
		if err := syncTemp(tmp); err != nil {
			return s, err
		}
		err := fault.Swap.Err(unix.Renameat2(dirfd, tmpName, dirfd, name, unix.RENAME_NOREPLACE))
		if err != nil {
			return s, fmt.Errorf("migrate: rollback: rename %s to %s: %w", tmp.Name(), at, err)
		}
		s.changed = true
		if err := unix.Fstat(int(tmp.Fd()), &s.st); err != nil {
			return s, fmt.Errorf("migrate: rollback: %s: %w", at, err)
		}
		return s, syncDirFD(dirfd, at)
	}
	size := oldSt.Size
	switch {
	case tailFrom >= 0 && tailFrom == n && priorOffset == n && priorSHA == hex.EncodeToString(sum[:]):
		// Its migrated part is the Maildir's: nothing to write.
		s.kept, s.st = size-n, *oldSt
		return s, nil
	case tailFrom <= 0:
		// Its migrated part changed, or nothing of it was migrated (a folder made after
		// the switch, a spool emptied by --after): it may be a rollback's whose state was
		// never saved, the run killed after the exchange. Taking it whole for mail that
		// arrived since would write every message twice.
		done, err := beginsWith(old, size, n, sum)
		if err != nil {
			return s, fmt.Errorf("migrate: rollback: reading %s: %w", at, err)
		}
		if done {
			s.kept, s.st = size-n, *oldSt
			return s, nil
		}
		if tailFrom < 0 {
			return s, fmt.Errorf("%w: %s: what the last pass migrated is not there any more, and a rollback would lose what changed; run maildirmig %s first", ErrRollbackChanged, at, kindCommand(name))
		}
	}
	// The bytes past the migrated part: mail that arrived since the last pass.
	if tailFrom < size {
		tail := io.NewSectionReader(old, tailFrom, size-tailFrom)
		if _, err := tmp.Seek(n, io.SeekStart); err != nil {
			return s, fmt.Errorf("migrate: rollback: %w", err)
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(tmp, h), tail); err != nil {
			return s, fmt.Errorf("migrate: rollback: appending the mail that arrived since in %s: %w", at, err)
		}
		var want, got [32]byte
		h.Sum(want[:0])
		h.Reset()
		if _, err := io.Copy(h, io.NewSectionReader(tmp, n, size-tailFrom)); err != nil {
			return s, fmt.Errorf("migrate: rollback: reading %s back: %w", tmp.Name(), err)
		}
		if h.Sum(got[:0]); got != want {
			return s, fmt.Errorf("migrate: rollback: %s: the mail that arrived since did not read back as written", tmp.Name())
		}
		s.kept = size - tailFrom
	}
	if err := unchangedSince(old, oldSt, at); err != nil {
		return s, err
	}
	if err := syncTemp(tmp); err != nil {
		return s, err
	}
	if err := swapBeside(dirfd, tmpName, name, at, old, oldSt); err != nil {
		return s, err
	}
	s.changed = true
	if err := unix.Fstat(int(tmp.Fd()), &s.st); err != nil {
		return s, fmt.Errorf("migrate: rollback: %s: %w", at, err)
	}
	return s, syncDirFD(dirfd, at)
}

// beginsWith reports whether the first n bytes of f (of size bytes) have the SHA-256 sum.
func beginsWith(f io.ReaderAt, size, n int64, sum [32]byte) (bool, error) {
	if n == 0 || size < n {
		return false, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, n)); err != nil {
		return false, err
	}
	var got [32]byte
	h.Sum(got[:0])
	return got == sum, nil
}

// kindCommand names the command that migrates the source name: Mailbox for ~/Mailbox, else
// mbox.
func kindCommand(name string) string {
	if name == "Mailbox" {
		return KindMailbox
	}
	return KindSpool
}

// syncTemp makes the new mbox tmp durable before it takes the source's place.
func syncTemp(tmp *os.File) error {
	if err := fault.Fsync.Err(tmp.Sync()); err != nil {
		return fmt.Errorf("migrate: rollback: fsync %s: %w", tmp.Name(), err)
	}
	return nil
}

// syncDirFD makes the renames in dirfd, the directory of the source at, durable.
func syncDirFD(dirfd int, at string) error {
	if err := unix.Fsync(dirfd); err != nil {
		return fmt.Errorf("migrate: rollback: fsync the directory of %s: %w", at, err)
	}
	return nil
}

// unchangedSince refuses the source old (at) if it is not as its fstat oldSt, taken when it
// was locked: a program that does not take the locks (the user's own) appended to it or
// truncated it, and replacing it would lose what that program wrote.
func unchangedSince(old *os.File, oldSt *unix.Stat_t, at string) error {
	var now unix.Stat_t
	if err := unix.Fstat(int(old.Fd()), &now); err != nil {
		return fmt.Errorf("migrate: rollback: %w", &os.PathError{Op: "fstat", Path: at, Err: err})
	}
	if now.Size != oldSt.Size || now.Mtim != oldSt.Mtim {
		return fmt.Errorf("migrate: rollback: %s changed while it was locked (%d bytes then, %d now: written by a program that does not take its locks); it was left as it is", at, oldSt.Size, now.Size)
	}
	return nil
}

// swapBeside exchanges tmpName and name in dirfd in one renameat2(RENAME_EXCHANGE), and
// removes what is then at tmpName, the old file, only if it is the file old, still as oldSt
// says: when another file had taken name's place meanwhile, or old was written to, the
// exchange is undone and the rollback fails. at is the source's path, for messages.
func swapBeside(dirfd int, tmpName, name, at string, old *os.File, oldSt *unix.Stat_t) error {
	if err := fault.Swap.Err(unix.Renameat2(dirfd, tmpName, dirfd, name, unix.RENAME_EXCHANGE)); err != nil {
		return fmt.Errorf("migrate: rollback: exchange %s and %s: %w", filepath.Join(filepath.Dir(at), tmpName), at, err)
	}
	undo := func(why error) error {
		if uerr := unix.Renameat2(dirfd, tmpName, dirfd, name, unix.RENAME_EXCHANGE); uerr != nil {
			return fmt.Errorf("%w, and putting it back failed: %w", why, uerr)
		}
		return why
	}
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, tmpName, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil || st.Dev != oldSt.Dev || st.Ino != oldSt.Ino {
		return undo(fmt.Errorf("migrate: rollback: %s was replaced while it was locked", at))
	}
	if err := unchangedSince(old, oldSt, at); err != nil {
		return undo(err)
	}
	if err := unix.Unlinkat(dirfd, tmpName, 0); err != nil {
		return fmt.Errorf("migrate: rollback: remove the old %s: %w", at, err)
	}
	return nil
}

// rollbackFolders writes the user's Maildir++ folders back into their mbox files beneath the
// folder root, as the user (rollbackFolder), and keeps their states from what the worker says.
func (r *runner) rollbackFolders(ctx context.Context, u users.User, home string, prev map[string]*State, res *UserResult, with func(...any) map[string]any, log func(string, map[string]any)) error {
	rootDir := r.cfg.folderRoot()
	rootPath := filepath.Join(home, rootDir)
	store := folderStates{Dir: filepath.Join(r.state.Dir, "folders")}
	req := r.request(opRollbackFolders, u, home)
	req.FolderRoot, req.FolderStates, req.LockTimeout, req.DryRun = rootDir, prev, r.cfg.LockTimeout, r.cfg.DryRun
	if req.Location = loadableZone(r.zone); len(prev) > 0 {
		for _, st := range prev {
			req.Location = loadableZone(st.Zone)
			break
		}
	}
	maildirPath := filepath.Join(home, r.cfg.Maildir)
	recs := store.records(u.Name)
	named := map[string]bool{} // the folders whose new records a state may name
	defer func() {
		for src, rec := range recs.files {
			if !named[src] {
				StateStore{Dir: store.Dir}.discardRecords(u.Name, kindFolder, src, rec)
				delete(recs.files, src)
			}
		}
		recs.Close()
	}()
	byName := map[string]int{}
	var saveErr error
	fail := func(err error) {
		if saveErr == nil {
			saveErr = err
		}
	}
	folderWith := func(src string, kv ...any) map[string]any {
		return folderFields(with, res, byName, rootPath, maildirPath, src, kv...)
	}
	err := runWorker(ctx, Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}, req, nil, func(m workerMsg) {
		r.dispatch(u.Name, m, func(kv ...any) map[string]any { return folderWith(m.Folder, kv...) }, "folder "+folderName(res, byName, m.Folder),
			func(rec MessageRecord) { recs.add(filepath.Join(rootPath, m.Folder), rec) }, log)
		switch m.T {
		case msgFolderStart:
			if m.FolderInfo == nil {
				return
			}
			byName[m.Folder] = len(res.Folders)
			res.Folders = append(res.Folders, FolderResult{Folder: *m.FolderInfo})
			if !r.cfg.DryRun {
				if err := recs.open(filepath.Join(rootPath, m.Folder), prev[m.Folder], true); err != nil {
					fail(err)
				}
			}
		case msgRolledBack:
			i, ok := byName[m.Folder]
			if !ok || m.RolledBack == nil {
				return
			}
			out := *m.RolledBack
			f := &res.Folders[i]
			f.Stats = Stats{Messages: out.Messages, Written: out.Messages, Existed: out.Kept, Bytes: out.Bytes, UIDValidity: out.UIDValidity, NextUID: out.NextUID}
			f.Outcome = OutcomeRolledBack
			if r.cfg.DryRun {
				return
			}
			old := prev[m.Folder]
			src := filepath.Join(rootPath, m.Folder)
			sum := hex.EncodeToString(out.SHA[:])
			if !out.Changed {
				f.Outcome, f.Stats.Written = OutcomeUpToDate, 0
				if old != nil && old.RolledBack && old.SHA256 == sum && old.Offset == out.Bytes && old.Inode == out.Inode {
					return
				}
			}
			base := State{}
			if old != nil {
				base = *old
			}
			next := &State{User: u.Name, UID: u.UID, Source: src, Dev: out.Dev, Inode: out.Inode, Size: out.Size, Offset: out.Bytes,
				SHA256: sum, BaseIndex: base.BaseIndex, Messages: max(out.Seq, base.Messages), Bytes: out.Bytes,
				Maildir: filepath.Join(maildirPath, f.Maildir), UIDValidity: out.UIDValidity, KeepHeaders: base.KeepHeaders,
				Unescape: base.Unescape, Zone: base.Zone, RolledBack: true, Time: time.Now().UTC()}
			if next.Zone == "" {
				next.Zone = r.zone
			}
			if err := recs.sync(src, next); err != nil {
				fail(err)
				return
			}
			prev[m.Folder] = next
			named[src] = true
			if err := store.Save(u.Name, prev); err != nil {
				fail(err)
				return
			}
			if old != nil {
				StateStore{Dir: store.Dir}.dropOlder(u.Name, kindFolder, src, next)
			}
			log(EventRolledBack, folderWith(m.Folder, "messages", out.Messages, "bytes", out.Bytes, "kept", out.Kept,
				"uidvalidity", out.UIDValidity, "next_uid", out.NextUID, "changed", out.Changed))
		case msgFolderRemoved:
			if r.cfg.DryRun {
				return
			}
			log(EventNotice, folderWith(m.Folder, "kind", EventFolderMovedAside,
				"detail", "its Maildir++ folder is gone: the mbox file was moved to "+m.Err))
			if r.cfg.Warn != nil && m.Err != "" {
				r.cfg.Warn(fmt.Sprintf("user %s: folder %s is gone from the Maildir: its mbox moved to %s", u.Name, m.Folder, m.Err))
			}
			delete(prev, m.Folder)
			if err := store.Save(u.Name, prev); err != nil {
				fail(err)
			}
			res.FoldersRemoved++
		case msgFolderFailed:
			fields := folderWith(m.Folder, "outcome", OutcomeFailed, "err", m.Err)
			switch i, ok := byName[m.Folder]; {
			case ok:
				res.Folders[i].Outcome, res.Folders[i].Err = OutcomeFailed, errors.New(m.Err)
			case m.FolderInfo != nil && m.FolderInfo.Source == "":
				// A Maildir++ folder refused for its name: it has no mbox file.
				res.Folders = append(res.Folders, FolderResult{Folder: *m.FolderInfo, Outcome: OutcomeFailed, Err: errors.New(m.Err)})
				fields = with("folder", m.FolderInfo.Name, "dst", filepath.Join(maildirPath, m.FolderInfo.Maildir), "outcome", OutcomeFailed, "err", m.Err)
			default:
				res.Folders = append(res.Folders, FolderResult{Folder: Folder{Name: m.Folder, Source: m.Folder}, Outcome: OutcomeFailed, Err: errors.New(m.Err)})
			}
			log(EventFolderFailed, fields)
		}
	})
	if err != nil {
		return fmt.Errorf("migrate: rollback: folders in %s: %w", rootPath, err)
	}
	if saveErr != nil {
		return saveErr
	}
	return foldersFailed(res.Folders)
}

// EventFolderMovedAside is the notice that a rollback moved the mbox file of a folder gone from
// the Maildir out of the folder root.
const EventFolderMovedAside = "folder-moved-aside"
