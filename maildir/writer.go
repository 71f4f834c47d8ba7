package maildir

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/fault"
	"github.com/maildirmig/maildirmig/internal/safefs"
)

// Delivery: a Writer adds messages to one Maildir. Each message is written to
// tmp/ under a name of this run (exclusive create, mode 0600, its date as
// mtime), made durable as Options.Fsync says, and renamed into new/ or cur/
// with RENAME_NOREPLACE: a message is complete under its final name or not
// there at all, and no existing file is ever replaced. In the batch modes
// (FsyncBatch, FsyncSyncfs) no file of a batch is renamed before all of them
// are on disk (fsync.go). Add recognises a message an earlier run delivered
// (names are deterministic, see name.go; what is there, known.go) and reports
// it instead of writing it twice. Flush ends a batch, Commit ends the writes
// and fixes the uidlist header (publish.go), Abort removes what is still
// pending in tmp/, Close releases the run marker (recover.go).

// Options control a Writer.
type Options struct {
	Host       string // host part of names; "" means os.Hostname(); "/"→`\057`, ":"→`\072`
	Fsync      Fsync
	BatchFiles int   // files per batch in FsyncBatch and FsyncSyncfs modes (0 = 512)
	BatchBytes int64 // bytes per batch (0 = 64 MiB)

	// Durable, when set, is called once per added message, in Add order, as
	// soon as the message is on disk in cur/ or new/ (at once for one that
	// Existed, after its batch in FsyncBatch mode). A migration records a
	// message as done here, never earlier. Messages dropped by Abort are
	// never reported.
	Durable func(Result)

	// AnyPosition, when set, takes a message for one the Maildir already
	// holds when a file found there by NewWriter has the same base name
	// but for the Q<position> part: same date, content hash, host, S= and
	// W=. Add then reports it Existed, with that file's name and UID, and
	// writes nothing. It is for a source whose messages moved (one before
	// them was deleted), where the names made from positions no longer
	// match. Identical messages with the same date all match the same file,
	// so such duplicates of a message already there are not written again.
	AnyPosition bool

	// Unlisted leaves the files Add writes out of dovecot-uidlist, and Add
	// gives them no UID: a mirroring caller lists every message of the
	// Maildir in its source's order with ReplaceUIDList once its files are
	// in place. Only for a Maildir that nothing else serves meanwhile.
	Unlisted bool

	// Recovered, when set, hears what NewWriter and the control file locks
	// cleaned up after a maildirmig that died: its tmp/ files, its dotlock
	// taken over. Each call is one sentence for a log.
	Recovered func(detail string)
}

const (
	defaultBatchFiles = 512
	defaultBatchBytes = 64 << 20
)

// Message is one message to add to a Maildir.
type Message struct {
	// Date is the message's own date, read from the message itself (its
	// From_ line or its Date: header): the time part of its name, and its
	// file's mtime unless MTime is set. A message without a date of its own
	// has a zero Date, and its name the time part 0, so that its name is the
	// same on every run whatever date it is given to show.
	Date time.Time
	// MTime, when not zero, is the file's mtime (Dovecot's INTERNALDATE)
	// instead of Date: a date found outside the message, such as the mbox
	// file's mtime, which may differ from run to run and so must never go
	// into the name.
	MTime    time.Time
	Flags    string    // system flag letters from "DFPRST", any order
	Keywords []string  // keyword names, mapped to letters a..z through dovecot-keywords
	New      bool      // put in new/ (only honoured when there are no Flags and no Keywords)
	UID      uint32    // UID wanted (from X-UID), 0 = assign
	Position int64     // the message's position in its source (mbox index); part of the name
	Content  io.Reader // the message bytes exactly as they must be stored
	// Prepared, when set, is the content read and measured ahead of Add
	// (Prepare), which then does not read Content.
	Prepared *Prepared
}

// Result describes what Add did with one message.
type Result struct {
	Name   string // final file name (in new/ or cur/)
	Sub    string // "new" or "cur"
	Size   int64  // bytes written (the S= value)
	SHA256 [32]byte
	// UID is the message's UID. Add gives the UID it assigned; when
	// Dovecot gave that UID to another message before the batch was listed,
	// the message gets the next free one (Renumbered reports it), and the
	// Result handed to Options.Durable carries that.
	UID     uint32
	Existed bool // a message with the same base name was already in the Maildir: nothing new written
	// MTime is the mtime the file got when the file system could not
	// hold the date asked for (ext4 keeps 1901 to 2446): the nearest
	// one it holds. It is zero when the file has the date asked for.
	MTime time.Time
}

