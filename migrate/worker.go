package migrate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/fault"
	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
)

// The privilege-separation protocol. Root opens and locks the spool, then starts maildirmig
// itself again with workerEnv set, as the user (uid, gid and supplementary groups), the spool
// as fd 3, a JSON request on stdin; the worker answers with JSON lines on stdout. Everything
// the worker creates is the user's without any chown, and a symlink the user planted can hand
// the worker nothing the user could not reach already.
const workerEnv = "MAILDIRMIG_WORKER"

// Worker operations.
const (
	opConvert = "convert" // Convert, then re-read every message file against its record
	opVerify  = "verify"  // prove every message of src[0:Size) is in the Maildir
	opFolders = "folders" // migrate the mbox folders beneath FolderRoot (no source fd)

	opVerifyFolders = "verify-folders" // prove the migrated part of every folder in FolderStates
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

	// opFolders only.
	FolderRoot   string            `json:"folder_root,omitempty"`   // relative to Home: "mail"
	FolderStates map[string]*State `json:"folder_states,omitempty"` // by Folder.Source
	Force        bool              `json:"force,omitempty"`
	LockTimeout  time.Duration     `json:"lock_timeout,omitempty"`

	// opRename, to the Mailbox lock worker: rename RenameFrom to RenameTo in the home if
	// RenameFrom still is the file Dev/Inode.
	RenameFrom string `json:"rename_from,omitempty"`
	RenameTo   string `json:"rename_to,omitempty"`
	Dev        uint64 `json:"dev,omitempty"`
	Inode      uint64 `json:"inode,omitempty"`
}

// workerMsg is one line of the worker's answer.
type workerMsg struct {
	T        string         `json:"t"` // "record", "event", "progress", "missing", "durable", "stats", "verified", "error"
	Record   *MessageRecord `json:"record,omitempty"`
	Event    *Event         `json:"event,omitempty"`
	N        int64          `json:"n,omitempty"`
	Stats    *Stats         `json:"stats,omitempty"`
	Verified *VerifyResult  `json:"verified,omitempty"`
	Err      string         `json:"err,omitempty"`
	Unsafe   bool           `json:"unsafe,omitempty"`

	// opFolders: Folder names the folder (its Source) a record, event or progress belongs to.
	Folder     string  `json:"folder,omitempty"`
	FolderInfo *Folder `json:"folder_info,omitempty"` // "folder-start"
	State      *State  `json:"state,omitempty"`       // "folder-done": what to remember
	Kind       string  `json:"kind,omitempty"`        // "folder-failed": a folderFail* kind
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

// IsWorker reports whether this process was started as a per-user worker. cmd/maildirmig
// checks it before anything else and then runs WorkerMain.
func IsWorker() bool { return os.Getenv(workerEnv) == "1" }

// WorkerMain serves one request from stdin, with the source at fd 3, and returns the exit code.
func WorkerMain() int {
	// The worker runs as the user, who must not ptrace it or read its memory: from here on the
	// kernel refuses a new attach, and one made before this line is caught just after.
	if err := hardenWorker(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	enc := json.NewEncoder(os.Stdout)
	var encErr error
	emit := func(m workerMsg) {
		if encErr == nil {
			encErr = enc.Encode(m)
		}
	}
	var req workerRequest
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		emit(workerMsg{T: "error", Err: fmt.Sprintf("migrate: worker request: %v", err)})
		return 1
	}
	if op := workerOps[req.Op]; op != nil {
		if err := op(&req, emit); err != nil {
			emit(workerMsg{T: "error", Err: err.Error()})
			return 1
		}
		return 0
	}
	var src *os.File
	if req.Op != opFolders && req.Op != opVerifyFolders {
		// Only then was a source passed; fd 3 may be the runtime's own otherwise.
		src = os.NewFile(3, "source")
	}
	if err := serve(ctx, &req, src, emit); err != nil {
		if ctx.Err() != nil {
			// Root asked us to stop: say whether the pending batch's tmp files are gone.
			m := workerMsg{T: "aborted"}
			if errors.Is(err, errAbortFailed) {
				m.Err = err.Error()
			}
			emit(m)
		}
		emit(workerMsg{T: "error", Err: err.Error(), Unsafe: errors.Is(err, maildir.ErrUnsafe) || errors.Is(err, ErrUnsafeHome)})
		return 1
	}
	if encErr != nil {
		return 1
	}
	return 0
}

// workerOps holds operations served outside serve, with stdin past the request still unread:
// the Mailbox lock worker, and what a test binary registers to look at a worker from inside.
var workerOps = map[string]func(req *workerRequest, emit func(workerMsg)) error{}

// hardenWorker makes this process non-dumpable (no ptrace by its uid, no /proc/PID/mem or
// environ for it) and refuses to go on if a tracer attached in the moment before.
func hardenWorker() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("migrate: worker: prctl(PR_SET_DUMPABLE): %w", err)
	}
	tracer, err := tracerPid()
	if err != nil {
		return fmt.Errorf("migrate: worker: %w", err)
	}
	if tracer != 0 {
		return fmt.Errorf("migrate: worker: traced by pid %d, refusing to run", tracer)
	}
	return nil
}

