package migrate

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/host"
	"github.com/maildirmig/maildirmig/internal/audit"
	"github.com/maildirmig/maildirmig/internal/lock"
	"github.com/maildirmig/maildirmig/internal/worker"
	"github.com/maildirmig/maildirmig/mbox"
	"github.com/maildirmig/maildirmig/users"
)

// Source says where a user's mbox is.
type Source int

const (
	SourceSpool   Source = iota // <spool dir>/USER (the mbox command)
	SourceMailbox               // ~USER/Mailbox (the Mailbox command)
)

// After values: what becomes of a source once its messages are durable and verified.
const (
	AfterKeep     = "keep"
	AfterRename   = "rename"   // renamed to <source>.migrated-<time>
	AfterTruncate = "truncate" // emptied in place (the MTA keeps delivering to the same file)
)

// Afters lists the After values, the default first.
var Afters = []string{AfterKeep, AfterRename, AfterTruncate}

// Audit log events of a migration, named and described in the registry, audit.Events.
const (
	EventRunStart   = audit.EventRunStart
	EventRunEnd     = audit.EventRunEnd
	EventUserStart  = audit.EventUserStart
	EventUserDone   = audit.EventUserDone
	EventUserSkip   = audit.EventUserSkipped
	EventUserFailed = audit.EventUserFailed
	EventNotice     = audit.EventNotice // with "kind": an Event's Kind or one of the Event* kinds
	EventMessage    = audit.EventMessage
	EventChange     = audit.EventMessageChanged
	EventAfter      = audit.EventSourceAfter
)

// EventMaildirGone is the notice that the Maildir a source was migrated into is gone, and that
// a pass writes it again.
const EventMaildirGone = "maildir-gone"

// maildirGone reports whether the Maildir p is gone, looked at (never followed) as root looks
// at a folder root: the worker finds out for real.
func maildirGone(p string) bool {
	var st unix.Stat_t
	return errors.Is(unix.Lstat(p, &st), unix.ENOENT)
}

// EventRecordsLost is the notice that a source's records were missing or cut short, and that
// a mirror pass rebuilds them from the Maildir.
const EventRecordsLost = "records-lost"

// Outcomes of one user's migration.
const (
	OutcomeMigrated    = "migrated"
	OutcomeUpToDate    = "up-to-date"
	OutcomeNoMailbox   = "no-mailbox"
	OutcomeFailed      = "failed"
	OutcomeLockTimeout = "lock-timeout"
)

// Config is one batch migration. Every system path (passwd, group, login.defs, the spool
// directory, the homes found in passwd, StateDir and AuditLog) is resolved under Root.
type Config struct {
	host.Host     // the system migrated: its root, accounts, spool, state and audit log
	Source        Source
	Users         []string // only these users
	MinUID        int      // -1 = login.defs
	NoRoot        bool
	Maildir       string // destination under each home; "" = Maildir
	Folders       string // mbox folder root under each home, migrated to Maildir++ folders; "" = mail
	NoFolders     bool   // migrate the INBOX only
	Jobs          int    // users migrated at a time; 0 = host.DefaultJobs
	Force         bool   // migrate a user whose migrated part changed, from the start
	After         string // keep (default), rename or truncate
	LockTimeout   time.Duration
	StallTimeout  time.Duration  // a worker making no progress for this long is killed; 0 = DefaultStallTimeout
	AuditMessages bool           // one audit line per message
	DryRun        bool           // Rollback: say what would be done, write nothing
	Restorecon    string         // where SELinux is enabled: relabel each Maildir written with this restorecon, as its user
	Convert       ConvertOptions // KeepHeaders, Unescape, Location and Maildir are used
	Argv          []string       // for the audit log's run-start
	Version       string

	// Callbacks, for the console; they may be called from several goroutines at once.
	Progress  func(n int64)                 // source bytes consumed
	Message   func(user string, n int64)    // n more messages of the user's read (INBOX or folder), as they are read
	UserStart func(user string, size int64) // a user's migration begins
	UserDone  func(UserResult)
	Notice    func(user string, e Event)
	Warn      func(msg string)
}

// UserResult is what happened to one user.
type UserResult struct {
	User    string
	UID     int
	Src     string
	Dst     string
	Outcome string // one of the Outcome constants
	Stats   Stats
	After   string // what was done to the source: "", "renamed to ...", "truncated"
	Folders []FolderResult
	// FoldersRemoved counts the folders whose mbox is gone, forgotten by this run (their
	// Maildir++ folders removed, or kept and said why).
	FoldersRemoved int
	Err            error
	Elapsed        time.Duration
}

