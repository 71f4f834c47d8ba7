package migrate

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/check"
	"github.com/maildirmig/maildirmig/internal/safefs"
	"github.com/maildirmig/maildirmig/internal/worker"
	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
)

// The worker's side of the protocol: WorkerMain serves one request as the user, and serve
// does the per-user work (also in-process, where no privilege separation is needed).

// IsWorker reports whether this process was started as a per-user worker. cmd/maildirmig
// checks it before anything else and then runs WorkerMain.
func IsWorker() bool { return worker.Is() }

// WorkerMain serves one request from stdin, with the source at fd 3, and returns the exit code.
func WorkerMain() int {
	// The worker runs as the user, who must not ptrace it or read its memory: from here on the
	// kernel refuses a new attach, and one made before this line is caught just after.
	if err := worker.Harden(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Records come in a burst once their batch is durable: buffered, they reach root in a few
	// writes instead of one each, and wake it as many times less. Every other line is flushed
	// as it is said, so that root and its watchdog hear of work, resume points and answers at
	// once; the last records go with the line that follows them, or at the end. The lock is
	// for the source's read-ahead, which reports the work it reads from a goroutine of its own.
	var mu sync.Mutex
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	enc := json.NewEncoder(out)
	var encErr error
	emit := func(m workerMsg) {
		mu.Lock()
		defer mu.Unlock()
		if encErr == nil {
			encErr = enc.Encode(m)
		}
		if encErr == nil && m.T != msgRecord {
			encErr = out.Flush()
		}
	}
	var req workerRequest
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		emit(workerMsg{T: msgError, Err: fmt.Sprintf("migrate: worker request: %v", err)})
		return 1
	}
	op, ok := workerOps[req.Op]
	if !ok {
		emit(workerMsg{T: msgError, Err: fmt.Sprintf("migrate: worker: unknown operation %q", req.Op)})
		return 1
	}
	var src *os.File
	if op.source {
		// Only then was a source passed; fd 3 may be the runtime's own otherwise.
		src = os.NewFile(3, "source")
	}
	if err := op.serve(ctx, &req, src, emit); err != nil {
		if op.aborts && ctx.Err() != nil {
			// Root asked us to stop: say whether the pending batch's tmp files are gone.
			m := workerMsg{T: msgAborted}
			if errors.Is(err, errAbortFailed) {
				m.Err = err.Error()
			}
			emit(m)
		}
		emit(workerMsg{T: msgError, Err: err.Error(), Unsafe: errors.Is(err, maildir.ErrUnsafe) || errors.Is(err, ErrUnsafeHome) || errors.Is(err, check.ErrUnsafe)})
		return 1
	}
	mu.Lock()
	defer mu.Unlock()
	if encErr == nil {
		encErr = out.Flush()
	}
	if encErr != nil {
		return 1
	}
	return 0
}

// workerOp is one operation a worker serves.
type workerOp struct {
	source bool // root passes the source at fd 3 (a rollback's, when there is one)
	aborts bool // interrupted, it says whether its pending batch's tmp files are gone (msgAborted)
	// serve does the work as the user; src is fd 3 when source is set, else nil. It may read
	// stdin past the request (the Mailbox lock takes one rename request at a time).
	serve func(ctx context.Context, req *workerRequest, src *os.File, emit func(workerMsg)) error
}

// workerOps is every operation a worker serves, by name: the one list of them. A test binary
// adds its own, to look at a worker from inside, before any worker starts.
var workerOps = map[string]workerOp{
	opConvert:         {source: true, aborts: true, serve: serveConvertOp},
	opMirror:          {source: true, aborts: true, serve: serveMirrorOp},
	opVerify:          {source: true, aborts: true, serve: serveVerifyOp},
	opFolders:         {aborts: true, serve: serveFolders},
	opVerifyFolders:   {aborts: true, serve: serveVerifyFolders},
	opRollbackFolders: {aborts: true, serve: serveRollbackFolders},
	opRollback:        {source: true, serve: serveRollbackOp},
	opEmptyInbox:      {serve: serveEmptyInbox},
	opMailboxLock:     {serve: serveMailboxLock},
	opCheckHome:       {serve: serveCheckHome},
	opEnsureMaildir:   {serve: serveEnsureMaildir},
}

// serveRollbackOp is the rollback worker: the old source at fd 3 when root passed one, the
// new mbox root made beside the spool at fd 4.
func serveRollbackOp(ctx context.Context, req *workerRequest, fd3 *os.File, emit func(workerMsg)) error {
	src, err := rollbackFiles(req, fd3)
	if err != nil {
		return err
	}
	return serveRollback(ctx, req, src, emit)
}