// tracerPid reads TracerPid from /proc/self/status.
func tracerPid() (int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			var pid int
			if _, err := fmt.Sscan(strings.TrimSpace(v), &pid); err != nil {
				return 0, fmt.Errorf("TracerPid %q: %w", v, err)
			}
			return pid, nil
		}
	}
	return 0, errors.New("no TracerPid in /proc/self/status")
}

// ErrUnsafeHome is wrapped by the error that refuses a home directory.
var ErrUnsafeHome = errors.New("migrate: unsafe home")

// serve does the per-user work, in a worker or in-process; emit receives what a worker would
// send back.
func serve(ctx context.Context, req *workerRequest, src *os.File, emit func(workerMsg)) error {
	switch req.Op {
	case opFolders:
		return serveFolders(ctx, req, emit)
	case opVerifyFolders:
		return serveVerifyFolders(ctx, req, emit)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return fmt.Errorf("migrate: source: %w", err)
	}
	size := req.Size
	if size == 0 || size > st.Size {
		size = st.Size
	}
	if req.Op == opConvert && req.StartOffset < size {
		// A file that is not an mbox must leave no trace, not even an empty Maildir.
		if err := CheckMbox(io.NewSectionReader(src, req.StartOffset, size-req.StartOffset), size-req.StartOffset); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	d, err := openDestination(req)
	if err != nil {
		return err
	}
	defer d.Close()
	switch req.Op {
	case opConvert:
		return serveConvert(ctx, req, src, size, time.Unix(st.Mtim.Unix()), d, emit)
	case opVerify:
		if req.UIDValidity != 0 {
			v, err := d.UIDValidity()
			if err != nil {
				return fmt.Errorf("migrate: verify: %w", err)
			}
			if v != req.UIDValidity {
				return fmt.Errorf("migrate: verify: %s/dovecot-uidlist has UIDVALIDITY %d, not the %d migrated with", req.Maildir, v, req.UIDValidity)
			}
		}
		res, err := verifyMaildir(ctx, req, src, size, d)
		if err != nil {
			return err
		}
		emit(workerMsg{T: "verified", Verified: &res})
		return nil
	}
	return fmt.Errorf("migrate: worker: unknown operation %q", req.Op)
}

// openDestination opens the Maildir of a request: beneath the home, checked, or by path.
func openDestination(req *workerRequest) (*maildir.Dir, error) {
	if req.Path != "" {
		return maildir.Open(req.Path, req.Op == opConvert)
	}
	fd, err := openHome(req)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return maildir.OpenAt(fd, req.Maildir, req.Op == opConvert)
}

// openHome opens req.Home without following a symlink and refuses it unless it belongs to
// req.Owner and is writable by nobody else.
func openHome(req *workerRequest) (int, error) {
	fd, err := unix.Open(req.Home, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("%w: home %s is a symlink or not a directory", ErrUnsafeHome, req.Home)
		}
		return -1, fmt.Errorf("migrate: home: %w", &os.PathError{Op: "open", Path: req.Home, Err: err})
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("migrate: home: %w", &os.PathError{Op: "fstat", Path: req.Home, Err: err})
	}
	switch {
	case int(st.Uid) != req.Owner:
		err = fmt.Errorf("%w: home %s is owned by uid %d, not %d", ErrUnsafeHome, req.Home, st.Uid, req.Owner)
	case st.Mode&0o022 != 0:
		err = fmt.Errorf("%w: home %s is group or world writable (mode %04o)", ErrUnsafeHome, req.Home, st.Mode&0o7777)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func serveConvert(ctx context.Context, req *workerRequest, src *os.File, size int64, mtime time.Time, d *maildir.Dir, emit func(workerMsg)) error {
	st, err := convertChecked(ctx, req, src, size, mtime, d, "", emit)
	if err != nil {
		return err
	}
	emit(workerMsg{T: "stats", Stats: &st})
	return nil
}

// convertChecked converts src[req.StartOffset:size) into d with the options of req, sends
// records, events and progress (tagged with folder) to emit, then re-reads every message file
// against its record.
func convertChecked(ctx context.Context, req *workerRequest, src *os.File, size int64, mtime time.Time, d *maildir.Dir, folder string, emit func(workerMsg)) (Stats, error) {
	loc := time.Local
	if req.Location != "" && req.Location != "Local" {
		l, err := time.LoadLocation(req.Location)
		if err != nil {
			return Stats{}, fmt.Errorf("migrate: time zone: %w", err)
		}
		loc = l
	}
	// Each message is checked as soon as it is durable, so that memory does not grow with the
	// mailbox.
	chk := &recordChecker{d: d}
	var pending int64
	st, err := Convert(ctx, src, size, mtime, d, ConvertOptions{
		KeepHeaders: req.KeepHeaders,
		Unescape:    mbox.Unescape(req.Unescape),
		Location:    loc,
		Maildir: maildir.Options{Fsync: maildir.Fsync(req.Fsync), Host: req.Host, BatchFiles: req.BatchFiles, BatchBytes: req.BatchBytes,
			AnyPosition: req.AnyPosition},
		StartOffset: req.StartOffset,
		StartIndex:  req.StartIndex,
		FlushEvery:  req.FlushEvery,
		Loose:       req.Loose,
		LooseFrom:   req.LooseFrom,
		Notice:      func(e Event) { emit(workerMsg{T: "event", Event: &e, Folder: folder}) },
		OnDurable: func(s Stats) {
			// A resume point only once every message before it was found as stored.
			if len(chk.res.Missing) == 0 && len(chk.res.Bad) == 0 {
				emit(workerMsg{T: "durable", Stats: &s, Folder: folder})
			}
		},
		OnMessage: func(r MessageRecord) {
			chk.check(r)
			emit(workerMsg{T: "record", Record: &r, Folder: folder})
		},
		Progress: func(n int64) {
			// One line per MiB at most: the parent only draws a bar with it.
			pending += n
			if pending >= 1<<20 {
				emit(workerMsg{T: "progress", N: pending, Folder: folder})
				pending = 0
			}
		},
	})
	if pending > 0 {
		emit(workerMsg{T: "progress", N: pending, Folder: folder})
	}
	if err != nil {
		return st, err
	}
	// What is in the Maildir now is checked against what Convert says it stored, before the
	// caller may touch the source.
	res := chk.res
	if len(res.Missing) > 0 || len(res.Bad) > 0 {
		return st, fmt.Errorf("migrate: verification after writing failed: %s", res.describe())
	}
	return st, nil
}

func (r VerifyResult) describe() string {
	var parts []string
	if n := len(r.Missing); n > 0 {
		parts = append(parts, fmt.Sprintf("%d missing (first: %s)", n, r.Missing[0]))
	}
	if n := len(r.Bad); n > 0 {
		parts = append(parts, fmt.Sprintf("%d with wrong content (first: %s)", n, r.Bad[0]))
	}
	if n := len(r.Deleted); n > 0 {
		parts = append(parts, fmt.Sprintf("%d deleted by the user since", n))
	}
	if n := len(r.Duplicate); n > 0 {
		parts = append(parts, fmt.Sprintf("%d stored more than once (first: %s)", n, r.Duplicate[0]))
	}
	if len(parts) == 0 {
		return "all present"
	}
	return strings.Join(parts, ", ")
}

// recordChecker re-reads the files of records one at a time and sums up what it found.
type recordChecker struct {
	d     *maildir.Dir
	index map[string]maildir.Entry // base name → file, built only when a file has moved
	res   VerifyResult
}

// check re-reads the file of r and compares its hash with StoredSHA256, for a message found
// already in the Maildir: its file was written by another run, or planted, and only its name
// was matched. A file this run wrote needs no reading: StoredSHA256 is the hash of the very
// bytes its writes took, made durable under that name before r was reported, and a read
// would come from the page cache those writes filled, not from the disk.
func (c *recordChecker) check(r MessageRecord) {
	if r.Skipped {
		return
	}
	c.res.Messages++
	if !r.Existed && r.StoredSHA256 != "" {
		c.res.Found++
		return
	}
	sub, name := r.Sub, r.Name
	f, err := c.d.OpenMessage(sub, name)
	if err != nil && errors.Is(err, os.ErrNotExist) {
		// A client may have moved or re-flagged it already: look it up by base name.
		if c.index == nil {
			c.index = baseIndex(c.d)
		}
		if e, ok := c.index[baseName(name)]; ok {
			sub, name = e.Sub, e.Name
			f, err = c.d.OpenMessage(sub, name)
		}
	}
	if err != nil {
		c.res.Missing = append(c.res.Missing, fmt.Sprintf("message %d (%s/%s)", r.Index+1, r.Sub, r.Name))
		return
	}
	sum, err := fileSHA256(f)
	f.Close()
	if err != nil || (r.StoredSHA256 != "" && sum != r.StoredSHA256) {
		c.res.Bad = append(c.res.Bad, fmt.Sprintf("message %d (%s/%s)", r.Index+1, sub, name))
		return
	}
	c.res.Found++
}

func baseName(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return name[:i]
	}
	return name
}

func baseIndex(d *maildir.Dir) map[string]maildir.Entry {
	idx := make(map[string]maildir.Entry)
	entries, err := d.Messages()
	if err != nil {
		return idx
	}
	for _, e := range entries {
		idx[baseName(e.Name)] = e
	}
	return idx
}

func fileSHA256(r io.Reader) (string, error) {
	h := newSHA256()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Credentials say whom a worker runs as.
type Credentials struct {
	UID, GID int
	Groups   []int
}

// runWorker runs req as cred, in a worker process when this process is root and cred is not,
// in-process otherwise. Each message of the answer goes to handle.
func runWorker(ctx context.Context, cred Credentials, req *workerRequest, src *os.File, handle func(workerMsg)) error {
	if os.Geteuid() != 0 || cred.UID == 0 {
		var werr error
		err := serve(ctx, req, src, handle)
		if err != nil {
			werr = err
		}
		return werr
	}
	return spawnWorker(ctx, cred, req, src, handle)
}

// spawnWorker re-executes this program as cred. /proc/self/exe names the running binary even
// where its path is not reachable for the user (a test binary in root's private build
// directory), since execve resolves that link without walking the path.
func spawnWorker(ctx context.Context, cred Credentials, req *workerRequest, src *os.File, handle func(workerMsg)) error {
	var extra []*os.File
	if src != nil {
		// The worker gets a read-only descriptor on the same file: it has no business writing it.
		ro, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", src.Fd()), os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("migrate: reopening the source read-only: %w", err)
		}
		defer ro.Close()
		extra = append(extra, ro)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("migrate: worker request: %w", err)
	}
	// Not ctx: the supervisor below ends the worker, gracefully on an interrupt.
	cmd := workerCommand(context.Background(), cred, req.Home)
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	cmd.ExtraFiles = extra
	// Once the worker is gone, whatever still holds its stdin or stderr (nothing of ours) is
	// not waited for long.
	cmd.WaitDelay = reapWait
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("migrate: worker: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("migrate: starting the worker as uid %d: %w", cred.UID, err)
	}
	stall := stallTimeoutOf(ctx)
	if req.LockTimeout > 0 {
		// Waiting for a lock is no progress, and is allowed for up to the lock timeout.
		stall += req.LockTimeout
	}
	sv := newSupervisor(cmd.Process, stall, out.(*os.File))
	go sv.watch(ctx)
	var workerErr error
	abortFailed := false
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		sv.touch()
		var m workerMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			workerErr = fmt.Errorf("migrate: worker said %q: %w", truncate(sc.Text(), 200), err)
			continue
		}
		switch m.T {
		case "error":
			workerErr = &remoteError{msg: m.Err, unsafe: m.Unsafe}
			continue
		case "aborted":
			abortFailed = m.Err != ""
			continue
		}
		sv.handling(true)
		handle(m)
		sv.handling(false)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
		close(sv.exited)
	case <-sv.gaveUp:
		// Killed, and still not gone (uninterruptible sleep): the goroutine above reaps it
		// whenever it dies; its user's locks are root's and are released by the caller.
	}
	close(sv.stop)
	stalled, killed := sv.result()
	switch {
	case stalled != nil:
		return stalled
	case ctx.Err() != nil:
		return &interruptedError{err: ctx.Err(), killed: killed || abortFailed}
	case workerErr != nil:
		return workerErr
	case werr != nil:
		msg := strings.TrimSpace(stderr.String())
		if msg != "" {
			return fmt.Errorf("migrate: worker as uid %d: %w: %s", cred.UID, werr, truncate(msg, 500))
		}
		return fmt.Errorf("migrate: worker as uid %d: %w", cred.UID, werr)
	}
	return nil
}