// Summary totals a run.
type Summary struct {
	Users, Migrated, UpToDate, NoMailbox, Failed, LockTimeouts int
	Messages, Written, Existed, Bytes                          int64
	Elapsed                                                    time.Duration
	Run                                                        string // the audit log's run id
	// Killed names the users whose worker was killed before it could remove the tmp files of
	// its pending batch (an interrupt it did not answer in time, or a stall): the next run
	// removes them.
	Killed []string
}

func (c *Config) defaults() {
	// Workers start in /, and the state is keyed on each source's path: every path must be
	// absolute. The working directory can only fail to be found if it was removed.
	if h, err := c.Host.Abs(); err == nil {
		c.Host = h
	}
	if c.Maildir == "" {
		c.Maildir = "Maildir"
	}
	if c.Jobs <= 0 {
		c.Jobs = host.DefaultJobs()
	}
	if c.After == "" {
		c.After = AfterKeep
	}
	if c.LockTimeout <= 0 {
		c.LockTimeout = defaultLockTimeout
	}
}

// defaultLockTimeout is how long a source's locks are waited for when Config.LockTimeout is 0.
const defaultLockTimeout = 30 * time.Second

// Paths returns a user's source mbox and destination Maildir, resolved under Root.
func (c *Config) Paths(u users.User) (src, home, dst string) {
	home = c.Under(u.Home)
	switch c.Source {
	case SourceMailbox:
		src = filepath.Join(home, "Mailbox")
	default:
		src = filepath.Join(c.Spool(), u.Name)
	}
	name := c.Maildir
	if name == "" {
		name = "Maildir"
	}
	return src, home, filepath.Join(home, name)
}

func (c *Config) listUsers() ([]users.User, error) {
	o := users.Options{Host: c.Host, MinUID: c.MinUID, Names: c.Users, NoRoot: c.NoRoot}
	return users.List(o)
}

// owner is the uid that must own a user's spool and home: the user's when we are root, ours
// otherwise (a demo tree or a test made by an unprivileged user).
func owner(u users.User) int {
	if os.Geteuid() != 0 {
		return os.Geteuid()
	}
	return u.UID
}

// Run migrates every selected user, Jobs at a time. One user's failure is reported and counted
// and never stops the others. The error is for what stops the whole run: the user list cannot
// be read, the audit log cannot be written, or ctx was cancelled (locks are released and tmp
// files removed first).
func Run(ctx context.Context, cfg Config) (Summary, error) {
	return runUsers(ctx, cfg, cfg.Source.Kind(), (*runner).user)
}