// Writer adds messages to a Maildir and keeps its dovecot-uidlist and
// dovecot-keywords. It is not safe for concurrent use.
type Writer struct {
	d    *Dir
	opts Options
	host string

	// known holds every base name in cur/ or new/: found there by
	// NewWriter or added since. It is keyed by a hash of the base name and
	// keeps the rest of the file name interned, so that it costs a few
	// dozen bytes per message whatever the names' length.
	known    map[baseKey]knownFile
	suffixes []string          // the parts of file names after their base
	suffixAt map[string]uint32 // index of each in suffixes

	// anyPos, kept only with Options.AnyPosition, maps the key of a base
	// name found by NewWriter without its Q<position> part to that
	// position, from which the file's base name is made again.
	anyPos map[baseKey]int64

	// undated maps the key of a base name in cur/ or new/ without its time
	// part ("<secs>.M<usecs>") to that part: earlier versions named a
	// message without a date of its own by the source's mtime. It is built
	// by the first Add of such a message that finds no file of its name.
	undated map[baseKey]string

	ul      *uidlist  // header only: the lines are in the file, or in tail
	tail    []uidLine // lines not yet in the file; Abort may still drop some
	ulDirty bool      // the header on disk may say a lower next UID than ul.next

	// What the file was when this Writer last read or wrote it: its
	// identity (nil while there was none), the next UID Dovecot would
	// take from it and its last line's UID. A file still the same needs no
	// reading before lines are appended; any other was changed by someone
	// else, who may have given UIDs too. pubFile holds that file open, so
	// that its inode number cannot be given to a file that replaces it
	// (ext4 hands a freed number out again at once): with it, the same
	// device, inode number, size, mtime and ctime are the same file
	// unchanged. Without it (after Commit or Abort) the file is read again.
	pubStat *unix.Stat_t
	pubFile *os.File
	pubNext uint32
	pubLast uint32
	pubHead uint32 // the next UID its header says

	kw      [maxKeywords]string
	kwDirty bool
	dropped []string

	haveBase     bool
	baseValidity uint32
	used         uint32 // highest UID given or listed: never given again
	prev         uint32 // UID of the previous message
	renumbered   bool

	pending      []pendingFile
	pendingBytes int64
	dirty        [2]bool // cur/, new/ received a rename since their last fsync

	// The batch pipeline (fsync.go): the batch whose sync is in flight,
	// the number of the pending batch, which its uidlist lines carry, and
	// of the last batch moved into cur/ and new/ (lines up to it may be
	// listed).
	job      *syncJob
	batchSeq uint64
	movedSeq uint64
	spare    []pendingFile // a moved batch's array, for the next pending one

	// waiting holds the results added and not yet reported to
	// Options.Durable, in Add order; waitBase counts those reported
	// before waiting[0] (pendingFile.wait counts from the first Add).
	waiting  []Result
	waitBase int

	buf     []byte
	nameBuf []byte // where Add makes names
	pid     int
	marker  *runMarker // this Writer's run marker in tmp/, until Close
	ctr     counter    // the message being written

	// umask is the process's umask when the Writer was made: when it
	// leaves 0600 whole, a file created 0600 needs no fchmod.
	umask uint32
	// held counts the files kept open until their fsync, in the batch
	// being synced and the pending one, at most maxHeld, well within the
	// descriptor limit.
	held, maxHeld int

	// syncErr is a failed sync of the pending batch: its files stay out
	// of cur/ and new/ until Abort, because a second fsync may succeed
	// without the data having reached the disk.
	syncErr error

	// sawUIDList, set by tests, may change what publish saw of the
	// uidlist, to play a file system that reuses inode numbers.
	sawUIDList func(st *unix.Stat_t)

	// trace, set by tests, sees each sync and rename once it succeeded,
	// possibly from several goroutines at once; an error it returns is
	// taken as that call's failure.
	trace func(event string) error

	// lockWait, when set by tests, replaces the 30 seconds lockControl
	// waits for a live holder.
	lockWait time.Duration
}

type pendingFile struct {
	tmp  string
	fd   int // the tmp file, still open for its fsync; -1 once closed
	sub  int
	name string
	base string
	wait int // index in waiting, plus waitBase
}