// workerCommand is this program again, as cred, in a session of its own, with the worker's
// environment; stdin, stdout and stderr are the caller's to set (never a terminal).
func workerCommand(ctx context.Context, cred Credentials, home string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{"maildirmig"}
	if len(os.Args) > 0 {
		cmd.Args[0] = filepath.Base(os.Args[0])
	}
	cmd.Dir = "/"
	cmd.Env = workerEnviron(home)
	groups := make([]uint32, len(cred.Groups))
	for i, g := range cred.Groups {
		groups[i] = uint32(g)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(cred.UID), Gid: uint32(cred.GID), Groups: groups},
		Pdeathsig:  syscall.SIGKILL,
		// A session of its own has no controlling terminal: the worker cannot open root's
		// /dev/tty (and push input into root's shell with TIOCSTI), and a terminal's Ctrl-C
		// reaches it through us, once.
		Setsid: true,
	}
	return cmd
}

// remoteError is an error a worker reported; errors.Is(err, ErrUnsafeHome) holds for a refusal
// made for safety.
type remoteError struct {
	msg    string
	unsafe bool
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Is(target error) bool {
	return e.unsafe && (target == ErrUnsafeHome || target == maildir.ErrUnsafe)
}

func workerEnviron(home string) []string {
	env := []string{workerEnv + "=1", "PATH=/usr/bin:/bin"}
	if home != "" {
		env = append(env, "HOME="+home)
	}
	for _, k := range []string{"TZ", "LANG", "LC_ALL", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, fault.Environ()...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		q := p
		if len(q) > l.n {
			q = q[:l.n]
		}
		l.n -= len(q)
		_, _ = l.w.Write(q)
	}
	return len(p), nil
}

// ConvertAs converts the mbox src into the Maildir at maildirPath as the given user: in a
// worker process running with those credentials when this process is root, in-process
// otherwise. opts' callbacks are called in this process; StartOffset and StartIndex are
// honoured. The Maildir's parent directory is opened by path, with the user's rights.
func ConvertAs(ctx context.Context, cred Credentials, src *os.File, maildirPath string, opts ConvertOptions) (Stats, error) {
	req := &workerRequest{
		Op:          opConvert,
		Path:        maildirPath,
		KeepHeaders: opts.KeepHeaders,
		Unescape:    int(opts.Unescape),
		Fsync:       int(opts.Maildir.Fsync),
		Host:        opts.Maildir.Host,
		BatchFiles:  opts.Maildir.BatchFiles,
		BatchBytes:  opts.Maildir.BatchBytes,
		StartOffset: opts.StartOffset,
		StartIndex:  opts.StartIndex,
		Loose:       opts.Loose,
		LooseFrom:   opts.LooseFrom,
	}
	if opts.Location != nil {
		req.Location = opts.Location.String()
	}
	var st Stats
	var got bool
	err := runWorker(withStallTimeout(ctx, opts.StallTimeout), cred, req, src, func(m workerMsg) {
		dispatch(m, opts.Notice, opts.OnMessage, opts.Progress)
		if m.T == "stats" && m.Stats != nil {
			st, got = *m.Stats, true
		}
	})
	if err == nil && !got {
		err = errors.New("migrate: the worker ended without a result")
	}
	return st, err
}

func dispatch(m workerMsg, notice func(Event), onMessage func(MessageRecord), progress func(int64)) {
	switch m.T {
	case "event":
		if notice != nil && m.Event != nil {
			notice(*m.Event)
		}
	case "record":
		if onMessage != nil && m.Record != nil {
			onMessage(*m.Record)
		}
	case "progress":
		if progress != nil {
			progress(m.N)
		}
	}
}