// runUsers is the harness of Run and Rollback: the user list, the audit log and the state
// directory, then each user through each, Jobs at a time, then the run's totals. what is the
// command the run-start event names.
func runUsers(ctx context.Context, cfg Config, what string, each func(*runner, context.Context, users.User) (UserResult, error)) (Summary, error) {
	cfg.defaults()
	start := time.Now()
	var sum Summary
	list, err := cfg.listUsers()
	if err != nil {
		return sum, err
	}
	alog, err := audit.OpenUnder(cfg.Root, cfg.AuditPath())
	if err != nil {
		return sum, fmt.Errorf("migrate: %w", err)
	}
	sum.Run = alog.Run()
	defer alog.Close()
	stateDir, err := audit.MkdirUnder(cfg.Root, cfg.StatePath())
	if err != nil {
		return sum, fmt.Errorf("migrate: %w", err)
	}
	for _, n := range alog.Notices() {
		if cfg.Warn != nil {
			cfg.Warn(n)
		}
	}
	state := StateStore{Dir: stateDir}
	if os.Geteuid() != 0 && cfg.Warn != nil {
		cfg.Warn(fmt.Sprintf("not running as root: migrating in-process as uid %d, and expecting every spool and home to belong to uid %d", os.Geteuid(), os.Geteuid()))
	}
	if err := alog.Event(EventRunStart, map[string]any{"argv": cfg.Argv, "version": cfg.Version, "users": len(list), "jobs": cfg.Jobs, "root": nonEmpty(cfg.Root), "after": cfg.After, "command": what}); err != nil {
		return sum, err
	}
	if err := sweepStateTemps(alog, stateDir, cfg.Warn); err != nil {
		return sum, err
	}
	r := &runner{cfg: cfg, audit: alog, state: state, withFlock: cfg.Source == SourceSpool && cfg.Root == "" && postfixUsesFlock(),
		zone: zoneName(cfg.Convert.Location)}

	runCtx, cancel := context.WithCancel(worker.WithStallTimeout(ctx, cfg.StallTimeout))
	defer cancel()
	var mu sync.Mutex
	var fatal error
	g, gctx := errgroup.WithContext(runCtx)
	g.SetLimit(cfg.Jobs)
	for _, u := range list {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			res, err := each(r, gctx, u)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				// Only the audit log failing gets here: stop everything.
				if fatal == nil {
					fatal = err
				}
				cancel()
				return nil
			}
			sum.add(res)
			if cfg.UserDone != nil {
				cfg.UserDone(res)
			}
			return nil
		})
	}
	_ = g.Wait()
	syncErr := r.stateSync.sync(stateDir)
	sum.Elapsed = time.Since(start)
	endErr := alog.Event(EventRunEnd, map[string]any{
		"users": sum.Users, "migrated": sum.Migrated, "up_to_date": sum.UpToDate, "no_mailbox": sum.NoMailbox,
		"failed": sum.Failed, "lock_timeouts": sum.LockTimeouts, "messages": sum.Messages, "written": sum.Written,
		"existed": sum.Existed, "bytes": sum.Bytes, "seconds": sum.Elapsed.Seconds(), "interrupted": ctx.Err() != nil,
	})
	if err := alog.Sync(); err != nil && endErr == nil {
		endErr = fmt.Errorf("migrate: %w", err)
	}
	if endErr == nil {
		endErr = syncErr
	}
	switch {
	case fatal != nil:
		return sum, fatal
	case ctx.Err() != nil:
		return sum, ctx.Err()
	}
	return sum, endErr
}

func nonEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Summary) add(r UserResult) {
	s.Users++
	switch r.Outcome {
	case OutcomeMigrated, OutcomeRolledBack:
		s.Migrated++
	case OutcomeUpToDate:
		s.UpToDate++
	case OutcomeNoMailbox, OutcomeNeverMigrated:
		s.NoMailbox++
	case OutcomeLockTimeout:
		s.LockTimeouts++
		s.Failed++
	case OutcomeFailed:
		s.Failed++
	}
	if errors.Is(r.Err, ErrWorkerKilled) {
		s.Killed = append(s.Killed, r.User)
	}
	t := r.Total()
	s.Messages += t.Messages - t.Skipped
	s.Written += t.Written
	s.Existed += t.Existed
	s.Bytes += t.Bytes
}

// fail records err as the user's: OutcomeLockTimeout when it is only that the source stayed
// locked, else OutcomeFailed.
func (r *UserResult) fail(err error) {
	r.Outcome, r.Err = OutcomeFailed, err
	if errors.Is(err, ErrLockTimeout) {
		r.Outcome = OutcomeLockTimeout
	}
}

// Total adds up the INBOX and the folders: messages, written, existed, skipped, bytes, what
// mirror passes changed and removed, whether any UIDs were renumbered, and why a Maildir
// was live.
func (r UserResult) Total() Stats {
	t := Stats{Messages: r.Stats.Messages, Written: r.Stats.Written, Existed: r.Stats.Existed, Skipped: r.Stats.Skipped,
		Bytes: r.Stats.Bytes, Renumbered: r.Stats.Renumbered, Changed: r.Stats.Changed, Removed: r.Stats.Removed,
		Deleted: r.Stats.Deleted, Live: r.Stats.Live}
	for _, f := range r.Folders {
		t.Messages += f.Stats.Messages
		t.Written += f.Stats.Written
		t.Existed += f.Stats.Existed
		t.Skipped += f.Stats.Skipped
		t.Bytes += f.Stats.Bytes
		t.Renumbered = t.Renumbered || f.Stats.Renumbered
		t.Changed += f.Stats.Changed
		t.Removed += f.Stats.Removed
		t.Deleted += f.Stats.Deleted
		if t.Live == "" {
			t.Live = f.Stats.Live
		}
	}
	return t
}

// postfixUsesFlock reports whether Postfix's local(8) takes flock locks on spools too.
func postfixUsesFlock() bool {
	out, err := exec.Command("postconf", "-h", "mailbox_delivery_lock").Output()
	return err == nil && strings.Contains(string(out), "flock")
}