// NewWriter prepares to add messages to d: it lists cur/ and new/ once (base
// names), and reads an existing dovecot-uidlist and dovecot-keywords.
func NewWriter(d *Dir, opts Options) (*Writer, error) {
	host := opts.Host
	if host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		host = h
	}
	if opts.BatchFiles <= 0 {
		opts.BatchFiles = defaultBatchFiles
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = defaultBatchBytes
	}
	if opts.Fsync == FsyncSyncfs && !SyncfsReportsErrors() {
		opts.Fsync = FsyncBatch
	}
	w := &Writer{
		d:        d,
		opts:     opts,
		host:     escapeHost(host),
		known:    map[baseKey]knownFile{},
		suffixAt: map[string]uint32{},
		buf:      make([]byte, 64*1024),
		pid:      os.Getpid(),
		batchSeq: 1,
		umask:    currentUmask(),
	}
	if opts.Fsync == FsyncBatch {
		var rl unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
			w.maxHeld = int(min(2*uint64(opts.BatchFiles), rl.Cur/4))
		}
	}
	if opts.AnyPosition {
		w.anyPos = map[baseKey]int64{}
	}
	if err := w.claim(); err != nil {
		return nil, err
	}
	if err := w.open(); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// open cleans up after dead runs, then reads what the Maildir holds.
func (w *Writer) open() error {
	d, opts := w.d, w.opts
	if err := w.recover(); err != nil {
		return err
	}
	for _, s := range []int{subCur, subNew} {
		err := d.eachName(s, func(n string) {
			if n == "" || n[0] == '.' {
				return
			}
			base := baseOf(n)
			w.known[keyOf(base)] = w.file(n[len(base):], s)
			if opts.AnyPosition {
				if head, pos, rest, ok := splitPosition(base); ok {
					w.anyPos[keyOf(head+rest)] = pos
				}
			}
		})
		if err != nil {
			return err
		}
	}
	f, st, err := openControl(d.fd, uidlistName, d.path+"/"+uidlistName)
	if err != nil {
		return err
	}
	if f != nil {
		ul, err := scanUIDList(f, func(l uidLine) error {
			k := keyOf(l.base)
			if e, ok := w.known[k]; ok {
				e.uid = l.uid
				w.known[k] = e
			}
			return nil
		})
		if err != nil {
			f.Close()
			if ue, ok := errors.AsType[*UIDListError](err); ok {
				ue.Path = d.path + "/" + uidlistName
				return ue
			}
			return fmt.Errorf("maildir: %s/%s: %w", d.path, uidlistName, err)
		}
		if ul.guid == "" {
			if ul.guid, err = newGUID(); err != nil {
				return fmt.Errorf("maildir: mailbox guid: %w", err)
			}
		}
		w.ul, w.pubStat, w.pubFile = ul, st, f
		w.pubNext, w.pubLast, w.pubHead = ul.next, ul.last, ul.headNext
		w.used = ul.next - 1
	} else {
		guid, err := newGUID()
		if err != nil {
			return fmt.Errorf("maildir: mailbox guid: %w", err)
		}
		w.ul = &uidlist{version: '3', validity: uint32(time.Now().Unix()), next: 1, guid: guid}
	}
	b, _, err := readSmallFile(d.fd, keywordsName, d.path+"/"+keywordsName)
	if err != nil {
		return err
	}
	if b != nil {
		if w.kw, err = parseKeywords(bytes.NewReader(b)); err != nil {
			return fmt.Errorf("maildir: %s/%s: %w", d.path, keywordsName, err)
		}
	}
	return nil
}

