package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/host"
	"github.com/maildirmig/maildirmig/internal/audit"
	"github.com/maildirmig/maildirmig/internal/fault"
)

// ErrSourceChanged is wrapped by the error returned when the already migrated part of a source
// is no longer what was migrated (flags or UIDs Dovecot wrote, messages expunged, a POP3
// client's deletions, another file): a mirror pass reads it whole again.
var ErrSourceChanged = errors.New("migrate: source changed since the last run")

// ErrStateMismatch is wrapped by the error returned when a run's destination or conversion
// options are not those the recorded migration of the same source used.
var ErrStateMismatch = errors.New("migrate: options differ from the earlier migration")

// State is what a run remembers about one user's source, so that the next run migrates only
// what was appended since and never brings back a message the user deleted from the Maildir.
type State struct {
	User        string `json:"user"`
	UID         int    `json:"uid"`
	Kind        string `json:"kind,omitempty"` // "mbox" (the spool) or "Mailbox" (~USER/Mailbox)
	Source      string `json:"source"`
	Dev         uint64 `json:"dev"`
	Inode       uint64 `json:"inode"`
	Size        int64  `json:"size"`       // the source's size when it was last seen
	Offset      int64  `json:"offset"`     // bytes migrated: source[0:Offset) ends at a message boundary
	SHA256      string `json:"sha256"`     // of source[0:Offset)
	BaseIndex   int64  `json:"base_index"` // position number of the message at offset 0
	Messages    int64  `json:"messages"`   // position number of the next message (all runs)
	Bytes       int64  `json:"bytes"`      // source bytes migrated over all runs
	Maildir     string `json:"maildir"`
	UIDValidity uint32 `json:"uidvalidity"`
	KeepHeaders bool   `json:"keep_headers,omitempty"`
	Unescape    string `json:"unescape,omitempty"`
	Zone        string `json:"zone,omitempty"` // the zone From_ dates without one were read in
	// Loose says the source was read in loose mode from offset 0 (its first From_ line has
	// no date), keyed on LooseFrom, that first line: a resumed run, --after's proof and
	// verify read the rest in that mode too, whatever the From_ line they start at.
	Loose     bool   `json:"loose,omitempty"`
	LooseFrom []byte `json:"loose_from,omitempty"`
	After     string `json:"after,omitempty"` // "renamed" or "truncated" when the source was dealt with
	// Intent is the --after action about to be applied to source[0:Offset) ("truncate" or
	// "rename", to IntentTo): a run that finds it knows whether the action happened before a
	// crash, rather than taking the emptied or renamed source for a changed one.
	Intent   string `json:"intent,omitempty"`
	IntentTo string `json:"intent_to,omitempty"`
	// Gen and RecordsSize name the records of the source's messages (records.go): their
	// generation, and how many bytes of it this state counts.
	Gen         int   `json:"gen,omitempty"`
	RecordsSize int64 `json:"records_size,omitempty"`
	// RecordsLost, set by root in a folder's state it hands a worker, says its records are
	// lost (StateStore.recordsLost): the folder is mirrored to rebuild them.
	RecordsLost bool `json:"records_lost,omitempty"`
	// MaildirGone, set by root on a state it reads, says the Maildir the state names is gone
	// (removed to migrate again): a mirror pass writes every message again.
	MaildirGone bool `json:"maildir_gone,omitempty"`
	// Open says a pass was writing into the Maildir when this state was saved: files of
	// ours from sequence number Messages on are that pass's, though not yet recorded. A
	// pass that ends saves its state without it; a file of ours that no record names is
	// otherwise not known to be this source's, and is never removed.
	Open bool `json:"open,omitempty"`
	// RolledBack says a rollback wrote the source from the Maildir: the next pass mirrors it
	// (the Maildir may have been kept, or removed to migrate again), from the records the
	// rollback made.
	RolledBack bool      `json:"rolled_back,omitempty"`
	Time       time.Time `json:"time"`
}

// Kind names of State.Kind.
const (
	KindSpool   = "mbox"
	KindMailbox = "Mailbox"

	// kindFolder names the UID records of an mbox folder, kept beside its user's folder states.
	kindFolder = "folder"
)

// Kind returns the State.Kind of a source.
func (s Source) Kind() string {
	if s == SourceMailbox {
		return KindMailbox
	}
	return KindSpool
}