// ErrUnsafeHome is wrapped by the error that refuses a home directory.
var ErrUnsafeHome = errors.New("migrate: unsafe home")

// serve does the per-user work in-process, where no privilege separation is needed (run by a
// user, or for root's own mail), as a worker would; emit receives what it would send back.
func serve(ctx context.Context, req *workerRequest, src *os.File, emit func(workerMsg)) error {
	op, ok := workerOps[req.Op]
	if !ok {
		return fmt.Errorf("migrate: worker: unknown operation %q", req.Op)
	}
	if !op.source {
		src = nil
	}
	return op.serve(ctx, req, src, emit)
}

// sourceWork is what convert, mirror and verify work on: the source at fd 3, the part of it
// to read, its mtime, and the Maildir.
type sourceWork struct {
	src   *os.File
	size  int64
	mtime time.Time
	d     *maildir.Dir
}

// openSourceWork looks at the source of req and opens its Maildir. With check, a source that
// is not an mbox leaves no trace, not even an empty Maildir.
func openSourceWork(req *workerRequest, src *os.File, check bool) (sourceWork, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return sourceWork{}, fmt.Errorf("migrate: source: %w", err)
	}
	w := sourceWork{src: src, size: req.Size, mtime: time.Unix(st.Mtim.Unix())}
	if w.size == 0 || w.size > st.Size {
		w.size = st.Size
	}
	if check && req.StartOffset < w.size {
		if err := CheckMbox(io.NewSectionReader(src, req.StartOffset, w.size-req.StartOffset), w.size-req.StartOffset); err != nil {
			return sourceWork{}, fmt.Errorf("migrate: %w", err)
		}
	}
	var err error
	w.d, err = openDestination(req)
	return w, err
}

// serveConvertOp converts the source into the Maildir.
func serveConvertOp(ctx context.Context, req *workerRequest, src *os.File, emit func(workerMsg)) error {
	w, err := openSourceWork(req, src, true)
	if err != nil {
		return err
	}
	defer w.d.Close()
	return serveConvert(ctx, req, w.src, w.size, w.mtime, w.d, emit)
}

// serveMirrorOp makes the Maildir mirror the source.
func serveMirrorOp(ctx context.Context, req *workerRequest, src *os.File, emit func(workerMsg)) error {
	w, err := openSourceWork(req, src, true)
	if err != nil {
		return err
	}
	defer w.d.Close()
	stats, err := mirror(ctx, req, w.src, w.size, w.mtime, w.d, "", "", emit)
	if err != nil {
		return err
	}
	emit(workerMsg{T: msgStats, Stats: &stats})
	return nil
}

// serveVerifyOp proves the migrated part of the source is in the Maildir.
func serveVerifyOp(ctx context.Context, req *workerRequest, src *os.File, emit func(workerMsg)) error {
	w, err := openSourceWork(req, src, false)
	if err != nil {
		return err
	}
	defer w.d.Close()
	if req.UIDValidity != 0 {
		v, err := w.d.UIDValidity()
		if err != nil {
			return fmt.Errorf("migrate: verify: %w", err)
		}
		if v != req.UIDValidity {
			return fmt.Errorf("migrate: verify: %s/dovecot-uidlist has UIDVALIDITY %d, not the %d migrated with", req.Maildir, v, req.UIDValidity)
		}
	}
	res, err := verifyMaildir(ctx, req, w.src, w.size, w.d, newWorkMeter(emit))
	if err != nil {
		return err
	}
	emit(workerMsg{T: msgVerified, Verified: &res})
	return nil
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
	return maildir.OpenAt(fd, req.Maildir, req.Op == opConvert || req.Op == opMirror && !req.DryRun)
}

// openHome opens req.Home without following a symlink and refuses it unless it belongs to
// req.Owner and is writable by nobody else.
func openHome(req *workerRequest) (int, error) {
	fd, err := safefs.OpenHome(req.Home, req.Owner)
	var unsafe *safefs.UnsafeError
	switch {
	case errors.As(err, &unsafe):
		return -1, fmt.Errorf("%w: home %s %s", ErrUnsafeHome, unsafe.Path, unsafe.Reason)
	case err != nil:
		return -1, fmt.Errorf("migrate: home: %w", err)
	}
	return fd, nil
}

func serveConvert(ctx context.Context, req *workerRequest, src *os.File, size int64, mtime time.Time, d *maildir.Dir, emit func(workerMsg)) error {
	st, err := convertChecked(ctx, req, src, size, mtime, d, "", emit)
	if err != nil {
		return err
	}
	emit(workerMsg{T: msgStats, Stats: &st})
	return nil
}