type runner struct {
	liveSaid  sync.Map // users told their Maildir is in use
	cfg       Config
	audit     *audit.Log
	state     StateStore
	stateSync stateSync // of the states passes saved with saveUnsynced
	withFlock bool
	zone      string // zoneName of cfg.Convert.Location
}

// userAudit writes the audit events of one user, each with the user's fields, and keeps the
// first error of the audit log: the one error a user's run returns.
type userAudit struct {
	log  *audit.Log
	base map[string]any
	err  error
}

func (r *runner) userAudit(u users.User, src, dst string) *userAudit {
	return &userAudit{log: r.audit, base: map[string]any{"user": u.Name, "uid": u.UID, "src": src, "dst": dst}}
}

// with returns the user's fields and the key-value pairs kv.
func (a *userAudit) with(kv ...any) map[string]any {
	m := make(map[string]any, len(a.base)+len(kv)/2)
	for k, v := range a.base {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// event writes one event with fields.
func (a *userAudit) event(name string, fields map[string]any) {
	if err := a.log.Event(name, fields); err != nil && a.err == nil {
		a.err = err
	}
}

// user migrates one user. The returned error is reserved for a failed audit write; everything
// else about the user is in the result.
func (r *runner) user(ctx context.Context, u users.User) (UserResult, error) {
	src, home, dst := r.cfg.Paths(u)
	res := UserResult{User: u.Name, UID: u.UID, Src: src, Dst: dst}
	began := time.Now()
	ua := r.userAudit(u, src, dst)
	with, log := ua.with, ua.event
	log(EventUserStart, with())
	err := r.inbox(ctx, u, src, home, &res, with, log)
	if !r.cfg.NoFolders && ctx.Err() == nil && !errors.Is(err, ErrUnsafeHome) {
		noMailbox := errors.Is(err, ErrNoMailbox)
		ferr := r.folders(ctx, u, home, &res, with, log)
		for _, f := range res.Folders {
			if f.Outcome == OutcomeMigrated && (err == nil || noMailbox) {
				res.Outcome, err = OutcomeMigrated, nil
			}
		}
		if noMailbox && err != nil && len(res.Folders) > 0 {
			res.Outcome, err = OutcomeUpToDate, nil
		}
		if ferr != nil {
			if err == nil || errors.Is(err, ErrNoMailbox) {
				err = ferr
			} else {
				err = errors.Join(err, ferr)
			}
		}
	}
	err = r.relabel(ctx, u, dst, &res, err, with, log)
	res.Elapsed = time.Since(began)
	switch {
	case err == nil:
		total := res.Total()
		log(EventUserDone, with("outcome", res.Outcome, "folders", len(res.Folders), "total_messages", total.Messages, "total_written", total.Written,
			"messages", res.Stats.Messages, "written", res.Stats.Written,
			"existed", res.Stats.Existed, "skipped", res.Stats.Skipped, "bytes", res.Stats.Bytes,
			"end_offset", res.Stats.EndOffset, "uidvalidity", res.Stats.UIDValidity, "next_uid", res.Stats.NextUID,
			"renumbered", res.Stats.Renumbered, "loose", res.Stats.Loose, "after", nonEmpty(res.After),
			"seconds", res.Elapsed.Seconds()))
	case errors.Is(err, ErrNoMailbox):
		res.Outcome = OutcomeNoMailbox
		log(EventUserSkip, with("reason", "no mailbox"))
	default:
		res.fail(err)
		log(EventUserFailed, with("outcome", res.Outcome, "err", err.Error()))
	}
	return res, ua.err
}

// inbox migrates the user's INBOX source, the spool or ~/Mailbox: root opens and locks it,
// resumes it where its state ends, has a worker convert the rest (resume.run), and applies
// --after once all of it is migrated and proved.
func (r *runner) inbox(ctx context.Context, u users.User, src, home string, res *UserResult, with func(...any) map[string]any, log func(string, map[string]any)) (err error) {
	uid := owner(u)
	f, st, err := openSpool(src, uid)
	if err != nil {
		return err
	}
	defer f.Close()
	if r.cfg.UserStart != nil {
		r.cfg.UserStart(u.Name, st.Size)
	}
	lockCtx, cancel := context.WithTimeout(ctx, r.cfg.LockTimeout)
	defer cancel()
	dl, err := r.lockSource(ctx, u, src, home)
	if err != nil {
		return ctxLockError(ctx, err)
	}
	defer func() {
		// A dotlock left behind holds the MTA's deliveries back until it is stale.
		if rerr := dl.Release(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("migrate: releasing the dotlock of %s: %w", src, rerr))
		}
	}()
	if err := lock.File(lockCtx, f, r.cfg.LockTimeout, r.withFlock); err != nil {
		return ctxLockError(ctx, err)
	}
	if st, err = recheckSpool(f, src, uid); err != nil {
		return err
	}
	kind := r.cfg.Source.Kind()
	prev, err := r.state.Load(u.Name, kind, src)
	if err != nil {
		return err
	}
	if r.state.recordsLost(u.Name, kind, src, prev) {
		prev.RecordsLost = true
		log(EventNotice, with("kind", EventRecordsLost, "detail", "the records of the last pass are missing or cut short: this pass rebuilds them from the Maildir"))
	}
	if prev != nil && prev.Offset > 0 && maildirGone(prev.Maildir) {
		prev.MaildirGone = true
		log(EventNotice, with("kind", EventMaildirGone, "detail", prev.Maildir+" is gone: this pass writes every message again"))
	}
	next := &State{User: u.Name, UID: u.UID, Kind: kind, Source: src, Dev: uint64(st.Dev), Inode: st.Ino, Maildir: filepath.Join(home, r.cfg.Maildir),
		KeepHeaders: r.cfg.Convert.KeepHeaders, Unescape: unescapeName(r.cfg.Convert.Unescape), Zone: r.zone}
	rs, zoneKept, err := startResume(f, src, st, prev, next, r.cfg.Force)
	if err != nil {
		return err
	}
	if zoneKept != nil {
		log(EventNotice, with("kind", zoneKept.Kind, "message", zoneKept.Message, "offset", zoneKept.Offset, "detail", zoneKept.Detail))
	}
	start, index := rs.start, rs.index
	recs, err := r.state.openRecords(u.Name, kind, src, rs.prev, rs.fresh)
	if err != nil {
		return err
	}
	defer recs.Close()
	// The state is saved at each resume point the worker reports, once this process has
	// checked it is one; a mirror pass saves it once, at its end.
	dropped := false
	save := func() error {
		// The records of the messages before the resume point are on disk before the state
		// says they are migrated.
		if err := recs.sync(); err != nil {
			return err
		}
		recs.note(next)
		if err := r.state.saveUnsynced(next, &r.stateSync); err != nil {
			return err
		}
		if rs.fresh && !dropped {
			saved := *next
			r.stateSync.later(func() { r.state.dropOlder(u.Name, kind, src, &saved) })
			dropped = true
		}
		return nil
	}
	// The state saved before the pass writes, marked open, is saved while the worker starts,
	// before it is given its request: durable before anything is written, as before the
	// worker started, without the worker's start waiting for its syncs.
	opened := func() error {
		st := rs.opened()
		return r.state.Save(&st)
	}
	var convert func(durable func(int64, Stats) error) (Stats, error)
	outcome := OutcomeUpToDate
	switch {
	case rs.mirror:
		convert = func(func(int64, Stats) error) (Stats, error) {
			if err := checkSpace(home, mirrorGrowth(rs, st.Size)); err != nil {
				return Stats{}, err
			}
			return r.mirror(ctx, u, f, st.Size, home, rs, opened, recs.add, with, log)
		}
	case start < st.Size:
		outcome = OutcomeMigrated
		convert = func(durable func(int64, Stats) error) (Stats, error) {
			if err := checkSpace(home, st.Size-start); err != nil {
				return Stats{}, err
			}
			return r.convert(ctx, u, f, st.Size, home, start, index, next, opened, durable, recs.add, with, log)
		}
	}
	if st.Size == 0 && (prev == nil || prev.Offset == 0) {
		empty := r.emptyInbox(ctx, u, home, &outcome, with, log)
		convert = func(durable func(int64, Stats) error) (Stats, error) {
			if err := opened(); err != nil {
				return Stats{}, err
			}
			return empty(durable)
		}
	}
	res.Stats.EndOffset = start
	stats, err := rs.run(convert, save)
	if err != nil {
		return err
	}
	if rs.mirror && (stats.Written > 0 || stats.Live == "" && stats.Changed+stats.Removed > 0) {
		outcome = OutcomeMigrated
	}
	res.Stats, res.Outcome = stats, outcome
	end := res.Stats.EndOffset
	if r.cfg.After == AfterKeep || end == 0 || end != st.Size {
		return nil
	}
	// This run checked each message it converted against its file as the file became
	// durable; what earlier runs migrated, and what a mirror pass kept, is proved now, from
	// the locked source, before the source may go.
	if rs.mirror {
		start = end
	}
	if start > 0 {
		if err := r.prove(ctx, u, f, start, home, next); err != nil {
			return fmt.Errorf("migrate: not applying --after %s to %s: %w", r.cfg.After, src, err)
		}
	}
	to := ""
	if r.cfg.After == AfterRename {
		to = src + ".migrated-" + time.Now().Format("20060102T150405")
	}
	next.Intent, next.IntentTo = r.cfg.After, to
	if err := r.state.Save(next); err != nil {
		return err
	}
	after, err := applyAfter(f, dl, src, r.cfg.After, to)
	if err != nil {
		return err
	}
	res.After = after
	log(EventAfter, with("action", r.cfg.After, "result", after))
	next.Offset, next.SHA256, next.BaseIndex, next.Size = 0, emptySHA256, next.Messages, 0
	next.After, next.Intent, next.IntentTo = after, "", ""
	next.Time = time.Now().UTC()
	return r.state.Save(next)
}

// prove has a worker show that every message of the locked source's first size bytes is in
// the Maildir st records, with the content stored, under the options st records, or was
// deleted there through Dovecot, and that its dovecot-uidlist has st.UIDValidity.
func (r *runner) prove(ctx context.Context, u users.User, f *os.File, size int64, home string, st *State) error {
	res, err := verifyState(ctx, Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}, owner(u), f, size, home, st, true, r.state, st.Kind, foreignFiles{})
	if err != nil {
		return err
	}
	// A message the user deleted through Dovecot since is no reason to keep the source.
	if len(res.Missing) > 0 || len(res.Bad) > 0 || res.Found+int64(len(res.Deleted)) != res.Messages {
		return fmt.Errorf("the Maildir lacks migrated messages: %s", res.describe())
	}
	return nil
}