// StateStore keeps one JSON file per source (kind and path) of each user in a root-only
// directory. Earlier builds kept one file per user, <user>.json: Load still reads it when
// it describes the same source, and Save removes it once its successor is written.
type StateStore struct {
	Dir string
}

// keyPath names the state file of a user's source: the kind and a hash of the path keep
// the spool and ~/Mailbox of one user apart, and a spool directory given differently too.
func (s StateStore) keyPath(user, kind, src string) (string, error) {
	p, err := s.path(user)
	if err != nil {
		return "", err
	}
	if kind != KindSpool && kind != KindMailbox && kind != kindFolder {
		return "", fmt.Errorf("migrate: state: unknown source kind %q", kind)
	}
	sum := sha256.Sum256([]byte(src))
	return strings.TrimSuffix(p, ".json") + "." + kind + "-" + hex.EncodeToString(sum[:6]) + ".json", nil
}

func (s StateStore) path(user string) (string, error) {
	if user == "" || strings.ContainsAny(user, "/\x00") || strings.HasPrefix(user, ".") {
		return "", fmt.Errorf("migrate: state: unusable user name %q", user)
	}
	return filepath.Join(s.Dir, user+".json"), nil
}

// Load returns the state of the user's source of the given kind at path src, or nil when
// there is none.
func (s StateStore) Load(user, kind, src string) (*State, error) {
	p, err := s.keyPath(user, kind, src)
	if err != nil {
		return nil, err
	}
	st, err := readState(p)
	if st != nil || err != nil {
		return st, err
	}
	return s.legacy(user, src)
}

// legacy returns the state an earlier build kept in <user>.json when it is about src, which
// it then was whatever the command: the spool for mbox, ~/Mailbox for Mailbox.
func (s StateStore) legacy(user, src string) (*State, error) {
	p, err := s.path(user)
	if err != nil {
		return nil, err
	}
	st, err := readState(p)
	if st == nil || err != nil || st.Source != src {
		return nil, err
	}
	return st, nil
}

// readState reads one state file, nil when there is none.
func readState(p string) (*State, error) {
	var st State
	if ok, err := readStateFile(p, &st); !ok || err != nil {
		return nil, err
	}
	return &st, nil
}

// maxStateFile is the most a state file may hold, for the reader and the writer alike: a state
// the reader would refuse is never written. It fits the folder states of some 30,000 folders.
const maxStateFile = 16 << 20

// readStateFile decodes the JSON state file p into v, and reports false when there is none.
// It never follows a symlink and reads only a regular file: every state file, the INBOX's
// and the folders', is read here.
func readStateFile(p string, v any) (bool, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("migrate: state: %w", &os.PathError{Op: "open", Path: p, Err: err})
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("migrate: state: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("migrate: state %s: not a regular file", p)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return false, fmt.Errorf("migrate: state: %w", err)
	}
	if len(b) > maxStateFile {
		return false, fmt.Errorf("migrate: state %s: more than %d bytes", p, maxStateFile)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("migrate: state %s: %w", p, err)
	}
	return true, nil
}

// Save writes the state of st's source atomically: a crash leaves the old state or the new
// one.
func (s StateStore) Save(st *State) error {
	if st.Kind == "" {
		st.Kind = KindSpool
	}
	p, err := s.keyPath(st.User, st.Kind, st.Source)
	if err != nil {
		return err
	}
	if err := writeStateFile(s.Dir, p, st); err != nil {
		return err
	}
	if old, err := s.legacy(st.User, st.Source); err == nil && old != nil {
		if lp, err := s.path(st.User); err == nil {
			_ = os.Remove(lp)
		}
	}
	return nil
}

// saveUnsynced is Save without the fsync of the state directory that makes the new state's
// rename durable: the new state is on disk, but a crash may bring back the one it replaced
// until sync runs. A pass saves so the states it makes while it writes and its last one: the
// state it replaces says the pass is open (or records the same messages), and a crash that
// brings that back only makes the next run resume from there, as a crash just before the save
// would. Nothing may depend on the new state before sync: the older records a fresh pass
// replaces are removed after it, through sync.after.
func (s StateStore) saveUnsynced(st *State, sync *stateSync) error {
	if st.Kind == "" {
		st.Kind = KindSpool
	}
	if old, err := s.legacy(st.User, st.Source); err != nil || old != nil {
		// The legacy file goes only once its successor is durable: Save.
		return s.Save(st)
	}
	p, err := s.keyPath(st.User, st.Kind, st.Source)
	if err != nil {
		return err
	}
	if err := replaceStateFile(s.Dir, p, st); err != nil {
		return err
	}
	sync.mu.Lock()
	sync.dirty = true
	sync.mu.Unlock()
	return nil
}