// Add writes one message into tmp/ (O_CREAT|O_EXCL, 0600, fchmod 0600, mtime =
// MTime, else Date), hashing it as it streams, computes S= and W= (W = size
// with every bare LF counted as CRLF), and builds the name
//
//	<unix secs of Date>.M<usecs>Q<Position>X<first 16 hex digits of sha256>.<host>,S=<size>,W=<vsize>
//
// plus ":2,<flags in ASCII order: system letters then keyword letters>" in
// cur/. The base name (before ':') is deterministic: the same content, date,
// position and host give the same base on every run. If that base already
// exists in cur/ or new/ (or was added earlier in this run) the tmp file is
// removed and Result.Existed is true. Otherwise the file is moved into new/ or
// cur/ with RENAME_NOREPLACE (never overwrite), immediately (FsyncAlways/None)
// or at the end of the batch (FsyncBatch). A zero Date and dates before 1970
// give the time part 0 (0.M0Q...); a message with a zero Date also matches a
// file of a name that differs from its own only by the time part, as earlier
// versions named it after the source's mtime. UIDs are assigned here, in
// call order (= mbox order).
func (w *Writer) Add(m *Message) (Result, error) {
	flags, err := w.flagString(m)
	if err != nil {
		return Result{}, err
	}
	tmp, fd, c, err := w.writeTmp(m)
	if err != nil {
		return Result{}, err
	}
	secs, usecs := int64(0), int64(0)
	if m.Date.Unix() >= 0 {
		secs, usecs = m.Date.Unix(), int64(m.Date.Nanosecond()/1000)
	}
	var r Result
	r.SHA256 = c.sum
	r.Size = c.n
	// <secs>.M<usecs>Q<position>X<16 hex digits>.<host>,S=<size>,W=<vsize>
	b := strconv.AppendInt(w.nameBuf[:0], secs, 10)
	b = strconv.AppendInt(append(b, ".M"...), usecs, 10)
	b = strconv.AppendInt(append(b, 'Q'), m.Position, 10)
	b = hex.AppendEncode(append(b, 'X'), r.SHA256[:8])
	b = append(append(b, '.'), w.host...)
	b = strconv.AppendInt(append(b, ",S="...), c.n, 10)
	b = strconv.AppendInt(append(b, ",W="...), c.n+c.bareLF, 10)
	w.nameBuf = b
	base := string(b)

	key := keyOf(base)
	e, ok := w.known[key]
	if !ok && m.Date.IsZero() {
		var other string
		if other, err = w.undatedFile(base); err != nil {
			w.dropTmp(tmp, fd)
			return Result{}, err
		}
		if other != "" {
			if e, ok = w.known[keyOf(other)]; ok {
				base, key = other, keyOf(other)
			}
		}
	}
	if !ok && w.anyPos != nil {
		if head, _, rest, split := splitPosition(base); split {
			if pos, found := w.anyPos[keyOf(head+rest)]; found {
				other := head + strconv.FormatInt(pos, 10) + rest
				if e, ok = w.known[keyOf(other)]; ok {
					base, key = other, keyOf(other)
				}
			}
		}
	}
	if ok {
		w.dropTmp(tmp, fd)
		r.Name, r.Existed = base+w.suffixes[e.suffix&^inNew], true
		r.Sub = subNames[subCur]
		if e.suffix&inNew != 0 {
			r.Sub = subNames[subNew]
		}
		if e.uid != 0 {
			r.UID = e.uid
			w.prev = e.uid
		} else if !w.opts.Unlisted {
			// A file of ours that the uidlist does not list yet (a run
			// interrupted before Commit): list it now, in mbox order.
			if r.UID, err = w.assignUID(m.UID); err != nil {
				return Result{}, err
			}
			w.list(r.UID, base, 0)
			e.uid = r.UID
			w.known[key] = e
		}
		w.report(r)
		if err := w.maybePublish(); err != nil {
			return r, err
		}
		return r, nil
	}

	sub := subCur
	if m.New && flags == "" && len(m.Keywords) == 0 {
		sub = subNew
	}
	r.Sub, r.Name, r.MTime = subNames[sub], base, c.mtime
	if sub == subCur {
		r.Name += ":2," + flags
	}
	if !w.opts.Unlisted {
		if r.UID, err = w.assignUID(m.UID); err != nil {
			w.dropTmp(tmp, fd)
			return Result{}, err
		}
		// A line of a batched file waits until its batch is moved in.
		batch := uint64(0)
		if w.opts.Fsync.batched() {
			batch = w.batchSeq
		}
		w.list(r.UID, base, batch)
	}
	f := w.file(r.Name[len(base):], sub)
	f.uid = r.UID
	w.known[key] = f

	if w.opts.Fsync.batched() {
		w.pending = append(w.pending, pendingFile{tmp: tmp, fd: fd, sub: sub, name: r.Name, base: base, wait: w.waitBase + len(w.waiting)})
		w.pendingBytes += r.Size
		w.waiting = append(w.waiting, r)
		if len(w.pending) >= w.opts.BatchFiles || w.pendingBytes >= w.opts.BatchBytes {
			if err := w.endBatch(); err != nil {
				return r, err
			}
		}
		return r, nil
	}
	if err := w.writeKeywords(); err != nil {
		w.forget([]pendingFile{{tmp: tmp, base: base}})
		return Result{}, err
	}
	existed, err := w.moveIn(tmp, sub, r.Name)
	if err != nil {
		w.forget([]pendingFile{{tmp: tmp, base: base}})
		return Result{}, err
	}
	r.Existed = existed
	if w.opts.Fsync == FsyncAlways {
		if err := w.syncDirs(); err != nil {
			return r, err
		}
	}
	w.report(r)
	if err := w.maybePublish(); err != nil {
		return r, err
	}
	return r, nil
}