var emptySHA256 = hex.EncodeToString(newSHA256().Sum(nil))

func ctxLockError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrLockTimeout, err)
	}
	return err
}

func unescapeName(u mbox.Unescape) string {
	switch u {
	case mbox.UnescapeMboxrd:
		return "mboxrd"
	case mbox.UnescapeMboxo:
		return "mboxo"
	}
	return ""
}

// applyAfter renames the locked source to to, or truncates it.
func applyAfter(f *os.File, lk sourceLock, src, after, to string) (string, error) {
	switch after {
	case AfterTruncate:
		if err := f.Truncate(0); err != nil {
			return "", fmt.Errorf("migrate: truncating %s: %w", src, err)
		}
		if err := f.Sync(); err != nil {
			return "", fmt.Errorf("migrate: truncating %s: %w", src, err)
		}
		return "truncated", nil
	case AfterRename:
		// Beside the lock, through its directory's fd (for ~/Mailbox in the worker that holds
		// the lock, as the user), only while src still is the locked file, replacing nothing.
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return "", fmt.Errorf("migrate: %s: %w", src, err)
		}
		if err := lk.RenameSource(filepath.Base(src), filepath.Base(to), uint64(st.Dev), st.Ino); err != nil {
			return "", err
		}
		return "renamed to " + to, nil
	}
	return "", fmt.Errorf("migrate: unknown --after %q", after)
}