// stateSync is the fsync of the state directory that states saved with saveUnsynced wait for,
// once for the run instead of once for each, and what waits for it in turn.
type stateSync struct {
	mu    sync.Mutex
	dirty bool
	after []func()
}

// later has f run once the states saved so far are durable.
func (y *stateSync) later(f func()) {
	y.mu.Lock()
	defer y.mu.Unlock()
	y.after = append(y.after, f)
}

// sync makes the states saved with saveUnsynced durable, then runs what waited for it.
func (y *stateSync) sync(dir string) error {
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.dirty {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("migrate: state: %w", err)
		}
		y.dirty = false
	}
	for _, f := range y.after {
		f()
	}
	y.after = nil
	return nil
}

// writeStateFile replaces the state file p in dir with v in JSON, atomically: a crash leaves
// the old file or the new one, and a temporary file removeDeadStateTemps recognises. Every state
// file is written here.
func writeStateFile(dir, p string, v any) error {
	if err := replaceStateFile(dir, p, v); err != nil {
		return err
	}
	return syncDir(dir)
}

// replaceStateFile is writeStateFile but for the fsync of dir: v is on disk under a temporary
// name before it is renamed over p, but the rename may not be yet.
func replaceStateFile(dir, p string, v any) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	b = append(b, '\n')
	if len(b) > maxStateFile {
		return fmt.Errorf("migrate: state %s: %d bytes, more than the %d a state file may hold", p, len(b), maxStateFile)
	}
	tmp, err := os.CreateTemp(dir, stateTempPattern(p))
	if err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if stateWriting != nil {
		stateWriting(tmp.Name())
	}
	if _, err := fault.State.On(tmp, "write").N(tmp.Write(b)); err != nil {
		tmp.Close()
		return fmt.Errorf("migrate: state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("migrate: state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	fault.StateSaved.Hit()
	return nil
}

// stateWriting, set by tests, is called with the temporary file of a state write before it is
// written.
var stateWriting func(tmp string)

// stateTempPattern is the os.CreateTemp pattern of the file a state file target is written
// into before it is renamed over target: its name and the writer's pid, so that a later run
// tells a run that died from one writing now (removeDeadStateTemps).
func stateTempPattern(target string) string {
	return "." + filepath.Base(target) + ".P" + strconv.Itoa(os.Getpid()) + ".*.tmp"
}

// legacyTempAge is how old a temporary state file of an earlier build, which did not carry
// the writer's pid, must be before removeDeadStateTemps removes it: a write takes milliseconds.
const legacyTempAge = time.Hour

// removeDeadStateTemps removes from dir the temporary files of state writes whose writer died:
// .NAME.P<pid>.<digits>.tmp when no process has that pid on this host (the state directory
// is root's and local), and .NAME.<digits>.tmp of an earlier build once legacyTempAge old. A
// temporary file of a live run, this one or another at the same time, is never touched. It
// returns the names removed.
func removeDeadStateTemps(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: state: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("migrate: state: %w", err)
	}
	var removed []string
	var first error
	for _, n := range names {
		pid, legacy, ok := parseStateTemp(n)
		if !ok {
			continue
		}
		if legacy {
			var st unix.Stat_t
			if unix.Fstatat(int(d.Fd()), n, &st, unix.AT_SYMLINK_NOFOLLOW) != nil ||
				time.Since(time.Unix(st.Mtim.Unix())) < legacyTempAge {
				continue
			}
		} else if pid == os.Getpid() || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		if err := unix.Unlinkat(int(d.Fd()), n, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			if first == nil {
				first = fmt.Errorf("migrate: state: remove %s: %w", filepath.Join(dir, n), err)
			}
			continue
		}
		removed = append(removed, n)
	}
	return removed, first
}

// sweepStateTemps removes the temporary state files of runs that died, in the state directory
// and its folders/, and says so in the audit log; what it could not remove is a warning. Only
// a failed audit write is an error.
func sweepStateTemps(log *audit.Log, stateDir string, warn func(string)) error {
	for _, dir := range []string{stateDir, filepath.Join(stateDir, "folders")} {
		removed, err := removeDeadStateTemps(dir)
		if err != nil && warn != nil {
			warn(strings.TrimPrefix(err.Error(), "migrate: "))
		}
		if len(removed) == 0 {
			continue
		}
		detail := fmt.Sprintf("removed %d temporary state files in %s left by a maildirmig that died: %s", len(removed), dir, strings.Join(removed, " "))
		if err := log.Event(EventNotice, map[string]any{"kind": EventRecovered, "detail": detail}); err != nil {
			return err
		}
	}
	return nil
}

