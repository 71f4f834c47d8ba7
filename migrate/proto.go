package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/maildirmig/maildirmig/check"
	"github.com/maildirmig/maildirmig/internal/worker"
	"github.com/maildirmig/maildirmig/maildir"
)

// The root/worker protocol, over the transport of package worker: root opens and locks the
// spool, then runs a worker as the user with the spool as fd 3 and a workerRequest on stdin;
// the worker answers with workerMsg lines, each a named msgType. What the worker does with a
// request is in worker.go; what root does with the answers, in run.go and runfolders.go
// through dispatch for the answers every conversion has.

// Worker operations; workerOps (worker.go) says what serves each.
const (
	opConvert = "convert" // Convert, then re-read every message file against its record
	opVerify  = "verify"  // prove every message of src[0:Size) is in the Maildir
	opMirror  = "mirror"  // make the Maildir mirror the whole source (mirror.go)

	opRollback        = "rollback"         // write the Maildir back into an mbox (rollback.go)
	opRollbackFolders = "rollback-folders" // write the Maildir++ folders back beneath FolderRoot
	opFolders         = "folders"          // migrate the mbox folders beneath FolderRoot (no source fd)

	opVerifyFolders = "verify-folders" // prove the migrated part of every folder in FolderStates

	opEmptyInbox  = "empty-inbox"  // read the INBOX's Dovecot index and give the Maildir its UIDs (emptyuids.go)
	opMailboxLock = "mailbox-lock" // hold ~USER/Mailbox.lock as the user, renaming on request (mailboxlock.go)

	opCheckHome     = "check-home"     // check a home's Maildir as its user (CheckHome; checkhome.go)
	opEnsureMaildir = "ensure-maildir" // give a home without one an empty Maildir (CheckHome)
)

type workerRequest struct {
	Op          string `json:"op"`
	Home        string `json:"home,omitempty"`    // the home to open (O_NOFOLLOW, owner and mode checked)
	Owner       int    `json:"owner"`             // uid the home must belong to
	Maildir     string `json:"maildir,omitempty"` // relative to Home
	Path        string `json:"path,omitempty"`    // a Maildir path, for ConvertAs (no home checks)
	Size        int64  `json:"size"`              // source bytes to read (0 = the whole file)
	KeepHeaders bool   `json:"keep_headers,omitempty"`
	Unescape    int    `json:"unescape,omitempty"`
	Location    string `json:"location,omitempty"`
	Fsync       int    `json:"fsync,omitempty"`
	Host        string `json:"host,omitempty"`
	BatchFiles  int    `json:"batch_files,omitempty"`
	BatchBytes  int64  `json:"batch_bytes,omitempty"`
	StartOffset int64  `json:"start_offset,omitempty"`
	StartIndex  int64  `json:"start_index,omitempty"`
	UIDValidity uint32 `json:"uidvalidity,omitempty"`  // opVerify: the Maildir's dovecot-uidlist must have it
	FlushEvery  int    `json:"flush_every,omitempty"`  // opConvert: messages between two resume points
	Loose       bool   `json:"loose,omitempty"`        // read in loose mode keyed on LooseFrom (mbox.Options)
	AnyPosition bool   `json:"any_position,omitempty"` // opConvert: maildir.Options.AnyPosition (a forced restart)
	LooseFrom   []byte `json:"loose_from,omitempty"`

	// opMirror (and a folder's mirror): the source's records of its last pass, "<seq> <uid>
	// <base>" per message in source order; the base names the user's other INBOX source
	// recorded into the same Maildir; the first sequence number a new message gets; and
	// whether only to count.
	Prior   string       `json:"prior,omitempty"`
	Foreign foreignFiles `json:"foreign"`
	NextSeq int64        `json:"next_seq,omitempty"`
	// Interrupted says a pass of this source was interrupted (State.Open): files of ours from
	// NextSeq on that no record names are its.
	Interrupted bool `json:"interrupted,omitempty"`
	DryRun      bool `json:"dry_run,omitempty"`

	// opRollback: where the bytes of the old source (fd 3) past what was migrated begin (-1:
	// its migrated part changed), what the state says was migrated, and for ~/Mailbox the
	// source's name in the home (the worker writes and exchanges it there; for the spool it
	// writes fd 4, root's file). Dev and Inode name the old source.
	TailFrom    int64  `json:"tail_from,omitempty"`
	PriorSHA    string `json:"prior_sha,omitempty"`
	PriorOffset int64  `json:"prior_offset,omitempty"`
	RollbackTo  string `json:"rollback_to,omitempty"`

	// opFolders only.
	FolderRoot   string            `json:"folder_root,omitempty"`   // relative to Home: "mail"
	FolderStates map[string]*State `json:"folder_states,omitempty"` // by Folder.Source
	// A second folder pass, for what the first found changed: the records of each folder to
	// mirror (by Folder.Source; only these are passed over), and the folders whose mbox is
	// gone, whose Maildir++ folders are removed.
	FolderPrior   map[string]string `json:"folder_prior,omitempty"`
	FolderRemoved []string          `json:"folder_removed,omitempty"`
	Zone          string            `json:"zone,omitempty"` // root's zoneName: a new folder state's Zone
	Force         bool              `json:"force,omitempty"`
	LockTimeout   time.Duration     `json:"lock_timeout,omitempty"`

	// opRename, to the Mailbox lock worker: rename RenameFrom to RenameTo in the home if
	// RenameFrom still is the file Dev/Inode.
	RenameFrom string `json:"rename_from,omitempty"`
	RenameTo   string `json:"rename_to,omitempty"`
	Dev        uint64 `json:"dev,omitempty"`
	Inode      uint64 `json:"inode,omitempty"`

	// opCheckHome and opEnsureMaildir: the work to do in the home.
	CheckHome *check.Home `json:"check_home,omitempty"`
}