// mirrorGrowth is what a mirror pass of a source of size bytes must have room for: what the
// source grew by since the last pass, as a conversion from its end would. A mirror pass reads
// the whole source and writes what is new in it; a source grown past the free space (a user's
// sparse file costs them nothing) is refused before it is read.
func mirrorGrowth(rs *resume, size int64) int64 {
	if rs.prev == nil {
		return size
	}
	return max(0, size-rs.prev.Offset)
}

// checkSpace refuses a migration the destination's filesystem cannot hold.
func checkSpace(home string, need int64) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(home, &fs); err != nil {
		return nil // the worker will report a missing home precisely
	}
	return roomFor(&fs, home, need)
}

// checkSpaceFD refuses need bytes more on the filesystem of the open file or directory fd,
// named where: a user's sparse file costs them nothing, and must not fill a filesystem
// others share.
func checkSpaceFD(fd int, where string, need int64) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return nil // the writes will say what is wrong
	}
	return roomFor(&fs, where, need)
}

// roomFor fails unless the filesystem fs, holding where, has need bytes free for users. The
// error is ENOSPC, as the writes would have said, with what was free and needed.
func roomFor(fs *unix.Statfs_t, where string, need int64) error {
	if free := int64(fs.Bavail) * int64(fs.Bsize); free < need {
		return fmt.Errorf("migrate: %s: %w: %d bytes free, %d needed", where, unix.ENOSPC, free, need)
	}
	return nil
}