// parseStateTemp recognises a temporary state file name: .NAME.P<pid>.<digits>.tmp, or
// .NAME.<digits>.tmp of an earlier build (legacy).
func parseStateTemp(name string) (pid int, legacy, ok bool) {
	rest, found := strings.CutSuffix(name, ".tmp")
	if !found || !strings.HasPrefix(rest, ".") {
		return 0, false, false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 2 || !isDigits(rest[i+1:]) {
		return 0, false, false
	}
	head := rest[:i]
	if j := strings.LastIndexByte(head, '.'); j >= 1 && len(head) > j+2 && head[j+1] == 'P' && isDigits(head[j+2:]) {
		if pid, err := strconv.Atoi(head[j+2:]); err == nil && pid > 0 {
			return pid, false, true
		}
	}
	return 0, true, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Resume decides where a run starts in src, whose fstat is st: at 0 without a state, after the
// migrated prefix when it is unchanged, and with an error wrapping ErrSourceChanged when it
// changed (a mirror pass then reads it whole again). A source emptied or renamed by the
// --after action the state announces (a crash came before the state said it was done) starts
// at 0 after the migrated messages. The returned hash has consumed src[0:start), so the
// caller can extend it over what it migrates next.
func (s *State) Resume(src io.ReaderAt, st unix.Stat_t) (start, index int64, h hash.Hash, err error) {
	h = sha256.New()
	if s == nil {
		return 0, 0, h, nil
	}
	if s.Offset == 0 {
		return 0, s.Messages, h, nil
	}
	why := ""
	switch {
	case uint64(st.Dev) != s.Dev || st.Ino != s.Inode:
		if s.Intent == AfterRename && s.renamed() {
			return 0, s.Messages, h, nil
		}
		why = "it is another file (device or inode changed)"
	case st.Size < s.Offset:
		if s.Intent == AfterTruncate {
			return 0, s.Messages, h, nil
		}
		why = fmt.Sprintf("it shrank from %d to %d bytes", s.Offset, st.Size)
	default:
		if _, err := io.Copy(h, io.NewSectionReader(src, 0, s.Offset)); err != nil {
			return 0, 0, nil, fmt.Errorf("migrate: hashing the migrated part of %s: %w", s.Source, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != s.SHA256 {
			if s.Intent == AfterTruncate {
				// Emptied, then the MTA delivered as much again.
				return 0, s.Messages, sha256.New(), nil
			}
			why = fmt.Sprintf("its first %d bytes are not the ones migrated", s.Offset)
		}
	}
	if why == "" {
		return s.Offset, s.Messages, h, nil
	}
	return 0, 0, nil, fmt.Errorf("%w: %s: %s", ErrSourceChanged, s.Source, why)
}

// renamed reports whether the source recorded in s is now at IntentTo.
func (s *State) renamed() bool {
	var st unix.Stat_t
	return s.IntentTo != "" && unix.Lstat(s.IntentTo, &st) == nil && uint64(st.Dev) == s.Dev && st.Ino == s.Inode
}

// differs says why a run into next.Maildir with next's options cannot carry on the
// migration s records, "" when it can. Without a migrated part in the source (none yet, or
// it was truncated or renamed) any destination and options can.
func (s *State) differs(next *State) string {
	if s == nil || s.Offset == 0 {
		return ""
	}
	onOff := func(b bool) string {
		if b {
			return "with"
		}
		return "without"
	}
	unesc := func(u string) string {
		if u == "" {
			return "none"
		}
		return u
	}
	switch {
	case s.Maildir != next.Maildir:
		return fmt.Sprintf("its first %d bytes were migrated into %s, not %s", s.Offset, s.Maildir, next.Maildir)
	case s.KeepHeaders != next.KeepHeaders:
		return fmt.Sprintf("it was migrated %s --keep-headers", onOff(s.KeepHeaders))
	case s.Unescape != next.Unescape:
		return fmt.Sprintf("it was migrated with --unescape %s, not %s", unesc(s.Unescape), unesc(next.Unescape))
	}
	return ""
}

// folderStates keeps, per user, the State of each mbox folder, by its Source beneath the
// folder root, in one file in a subdirectory of the state directory (a user name holds no
// '/', so no user's own state file can clash with it): root learns a user's folders only from
// the worker, and hands it all their states at once. The records are the INBOX's State, read
// and written as every state file is (readStateFile, writeStateFile).
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
	m := map[string]*State{}
	if _, err := readStateFile(p, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// folderRecords keeps, in the process that holds the states, the records of the folders a
// worker converts, as run.go keeps those of the INBOX.
type folderRecords struct {
	store StateStore
	user  string
	files map[string]*records // by the folder's full source path
}

func (s folderStates) records(user string) *folderRecords {
	return &folderRecords{store: StateStore{Dir: s.Dir}, user: user, files: map[string]*records{}}
}

// open starts the records of src for a pass, after prev; fresh starts a new generation, for a
// folder converted from offset 0.
func (u *folderRecords) open(src string, prev *State, fresh bool) error {
	if r := u.files[src]; r != nil {
		r.Close()
	}
	r, err := u.store.openRecords(u.user, kindFolder, src, prev, fresh)
	if err != nil {
		return err
	}
	u.files[src] = r
	return nil
}

func (u *folderRecords) add(src string, rec MessageRecord) {
	if r := u.files[src]; r != nil {
		r.add(rec)
	}
}

// sync makes the records of src durable and names them in st, before st is saved.
func (u *folderRecords) sync(src string, st *State) error {
	r := u.files[src]
	if r == nil {
		return fmt.Errorf("migrate: state: no records open for %s", src)
	}
	if err := r.sync(); err != nil {
		return err
	}
	r.note(st)
	return nil
}

func (u *folderRecords) Close() {
	for _, r := range u.files {
		r.Close()
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

// The record of skipped entries keeps the first of them by name, with their reasons, up to
// maxSkippedKept entries and skippedBudget bytes of JSON, and under the key moreSkipped (no
// entry's Source is empty) how many more there were: the user decides how many entries there
// are, and how long their names, and the record must stay one the reader takes.
const (
	maxSkippedKept = 1000
	skippedBudget  = 1 << 20
	moreSkipped    = ""
)

// LoadSkipped returns the entries the last run skipped, as far as the record keeps them, and
// how many more it did; none when there is no record.
func (s folderStates) LoadSkipped(user string) (m map[string]string, more int, err error) {
	p, err := s.skippedPath(user)
	if err != nil {
		return nil, 0, err
	}
	m = map[string]string{}
	if _, err := readStateFile(p, &m); err != nil {
		return nil, 0, err
	}
	if n, ok := m[moreSkipped]; ok {
		more, _ = strconv.Atoi(n)
		delete(m, moreSkipped)
	}
	return m, more, nil
}

// SaveSkipped replaces the record of skipped entries atomically, keeping what the record keeps
// of m.
func (s folderStates) SaveSkipped(user string, m map[string]string) error {
	p, err := s.skippedPath(user)
	if err != nil {
		return err
	}
	return writeStateFile(s.Dir, p, keptSkipped(m))
}

// keptSkipped is what the record keeps of the skipped entries m.
func keptSkipped(m map[string]string) map[string]string {
	srcs := make([]string, 0, len(m))
	for src := range m {
		srcs = append(srcs, src)
	}
	sort.Strings(srcs)
	kept := map[string]string{}
	size := 0
	for _, src := range srcs {
		k, _ := json.Marshal(src)
		v, _ := json.Marshal(m[src])
		if len(kept) == maxSkippedKept || size+len(k)+len(v)+4 > skippedBudget {
			break
		}
		kept[src] = m[src]
		size += len(k) + len(v) + 4
	}
	if more := len(m) - len(kept); more > 0 {
		kept[moreSkipped] = strconv.Itoa(more)
	}
	return kept
}

// Save replaces the user's folder states atomically.
func (s folderStates) Save(user string, m map[string]*State) error {
	p, err := s.path(user)
	if err != nil {
		return err
	}
	return writeStateFile(s.Dir, p, m)
}

// LoadState returns the state the last pass saved of the source src of user on the host h
// (the spool's path, or ~/Mailbox's, on this machine), nil when none: what check needs to
// know of a migration.
func LoadState(h host.Host, user string, source Source, src string) (*State, error) {
	return StateStore{Dir: h.State()}.Load(user, source.Kind(), src)
}