// msgType names what one line of a worker's answer is.
// lockTimeout is how long the worker waits for a folder's locks: the run's, or the default
// for a request that names none.
func (req *workerRequest) lockTimeout() time.Duration {
	if req.LockTimeout <= 0 {
		return defaultLockTimeout
	}
	return req.LockTimeout
}

type msgType string

// Worker answers. Every operation may end with msgError; the rest are per operation.
const (
	msgError    msgType = "error"    // Err: the operation failed; Unsafe: for a reason of safety
	msgAborted  msgType = "aborted"  // stopped on request; Err: its pending tmp files could not be removed
	msgRecord   msgType = "record"   // Record: one message converted (Folder: of that folder)
	msgEvent    msgType = "event"    // Event: a fallback or oddity, for the audit log
	msgProgress msgType = "progress" // N: more source bytes read; Messages: more messages read
	msgWork     msgType = "work"     // N: bytes of messages read or stored (check: entries looked at) since the last report, for the watchdog
	msgDurable  msgType = "durable"  // Stats: every message before Stats.EndOffset is durable (State: a folder's)
	msgStats    msgType = "stats"    // Stats: the conversion's result
	msgVerified msgType = "verified" // Verified: the proof of one source
	msgChange   msgType = "change"   // Change: a file a mirror pass renamed or removed
	// RolledBack: a rollback of one source (Folder: of that folder)
	msgRolledBack msgType = "rolled-back"

	// The Mailbox lock worker's.
	msgLocked       msgType = "locked"
	msgLockFailed   msgType = "lock-failed" // Kind: folderFailLock for a timeout
	msgReleased     msgType = "released"
	msgRenamed      msgType = "renamed"
	msgRenameFailed msgType = "rename-failed"

	// check's and skel's.
	msgProblem    msgType = "problem"     // Problem: one thing wrong in the home, or repaired
	msgHomeResult msgType = "home-result" // HomeResult: what the check of the home found
	msgEnsured    msgType = "ensured"     // Ensured: what EnsureMaildir found or did

	// The folder operation's, each with Folder.
	msgFolderSkipped msgType = "folder-skipped" // Err: why the entry is not migrated
	msgFolderStart   msgType = "folder-start"   // FolderInfo
	msgFolderDone    msgType = "folder-done"    // Stats, State: what to remember
	msgFolderFailed  msgType = "folder-failed"  // Kind: a folderFail* kind; Err
	msgFolderFrom    msgType = "folder-from"    // N: the offset the folder is converted from
	msgFolderChanged msgType = "folder-changed" // its migrated part changed: a second pass mirrors it
	msgFolderRemoved msgType = "folder-removed" // its mbox is gone; Err: why its Maildir++ folder stays
)