// convert has a worker convert the locked source from start, in the mode next records, once
// opened succeeded (runWorkerAfter). durable gets each resume point the worker reports, and an error from it stops the worker.
func (r *runner) convert(ctx context.Context, u users.User, f *os.File, size int64, home string, start, index int64, next *State, opened func() error, durable func(int64, Stats) error, record func(MessageRecord), with func(...any) map[string]any, log func(string, map[string]any)) (Stats, error) {
	req := r.request(opConvert, u, home)
	req.Size, req.Location, req.Loose, req.LooseFrom = size, loadableZone(next.Zone), next.Loose, next.LooseFrom
	req.StartOffset, req.StartIndex = start, index
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var st Stats
	var got bool
	var bad error
	err := runWorkerAfter(wctx, Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}, req, f, opened, func(m workerMsg) {
		r.dispatch(u.Name, m, with, "", record, log)
		switch m.T {
		case msgDurable:
			if m.Stats != nil && bad == nil {
				if bad = durable(m.Stats.EndOffset, *m.Stats); bad != nil {
					stop()
				}
			}
		case msgStats:
			if m.Stats != nil {
				st, got = *m.Stats, true
			}
		}
	})
	switch {
	case bad != nil:
		return st, bad
	case err == nil && !got:
		err = errors.New("migrate: the worker ended without a result")
	}
	return st, err
}

// mirror has a worker make the user's Maildir mirror the whole locked source (mirror.go),
// from the records rs.prev names, once opened succeeded (runWorkerAfter); record gets the new
// records, in source order.
func (r *runner) mirror(ctx context.Context, u users.User, f *os.File, size int64, home string, rs *resume, opened func() error, record func(MessageRecord), with func(...any) map[string]any, log func(string, map[string]any)) (Stats, error) {
	kind := r.cfg.Source.Kind()
	var prior string
	if !rs.prev.RecordsLost {
		var err error
		if prior, err = r.state.readRecords(u.Name, kind, rs.next.Source, rs.prev); err != nil {
			return Stats{}, err
		}
	}
	foreign, err := r.cfg.foreign(r.state, u, r.cfg.Source, rs.next.Maildir)
	if err != nil {
		return Stats{}, err
	}
	req := r.request(opMirror, u, home)
	req.Size, req.Location = size, loadableZone(rs.next.Zone)
	req.Prior, req.NextSeq, req.Foreign, req.StartIndex = prior, rs.index, foreign, rs.prev.BaseIndex
	req.Interrupted = rs.prev.Open
	var st Stats
	var got bool
	err = runWorkerAfter(ctx, Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}, req, f, opened, func(m workerMsg) {
		r.dispatch(u.Name, m, with, "", record, log)
		if m.T == msgStats && m.Stats != nil {
			st, got = *m.Stats, true
		}
	})
	if err == nil && !got {
		err = errors.New("migrate: the worker ended without a result")
	}
	return st, err
}

// foreign returns the base names of the files the user's other INBOX source than source
// (~/Mailbox for the spool, the spool for ~/Mailbox) recorded into maildirPath: a mirror pass
// or a proof of source's messages must leave them alone.
func (c *Config) foreign(store StateStore, u users.User, source Source, maildirPath string) (foreignFiles, error) {
	other := *c
	other.Source = SourceMailbox
	if source == SourceMailbox {
		other.Source = SourceSpool
	}
	src, _, _ := other.Paths(u)
	ost, err := store.Load(u.Name, other.Source.Kind(), src)
	var out foreignFiles
	if err != nil || ost == nil || ost.Maildir != maildirPath {
		return out, err
	}
	text, err := store.readRecords(u.Name, other.Source.Kind(), src, ost)
	if err != nil {
		return out, err
	}
	for l := range strings.Lines(text) {
		// "<seq> <uid> <base>", or with the identity a rollback records after it, or from a
		// version that recorded no name, "<seq> <uid>": the worker finds that file by its
		// sequence number, which no other file of ours in the Maildir has.
		switch f := strings.Fields(l); len(f) {
		case 2:
			if seq, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				out.Seqs = append(out.Seqs, seq)
			}
		case 3:
			out.Names = append(out.Names, f[2])
		case 6:
			if base, ok := unescapeRecordName(f[2]); ok {
				out.Names = append(out.Names, base)
			}
		}
	}
	return out, nil
}