// progressMessages is how many messages a worker reads at most between two progress lines.
const progressMessages = 64

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
	// mailbox. What is read, of the source and of the files checked, is the work root sees.
	work := newWorkMeter(emit)
	chk := &recordChecker{d: d, work: work}
	var pending, read int64
	st, err := Convert(ctx, work.readerAt(src), size, mtime, d, ConvertOptions{
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
		Notice:      func(e Event) { emit(workerMsg{T: msgEvent, Event: &e, Folder: folder}) },
		OnDurable: func(s Stats) {
			// A resume point only once every message before it was found as stored.
			if len(chk.res.Missing) == 0 && len(chk.res.Bad) == 0 {
				emit(workerMsg{T: msgDurable, Stats: &s, Folder: folder})
			}
		},
		OnMessage: func(r MessageRecord) {
			chk.check(r)
			emit(workerMsg{T: msgRecord, Record: &r, Folder: folder})
		},
		Read: func(n int64) { read += n },
		Progress: func(n int64) {
			// One line per MiB or progressMessages messages at most: the parent only draws a
			// bar and a count with it.
			pending += n
			if pending >= 1<<20 || read >= progressMessages {
				emit(workerMsg{T: msgProgress, N: pending, Messages: read, Folder: folder})
				pending, read = 0, 0
			}
		},
	})
	if pending > 0 || read > 0 {
		emit(workerMsg{T: msgProgress, N: pending, Messages: read, Folder: folder})
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
	if n := len(r.Orphans); n > 0 {
		parts = append(parts, fmt.Sprintf("%d in the Maildir whose source message is gone (first: %s)", n, r.Orphans[0]))
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
	work  *workMeter
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
	size := int64(-1)
	if n, err := maildir.ParseName(name); err == nil {
		size = n.Size
	}
	sum, err := hashMessageFile(f, size, c.work)
	f.Close()
	if err != nil || (r.StoredSHA256 != "" && sum != r.StoredSHA256) {
		c.res.Bad = append(c.res.Bad, badMessage(r.Index+1, sub, name, err))
		return
	}
	c.res.Found++
}

// badMessage describes message pos's file sub/name, whose content is not what was stored;
// err says why when the file could not be hashed.
func badMessage(pos int64, sub, name string, err error) string {
	s := fmt.Sprintf("message %d (%s/%s)", pos, sub, name)
	var se *sizeError
	if errors.As(err, &se) {
		s += fmt.Sprintf(": %d bytes, not %d", se.got, se.want)
	}
	return s
}

// sizeError is a message file whose size is not the size of the message stored under its
// name.
type sizeError struct{ got, want int64 }

func (e *sizeError) Error() string {
	return fmt.Sprintf("message file has %d bytes, not %d", e.got, e.want)
}

// hashMessageFile hashes the message file f, which must have size bytes (-1: unknown). A file
// of another size is not the message and is not read: it is the user's, and a sparse file of
// terabytes planted under a message's name would take hours to hash. What is read is bounded
// by the size found too, should the file grow while it is read. What is read counts as work.
func hashMessageFile(f *os.File, size int64, work *workMeter) (string, error) {
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if size >= 0 && fi.Size() != size {
		return "", &sizeError{got: fi.Size(), want: size}
	}
	return fileSHA256(work.reader(io.LimitReader(f, fi.Size()+1)))
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

// ConvertAs converts the mbox src into the Maildir at maildirPath as the given user: in a
// worker process running with those credentials when this process is root, in-process
// otherwise. opts' callbacks are called in this process; StartOffset and StartIndex are
// honoured. The Maildir's parent directory is opened by path, with the user's rights.
func ConvertAs(ctx context.Context, cred Credentials, src *os.File, maildirPath string, opts ConvertOptions) (Stats, error) {
	req := convertRequest(opConvert, opts)
	req.Path = maildirPath
	req.StartOffset, req.StartIndex = opts.StartOffset, opts.StartIndex
	req.Loose, req.LooseFrom = opts.Loose, opts.LooseFrom
	if opts.Location != nil {
		req.Location = opts.Location.String()
	}
	var st Stats
	var got bool
	err := runWorker(worker.WithStallTimeout(ctx, opts.StallTimeout), cred, req, src, func(m workerMsg) {
		dispatch(m, opts.Notice, opts.OnMessage, opts.Progress, opts.Read)
		if m.T == msgStats && m.Stats != nil {
			st, got = *m.Stats, true
		}
	})
	if err == nil && !got {
		err = errors.New("migrate: the worker ended without a result")
	}
	return st, err
}