// report hands r to Options.Durable, after every earlier message still
// waiting for its batch.
func (w *Writer) report(r Result) {
	w.waiting = append(w.waiting, r)
	w.deliverMoved()
}

// deliverMoved hands Options.Durable the waiting results before the first
// one whose file is still in tmp/ (in the batch being synced, or pending).
func (w *Writer) deliverMoved() {
	n := len(w.waiting)
	if w.job != nil && len(w.job.files) > 0 {
		n = w.job.files[0].wait - w.waitBase
	} else if len(w.pending) > 0 {
		n = w.pending[0].wait - w.waitBase
	}
	if n == 0 {
		return
	}
	if w.opts.Durable != nil {
		for _, r := range w.waiting[:n] {
			w.opts.Durable(r)
		}
	}
	w.dropWaiting(n)
}

// dropWaiting forgets the first n waiting results.
func (w *Writer) dropWaiting(n int) {
	k := copy(w.waiting, w.waiting[n:])
	clear(w.waiting[k:])
	w.waiting = w.waiting[:k]
	w.waitBase += n
}

// writeTmp streams the message into a new file in tmp/.
func (w *Writer) writeTmp(m *Message) (string, int, *counter, error) {
	tmpfd := w.d.sub[subTmp]
	var (
		name string
		fd   int
		err  error
	)
	for try := 0; ; try++ {
		var rnd [6]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return "", -1, nil, fmt.Errorf("maildir: tmp name: %w", err)
		}
		// <secs>.<run token>Q<position>R<12 hex digits>.<host>
		b := strconv.AppendInt(w.nameBuf[:0], time.Now().Unix(), 10)
		b = append(append(b, '.'), w.marker.token...)
		b = strconv.AppendInt(append(b, 'Q'), m.Position, 10)
		b = hex.AppendEncode(append(b, 'R'), rnd[:])
		b = append(append(b, '.'), w.host...)
		w.nameBuf = b
		name = string(b)
		fd, err = safefs.Open(tmpfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if err != unix.EEXIST || try == 10 {
			break
		}
	}
	if err != nil {
		return "", -1, nil, fmt.Errorf("maildir: create %s/tmp/%s: %w", w.d.path, name, err)
	}
	// The file's path, for an error only.
	display := func() string { return w.d.path + "/tmp/" + name }
	c := &w.ctr
	if c.h == nil {
		c.h = sha256.New()
	}
	c.h.Reset()
	c.n, c.bareLF, c.lastCR, c.mtime = 0, 0, false, time.Time{}
	fail := func(err error) (string, int, *counter, error) {
		unix.Close(fd)
		w.removeTmp(name)
		return "", -1, nil, err
	}
	if p := m.Prepared; p != nil {
		c.sum, c.n, c.bareLF = p.sum, int64(len(p.b)), p.bareLF
		if err := fault.Write.Err(writeAll(fd, p.b)); err != nil {
			return fail(fmt.Errorf("maildir: write %s: %w", display(), err))
		}
	} else {
		if err := fault.Write.Err(w.copyTo(fd, m.Content, c)); err != nil {
			return fail(fmt.Errorf("maildir: write %s: %w", display(), bare(err, display())))
		}
		c.finish()
	}
	// The umask may have narrowed 0600 at creation; a message is exactly 0600.
	if w.umask&0o600 != 0 {
		if err := unix.Fchmod(fd, 0o600); err != nil {
			return fail(fmt.Errorf("maildir: chmod %s: %w", display(), err))
		}
	}
	mtime := m.Date
	if !m.MTime.IsZero() {
		mtime = m.MTime
	}
	want := mtimeOf(mtime)
	if err := futimens(fd, want); err != nil {
		return fail(fmt.Errorf("maildir: set mtime of %s: %w", display(), err))
	}
	// The kernel keeps a date the file system cannot hold at the nearest
	// one it can, silently: what it kept is read back.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail(fmt.Errorf("maildir: stat %s: %w", display(), err))
	}
	if st.Mtim.Sec != want.Sec {
		c.mtime = time.Unix(st.Mtim.Unix())
	}
	if err := w.traced(nil, "write tmp/", name); err != nil {
		return fail(fmt.Errorf("maildir: write %s: %w", display(), err))
	}
	switch w.opts.Fsync {
	case FsyncAlways:
		if err := w.traced(fault.Fsync.Err(unix.Fsync(fd)), "fsync tmp/", name); err != nil {
			return fail(fmt.Errorf("maildir: fsync %s: %w", display(), err))
		}
	case FsyncBatch:
		// Start writing the data now, while the next messages are
		// prepared, so the fsync at the end of the batch mostly waits for
		// the journal. It is only advice: the fsync is the guarantee.
		// FsyncSyncfs does not: its syncfs writes the batch back as a
		// whole, from the kernel's flusher thread, which allocates the
		// blocks of many files at once; starting each file's writeback
		// here made the writing thread do that work file by file, and
		// the whole conversion slower.
		_ = unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		if w.held < w.maxHeld {
			// Kept open for the batch's fsync, which then needs no
			// second open of the file.
			w.held++
			return name, fd, c, nil
		}
	}
	if err := fault.Close.Err(unix.Close(fd)); err != nil {
		w.removeTmp(name)
		return "", -1, nil, fmt.Errorf("maildir: close %s: %w", display(), err)
	}
	return name, -1, c, nil
}