// workerMsg is one line of the worker's answer.
type workerMsg struct {
	T          msgType        `json:"t"`
	Record     *MessageRecord `json:"record,omitempty"`
	Event      *Event         `json:"event,omitempty"`
	N          int64          `json:"n,omitempty"`
	Stats      *Stats         `json:"stats,omitempty"`
	Verified   *VerifyResult  `json:"verified,omitempty"`
	Change     *Change        `json:"change,omitempty"`
	RolledBack *rollbackDone  `json:"rolled_back,omitempty"`
	Err        string         `json:"err,omitempty"`
	Unsafe     bool           `json:"unsafe,omitempty"`
	// Messages, in msgProgress, counts the messages read since the previous one: records come
	// only once their messages are durable, thousands at a time.
	Messages int64 `json:"messages,omitempty"`

	// opFolders: Folder names the folder (its Source) a record, event or progress belongs to.
	Folder     string  `json:"folder,omitempty"`
	FolderInfo *Folder `json:"folder_info,omitempty"` // "folder-start"
	State      *State  `json:"state,omitempty"`       // "folder-done": what to remember
	Kind       string  `json:"kind,omitempty"`        // "folder-failed": a folderFail* kind

	Problem    *check.Problem    `json:"problem,omitempty"`
	HomeResult *check.HomeResult `json:"home_result,omitempty"`
	Ensured    *check.Ensured    `json:"ensured,omitempty"`
}

// VerifyResult sums up the proof that a source's messages are in a Maildir.
type VerifyResult struct {
	Messages int64    `json:"messages"` // source messages read (UW pseudo-message excluded)
	Found    int64    `json:"found"`    // found in the Maildir with the expected content
	Missing  []string `json:"missing,omitempty"`
	Bad      []string `json:"bad,omitempty"` // found, but the file's content is not what was stored
	// Deleted lists messages that are not in the Maildir because the user deleted them
	// through Dovecot: their recorded UID is no longer in its dovecot-uidlist.
	Deleted []string `json:"deleted,omitempty"`
	// Duplicate lists messages stored more than once, with their files: verify proves
	// every message is there exactly once.
	Duplicate []string `json:"duplicate,omitempty"`
	// Orphans lists files maildirmig wrote whose source message is gone, in a Maildir
	// nobody else uses yet: a pass removes them.
	Orphans []string `json:"orphans,omitempty"`
	// Flags lists messages whose flags or keywords in the Maildir are not the source's.
	Flags []string `json:"flags,omitempty"`

	// From the worker to the process that holds the UID records, which sorts out Deleted.
	Lost    []lostMessage `json:"lost,omitempty"`
	Listing *uidListing   `json:"listing,omitempty"`
}

// lostMessage is a message of the source with no file in the Maildir: its position, and
// its index in VerifyResult.Missing.
type lostMessage struct {
	Pos     int64 `json:"pos"`
	Missing int   `json:"missing"`
}

// DefaultStallTimeout is how long a worker may make no progress before root kills it.
const DefaultStallTimeout = worker.DefaultStallTimeout

// ErrStalled is wrapped by the error of a user whose worker root killed for making no
// progress (a stopped worker, or one blocked on a FIFO or a hung home).
var ErrStalled = worker.ErrStalled

// ErrWorkerKilled is wrapped by the error of a user whose worker root killed, for a stall or
// because it did not abort within the grace period of an interrupt: the tmp files of its
// pending batch may be left, for the next run to remove.
var ErrWorkerKilled = worker.ErrKilled

// Credentials say whom a worker runs as.
type Credentials = worker.Credentials