// foreignFiles are the files of a user's other INBOX source in the Maildir both were migrated
// into, which a pass of this source must neither claim nor remove: by name, and by the
// sequence number of records that name none.
type foreignFiles struct {
	Names []string `json:"names,omitempty"`
	Seqs  []int64  `json:"seqs,omitempty"`
}

// in returns the names of the foreign files, those named by sequence number looked up in
// bySeq (every file of ours by its sequence number).
func (f foreignFiles) in(bySeq map[int64][]string) map[string]bool {
	set := make(map[string]bool, len(f.Names)+len(f.Seqs))
	for _, b := range f.Names {
		set[b] = true
	}
	for _, seq := range f.Seqs {
		for _, b := range bySeq[seq] {
			set[b] = true
		}
	}
	return set
}

// request is a request for op about the user u, whose home is at home, with the run's
// destination and conversion options.
func (r *runner) request(op string, u users.User, home string) *workerRequest {
	req := convertRequest(op, r.cfg.Convert)
	req.Home, req.Owner, req.Maildir = home, owner(u), r.cfg.Maildir
	return req
}

// dispatch handles the answers every conversion of a user's sources has in common, the
// INBOX's and each folder's: a notice goes to the audit log and the console, a message record
// to the UID records and with AuditMessages the audit log, progress (bytes and messages read)
// to the console. fields gives the audit fields of the source; label, when not empty, prefixes
// its notices on the console.
func (r *runner) dispatch(user string, m workerMsg, fields func(...any) map[string]any, label string, record func(MessageRecord), log func(string, map[string]any)) {
	dispatch(m, func(e Event) {
		if e.Kind == EventMaildirLive {
			// Said once for the user, whose Maildir and its folders are one.
			if _, said := r.liveSaid.LoadOrStore(user, true); said {
				return
			}
		}
		log(EventNotice, fields("kind", e.Kind, "message", e.Message, "offset", e.Offset, "detail", e.Detail))
		if r.cfg.Notice != nil {
			if label != "" {
				e.Detail = label + ": " + e.Detail
			}
			r.cfg.Notice(user, e)
		}
	}, func(rec MessageRecord) {
		record(rec)
		if r.cfg.AuditMessages {
			log(EventMessage, fields("index", rec.Index, "offset", rec.Offset, "size", rec.Size, "sha256", rec.SHA256,
				"stored_sha256", nonEmpty(rec.StoredSHA256), "name", nonEmpty(rec.Name), "sub", nonEmpty(rec.Sub),
				"uid_imap", rec.UID, "existed", rec.Existed, "skipped", rec.Skipped))
		}
	}, r.cfg.Progress, func(n int64) {
		if r.cfg.Message != nil {
			r.cfg.Message(user, n)
		}
	})
	if m.T == msgChange && m.Change != nil {
		c := m.Change
		log(EventChange, fields("change", c.Kind, "name", c.Name, "to", nonEmpty(c.To), "why", c.Why))
	}
}

// zoneName names the zone From_ dates without one are read in: loc's, or for the local zone
// the one TZ or /etc/localtime names, so that a state can tell whether a later run reads
// them alike.
func zoneName(loc *time.Location) string {
	if loc != nil && loc != time.Local {
		return loc.String()
	}
	fromPath := func(p string) string {
		if i := strings.LastIndex(p, "zoneinfo/"); i >= 0 {
			return p[i+len("zoneinfo/"):]
		}
		return p
	}
	if tz, ok := os.LookupEnv("TZ"); ok {
		tz = strings.TrimPrefix(tz, ":")
		if tz == "" {
			return "UTC"
		}
		return fromPath(tz)
	}
	if p, err := os.Readlink("/etc/localtime"); err == nil {
		return fromPath(p)
	}
	return "Local"
}

// loadableZone returns name when this process can load that zone, "" (the worker's local
// zone, from the same TZ) otherwise.
func loadableZone(name string) string {
	if name == "" || name == "Local" || strings.HasPrefix(name, "/") {
		return ""
	}
	if _, err := time.LoadLocation(name); err != nil {
		return ""
	}
	return name
}