// copyTo streams r into fd, through c. A message that fits in the buffer
// takes one write; a larger one is written a buffer at a time.
func (w *Writer) copyTo(fd int, r io.Reader, c *counter) error {
	for {
		n, rerr := io.ReadFull(r, w.buf)
		if n > 0 {
			c.Write(w.buf[:n])
			if err := writeAll(fd, w.buf[:n]); err != nil {
				return err
			}
		}
		switch rerr {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return nil
		default:
			return rerr
		}
	}
}

// writeAll writes b to fd, resuming after a short write or an interrupt.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b = b[n:]
	}
	return nil
}

// bare drops the *os.PathError that an *os.File method put around err
// when it is about the file named path: the message that wraps it names the
// file already. Another file's error (the source's, when a copy fails on the
// read side) keeps its path.
func bare(err error, path string) error {
	if pe, ok := err.(*os.PathError); ok && pe.Path == path {
		return pe.Err
	}
	return err
}

// mtimeOf is the file time of a message's date t, whatever its year: t.UnixNano would
// overflow past 2262. A zero t (no date known) is 1970-01-01.
func mtimeOf(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{}
	}
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// futimens sets atime and mtime of an open file, without a path.
func futimens(fd int, ts unix.Timespec) error {
	times := [2]unix.Timespec{ts, ts}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&times[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func (w *Writer) removeTmp(name string) {
	_ = unix.Unlinkat(w.d.sub[subTmp], name, 0)
}

// dropTmp removes the tmp file name that Add will not move in, and closes
// fd, its descriptor if writeTmp kept it open for the batch's fsync.
func (w *Writer) dropTmp(name string, fd int) {
	w.closeHeld(fd)
	w.removeTmp(name)
}

// moveIn renames tmp/tmp to sub/name without ever replacing a file. existed
// is true when sub/name was already there (the tmp file is then removed).
func (w *Writer) moveIn(tmp string, sub int, name string) (existed bool, err error) {
	tmpfd, dstfd := w.d.sub[subTmp], w.d.sub[sub]
	event := [...]string{"rename tmp/", tmp, " ", subNames[sub], "/", name}
	err = w.traced(fault.Move.Err(unix.Renameat2(tmpfd, tmp, dstfd, name, unix.RENAME_NOREPLACE)), event[:]...)
	if err == unix.EINVAL || err == unix.ENOSYS {
		// File systems without RENAME_NOREPLACE: a hard link also fails
		// rather than replace, and the tmp name goes after.
		err = w.traced(fault.Move.Err(unix.Linkat(tmpfd, tmp, dstfd, name, 0)), event[:]...)
		if err == nil {
			err = unix.Unlinkat(tmpfd, tmp, 0)
			if err != nil {
				err = fmt.Errorf("maildir: remove %s/tmp/%s: %w", w.d.path, tmp, err)
			}
			w.dirty[sub] = true
			return false, err
		}
	}
	if err == unix.EEXIST {
		w.removeTmp(tmp)
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("maildir: move %s/tmp/%s to %s/%s: %w", w.d.path, tmp, subNames[sub], name, err)
	}
	w.dirty[sub] = true
	return false, nil
}

// currentUmask reads the process's umask from /proc/self/status (Linux 4.7
// and later), without changing it. When it cannot, it answers a umask that
// keeps every fchmod.
func currentUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if u, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return uint32(u)
				}
			}
		}
	}
	return 0o777
}