// runWorker runs req as cred, in a worker process when this process is root and cred is not,
// in-process otherwise. Each message of the answer goes to handle.
func runWorker(ctx context.Context, cred Credentials, req *workerRequest, src *os.File, handle func(workerMsg)) error {
	return runWorkerAfter(ctx, cred, req, src, nil, handle)
}

// runWorkerAfter is runWorker, with before (when not nil) done before the work begins: in a
// worker process, while it starts, before it is given req.
func runWorkerAfter(ctx context.Context, cred Credentials, req *workerRequest, src *os.File, before func() error, handle func(workerMsg)) error {
	if os.Geteuid() != 0 || cred.UID == 0 {
		if before != nil {
			if err := before(); err != nil {
				return err
			}
		}
		return serve(ctx, req, src, handle)
	}
	return spawnWorkerAfter(ctx, cred, req, src, nil, before, handle)
}

// spawnWorker runs req as cred in a worker process. The protocol's own answers (msgError,
// msgAborted) are taken here; every other goes to handle.
func spawnWorker(ctx context.Context, cred Credentials, req *workerRequest, src, target *os.File, handle func(workerMsg)) error {
	return spawnWorkerAfter(ctx, cred, req, src, target, nil, handle)
}

// spawnWorkerAfter is spawnWorker, with before (when not nil) done while the worker starts,
// before it is given req (worker.Spec.Before).
func spawnWorkerAfter(ctx context.Context, cred Credentials, req *workerRequest, src, target *os.File, before func() error, handle func(workerMsg)) error {
	var reported error
	abortFailed := false
	var gate func() error
	if before != nil {
		gate = func() error {
			if err := before(); err != nil {
				return &beforeError{err}
			}
			return nil
		}
	}
	err := worker.Run(ctx, worker.Spec{Cred: cred, Home: req.Home, Request: req, Source: src, Target: target, Patience: req.LockTimeout, Before: gate}, func(m workerMsg) {
		switch m.T {
		case msgError:
			reported = &remoteError{msg: m.Err, unsafe: m.Unsafe}
		case msgAborted:
			abortFailed = m.Err != ""
		default:
			handle(m)
		}
	})
	var stalled *worker.StallError
	var interrupted *worker.InterruptedError
	var failed *beforeError
	switch {
	case errors.As(err, &failed):
		// The worker was given nothing to do; what it said of that is beside the point.
		return failed.err
	case errors.As(err, &stalled):
		return err
	case errors.As(err, &interrupted):
		interrupted.Killed = interrupted.Killed || abortFailed
		return err
	case reported != nil:
		return reported
	case err != nil:
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// beforeError is the error of what had to precede a worker's work.
type beforeError struct{ err error }

func (e *beforeError) Error() string { return e.err.Error() }

// remoteError is an error a worker reported; errors.Is(err, ErrUnsafeHome) holds for a refusal
// made for safety.
type remoteError struct {
	msg    string
	unsafe bool
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Is(target error) bool {
	return e.unsafe && (target == ErrUnsafeHome || target == maildir.ErrUnsafe || target == check.ErrUnsafe)
}

// convertRequest is a request for op with the conversion options of opts: the one place
// where they are put into a request.
func convertRequest(op string, opts ConvertOptions) *workerRequest {
	return &workerRequest{Op: op, KeepHeaders: opts.KeepHeaders, Unescape: int(opts.Unescape), FlushEvery: opts.FlushEvery,
		Fsync: int(opts.Maildir.Fsync), Host: opts.Maildir.Host, BatchFiles: opts.Maildir.BatchFiles, BatchBytes: opts.Maildir.BatchBytes}
}

func dispatch(m workerMsg, notice func(Event), onMessage func(MessageRecord), progress, read func(int64)) {
	switch m.T {
	case msgEvent:
		if notice != nil && m.Event != nil {
			notice(*m.Event)
		}
	case msgRecord:
		if onMessage != nil && m.Record != nil {
			onMessage(*m.Record)
		}
	case msgProgress:
		if progress != nil && m.N > 0 {
			progress(m.N)
		}
		if read != nil && m.Messages > 0 {
			read(m.Messages)
		}
	}
}