// traced passes a successful call's event to the test hook. The event is
// the concatenation of its parts, made only when there is a hook: the calls
// on each message's path would otherwise pay for it.
func (w *Writer) traced(err error, event ...string) error {
	if err == nil && w.trace != nil {
		return w.trace(strings.Join(event, ""))
	}
	return err
}

// Flush makes every message added so far durable and visible: it finishes
// the batch being synced and the pending one (sync, renames, directory
// fsync), writes dovecot-keywords, lists the messages in dovecot-uidlist,
// and reports them to Options.Durable. Batches are moved in and listed as
// they fill up too, each at the end of the next one (its sync ran
// meanwhile): a file of ours is unlisted only while it waits in tmp/ or a
// mode without batches gathers lines (at most 512 messages), or until Flush.
func (w *Writer) Flush() error {
	if err := w.flush(); err != nil {
		return err
	}
	if err := w.writeKeywords(); err != nil {
		return err
	}
	return w.publish(nil, false)
}

// Commit does what Flush does, then makes the header of dovecot-uidlist
// give the next UID this Writer reached (lines appended since the header was
// written may have passed it, and UIDs an mbox reserved never appear in a
// line): the file is rewritten when its header says less. It may be called
// several times. It closes the descriptor the Writer holds on the uidlist
// between batches; a Writer used after Commit reads the file again.
func (w *Writer) Commit() error {
	defer w.unpin()
	if err := w.Flush(); err != nil {
		return err
	}
	return w.publish(nil, true)
}

// Abort removes the tmp files of the pending batch (used on error/interrupt).
// Files already renamed stay (they are complete and durable), and their
// lines are appended to dovecot-uidlist, so that Dovecot numbers them as
// this Writer did. Like Commit, it closes the descriptor held on the uidlist.
func (w *Writer) Abort() error {
	defer w.unpin()
	var first error
	w.settle()
	w.closePending()
	for _, p := range w.pending {
		if err := unix.Unlinkat(w.d.sub[subTmp], p.tmp, 0); err != nil && !errors.Is(err, unix.ENOENT) && first == nil {
			first = fmt.Errorf("maildir: remove %s/tmp/%s: %w", w.d.path, p.tmp, err)
		}
	}
	w.forget(w.pending)
	w.pending, w.pendingBytes = w.pending[:0], 0
	w.dropWaiting(len(w.waiting))
	w.syncErr = nil
	if err := w.publish(nil, false); err != nil && first == nil {
		first = err
	}
	return first
}

// settle waits for the sync in flight, if any, and puts its batch back in
// front of the pending one, whatever the sync's outcome: for Abort and
// Close, which move nothing in.
func (w *Writer) settle() {
	job := w.job
	if job == nil {
		return
	}
	<-job.done
	w.job = nil
	w.pending = append(job.files, w.pending...)
}

// forget drops the uidlist lines and run records of messages that never
// reached cur/ or new/, removing their tmp files. Their lines are all in the
// tail: it is spilled only when no batch is pending.
func (w *Writer) forget(files []pendingFile) {
	if len(files) == 0 {
		return
	}
	gone := map[string]bool{}
	for _, p := range files {
		gone[p.base] = true
		delete(w.known, keyOf(p.base))
		w.removeTmp(p.tmp)
	}
	tail := w.tail[:0]
	for _, l := range w.tail {
		if !gone[l.base] {
			tail = append(tail, l)
		}
	}
	clear(w.tail[len(tail):])
	w.tail = tail
}
