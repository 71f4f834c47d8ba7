package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
)

// ConvertOptions control how one mbox becomes one Maildir.
type ConvertOptions struct {
	KeepHeaders bool           // keep Status, X-Status, X-Keywords, X-UID, X-IMAP*, Content-Length byte for byte
	Unescape    mbox.Unescape  // >From unquoting; none by default
	Location    *time.Location // zone for From_ dates without one; nil means time.Local
	Maildir     maildir.Options
	StartOffset int64 // resume: first byte not yet migrated (a message boundary)
	StartIndex  int64 // position number of the first message read (part of names)
	FlushEvery  int   // messages between two flushes, each a resume point; 0 = 4096
	Loose       bool  // read in loose mode keyed on LooseFrom (mbox.Options): a resume of a loose source
	LooseFrom   []byte
	Notice      func(Event)         // oddities: loose mode, date fallbacks, ignored Content-Length...
	OnMessage   func(MessageRecord) // once per message, in order, after it is durable
	Progress    func(n int64)       // source bytes consumed since the previous call
	// Read hears of messages as they are read, long before OnMessage hears of them once
	// they are durable: n more messages.
	Read func(n int64)
	// OnDurable is called after each flush but the last, once OnMessage had every record
	// before it: Stats.EndOffset is then a resume point (every message before it is durable,
	// and listed in dovecot-uidlist), and Messages counts the messages before it.
	OnDurable func(Stats)
	// StallTimeout is how long ConvertAs's worker may make no progress before it is killed;
	// 0 = DefaultStallTimeout.
	StallTimeout time.Duration
}

// Event is an oddity met while converting, for the console and the audit log.
type Event struct {
	Kind    string // an mbox.Notice kind, or one of the Event* kinds below
	Message int64  // message position, -1 for the whole file
	Offset  int64  // byte offset in the source
	Detail  string
}

// Event kinds Convert adds to the reader's notices.
const (
	EventDateFromHeader  = "date-from-header"  // no usable From_ date: the Date: header gave it
	EventDateFromMTime   = "date-from-mtime"   // neither From_ nor Date: gave a date: the mbox mtime did
	EventKeywordsDropped = "keywords-dropped"  // more than 26 keywords: the rest could not be kept
	EventRenumbered      = "uids-renumbered"   // some IMAP UIDs could not be kept: clients will re-download
	EventPseudoSkipped   = "uw-pseudo-message" // UW-IMAP's folder-internal-data message was not copied
	EventRecovered       = "recovered"         // what a maildirmig that died left in the Maildir was cleaned up
	EventDateOutOfRange  = "date-out-of-range" // the file system cannot hold the date as mtime: the nearest it holds was set
)

// MessageRecord tells what became of one source message.
type MessageRecord struct {
	Index        int64  `json:"index"`  // position in the source mbox
	Offset       int64  `json:"offset"` // offset of its From_ line
	Size         int64  `json:"size"`   // header and body bytes as read, From_ line and separator excluded
	SHA256       string `json:"sha256"` // of those bytes
	StoredSHA256 string `json:"stored_sha256,omitempty"`
	Name         string `json:"name,omitempty"` // file name in the Maildir
	Sub          string `json:"sub,omitempty"`  // "new" or "cur"
	UID          uint32 `json:"uid,omitempty"`
	Existed      bool   `json:"existed,omitempty"` // already in the Maildir: nothing written
	// Key, when set, is the message's identity, "<head> <sum> <size>" (maildir.OwnKey), for a
	// record whose file's name does not carry it (a rollback's).
	Key     string `json:"key,omitempty"`
	Skipped bool   `json:"skipped,omitempty"` // not mail (UW pseudo-message)
}

// Stats sum up a conversion.
type Stats struct {
	Messages    int64 // messages read (pseudo-message included)
	Written     int64 // new files in the Maildir
	Existed     int64 // messages already in the Maildir
	Skipped     int64 // pseudo-messages
	Bytes       int64 // source bytes consumed
	EndOffset   int64 // offset after the last message made durable: where a resume starts
	Renumbered  bool
	UIDValidity uint32
	NextUID     uint32
	Loose       bool   // the source was read in loose mode
	LooseFrom   []byte // the line it was keyed on (mbox.Reader.LooseFrom)

	// A mirror pass's: files renamed for their flags, files removed, messages the user
	// deleted in a live Maildir that stay deleted, and why the Maildir is live ("" when it
	// is not; Changed and Removed then count what the pass did not apply).
	Changed int64  `json:",omitempty"`
	Removed int64  `json:",omitempty"`
	Deleted int64  `json:",omitempty"`
	Live    string `json:",omitempty"`
	Seq     int64  `json:",omitempty"` // the sequence number the next new message gets
	Mirror  bool   `json:",omitempty"` // the stats of a mirror pass
}

// flushEvery bounds how much work is pending between two converter flushes: records reach
// OnMessage only once a flush made their messages durable, and are held until then. Each
// flush is a resume point (OnDurable): the writer lists its batches in dovecot-uidlist as it
// makes them durable, so a run that stops leaves a Maildir Dovecot numbers as we did, and a
// state that the next run resumes from without writing any message twice.
const (
	flushEveryMessages = 4096
	flushEveryBytes    = 256 << 20
)

// Convert reads the mbox src[opts.StartOffset:size) and adds every message to d, in mbox order.
// srcMTime is the last fallback for a message's date. It commits the Maildir writer before
// returning; on an error or a cancelled ctx it aborts the pending batch (its tmp files are
// removed) and returns what was made durable so far, with the error.
func Convert(ctx context.Context, src io.ReaderAt, size int64, srcMTime time.Time, d *maildir.Dir, opts ConvertOptions) (Stats, error) {
	c := &converter{opts: opts, st: Stats{EndOffset: opts.StartOffset}, srcMTime: srcMTime}
	if opts.Maildir.Recovered == nil {
		opts.Maildir.Recovered = func(detail string) { c.notice(Event{Kind: EventRecovered, Message: -1, Detail: detail}) }
	}
	w, err := maildir.NewWriter(d, opts.Maildir)
	if err != nil {
		return c.st, err
	}
	defer w.Close()
	c.w = w
	section := io.NewSectionReader(src, opts.StartOffset, size-opts.StartOffset)
	c.r = mbox.NewReader(section, size-opts.StartOffset, mbox.Options{
		Unescape:  opts.Unescape,
		Location:  opts.Location,
		Loose:     opts.Loose,
		LooseFrom: opts.LooseFrom,
		// Heard by whichever goroutine reads at the time (readahead.go), and told in
		// order with the message they came with.
		Notice: func(n mbox.Notice) {
			msg := int64(-1)
			if n.Message >= 0 {
				msg = opts.StartIndex + int64(n.Message)
			}
			c.readNotices = append(c.readNotices, Event{Kind: n.Kind, Message: msg, Offset: opts.StartOffset + n.Offset, Detail: n.Detail})
		},
	})
	err = c.run(ctx)
	c.st.Loose, c.st.LooseFrom = c.r.Loose(), c.r.LooseFrom()
	if err != nil {
		if aerr := w.Abort(); aerr != nil {
			err = errors.Join(err, fmt.Errorf("%w: %w", errAbortFailed, aerr))
		}
		return c.st, err
	}
	if err := c.durable(w.Commit); err != nil {
		return c.st, err
	}
	if w.Renumbered() {
		c.st.Renumbered = true
		c.notice(Event{Kind: EventRenumbered, Message: -1, Detail: "some IMAP UIDs could not be kept; clients will download those messages again"})
	}
	if kw := w.DroppedKeywords(); len(kw) > 0 {
		c.notice(Event{Kind: EventKeywordsDropped, Message: -1, Detail: "keywords beyond the 26 a Maildir name can carry were dropped: " + strings.Join(kw, " ")})
	}
	return c.st, nil
}

// errAbortFailed is wrapped by the error of a Convert whose pending batch could not be removed.
var errAbortFailed = errors.New("migrate: removing the pending batch")

type converter struct {
	opts     ConvertOptions
	r        *mbox.Reader
	w        *maildir.Writer
	st       Stats
	srcMTime time.Time

	pending      []pendingRecord // added but not yet durable
	pendingBytes int64
	pendingEnd   int64 // source offset after the last pending message
	reported     int64 // source offset already passed to Progress

	// The reading goroutine's (readahead.go): the reader's notices not yet handed over,
	// and what the converter last heard of it.
	readNotices []Event
	offset      int64 // the reader's offset after the message being converted
	loose       bool
	looseFrom   []byte
}

func (c *converter) notice(e Event) {
	if c.opts.Notice != nil {
		c.opts.Notice(e)
	}
}

func (c *converter) run(ctx context.Context) error {
	chunks := make(chan *readChunk, readChunks)
	free := make(chan *readChunk, readChunks)
	for range readChunks {
		free <- &readChunk{}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { c.readAhead(chunks, free, stop) })
	// The reader is the reading goroutine's until it is gone.
	defer wg.Wait()
	defer close(stop)
	for {
		var ch *readChunk
		select {
		case ch = <-chunks:
		case <-ctx.Done():
			return ctx.Err()
		}
		for i := range ch.items {
			if err := ctx.Err(); err != nil {
				return err
			}
			if done, err := c.next(&ch.items[i]); done || err != nil {
				return err
			}
		}
		free <- ch
	}
}

// next converts the message it, and flushes when enough is pending. done reports the end
// of the mbox.
func (c *converter) next(it *readItem) (done bool, err error) {
	c.offset, c.loose, c.looseFrom = it.end, it.loose, it.looseFrom
	for _, e := range it.notices {
		c.notice(e)
	}
	if it.m == nil {
		if it.err == io.EOF {
			c.progress()
			return true, nil
		}
		return true, fmt.Errorf("message %d: %w", c.opts.StartIndex+c.st.Messages+1, it.err)
	}
	if err := c.add(it); err != nil {
		return true, fmt.Errorf("message %d at offset %d: %w", c.opts.StartIndex+int64(it.m.Index)+1, c.opts.StartOffset+it.m.Offset, err)
	}
	if c.opts.Read != nil {
		c.opts.Read(1)
	}
	c.progress()
	every := c.opts.FlushEvery
	if every <= 0 {
		every = flushEveryMessages
	}
	if len(c.pending) >= every || c.pendingBytes >= flushEveryBytes {
		if err := c.durable(c.w.Flush); err != nil {
			return true, err
		}
		if c.opts.OnDurable != nil {
			c.opts.OnDurable(c.st)
		}
	}
	return false, nil
}

func (c *converter) progress() {
	if c.opts.Progress == nil {
		return
	}
	if c.offset > c.reported {
		c.opts.Progress(c.offset - c.reported)
		c.reported = c.offset
	}
}

// add converts one message. Only the first message of a file may carry the mailbox's
// X-IMAPbase (or UW's X-IMAP): Dovecot and c-client ignore it anywhere else.
func (c *converter) add(it *readItem) error {
	m := it.m
	if it.err != nil {
		return it.err
	}
	pos := c.opts.StartIndex + int64(m.Index)
	c.st.Messages++
	if m.Index == 0 && c.opts.StartOffset == 0 && m.Meta.IMAPBase != nil {
		c.w.SetUIDBase(m.Meta.IMAPBase.UIDValidity, m.Meta.IMAPBase.LastUID)
	}
	rec := MessageRecord{Index: pos, Offset: c.opts.StartOffset + m.Offset}
	if m.Pseudo {
		if !it.whole {
			if err := c.stream(it, func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }); err != nil {
				return err
			}
		}
		c.st.Skipped++
		rec.Skipped = true
		c.notice(Event{Kind: EventPseudoSkipped, Message: pos, Offset: rec.Offset, Detail: "UW-IMAP folder internal data message skipped (its UIDVALIDITY is kept)"})
		return c.queue(it, rec, nil)
	}
	flags, isNew := messageFlags(m.Meta)
	date, mtime := c.date(m, pos, rec.Offset)
	msg := &maildir.Message{
		Date:     date,
		MTime:    mtime,
		Flags:    flags,
		Keywords: m.Meta.Keywords,
		New:      isNew,
		UID:      m.Meta.UID,
		Position: pos,
	}
	var res maildir.Result
	var err error
	if it.whole {
		msg.Prepared = &it.content
		res, err = c.w.Add(msg)
	} else {
		err = c.stream(it, func(r io.Reader) error {
			msg.Content = r
			res, err = c.w.Add(msg)
			return err
		})
	}
	if err != nil {
		return err
	}
	rec.Name, rec.Sub, rec.UID, rec.Existed = res.Name, res.Sub, res.UID, res.Existed
	if !res.MTime.IsZero() && !res.Existed {
		asked := date
		if asked.IsZero() {
			asked = mtime
		}
		c.notice(Event{Kind: EventDateOutOfRange, Message: pos, Offset: rec.Offset,
			Detail: fmt.Sprintf("the received date %s cannot be a file time here; the file's mtime is %s, the nearest this file system holds",
				asked.UTC().Format(time.RFC3339), res.MTime.UTC().Format(time.RFC3339))})
	}
	if res.Existed {
		c.st.Existed++
	} else {
		c.st.Written++
	}
	return c.queue(it, rec, &res.SHA256)
}

// stream has use read the content of a message not read whole (it.rest), on this goroutine,
// which reads the mbox meanwhile: then it tells the reader's notices met, finishes the
// source hash, and lets the reading goroutine go on.
func (c *converter) stream(it *readItem, use func(io.Reader) error) error {
	err := use(it.rest())
	if err == nil {
		// The whole body, so that the source hash and the message's size are final.
		_, err = io.Copy(it.src, it.m.Body)
	}
	if err != nil {
		// The conversion stops: the reading goroutine is stopped too, without
		// reading through the rest of the message.
		return err
	}
	c.offset = c.r.Offset()
	notices := c.readNotices
	c.readNotices = nil
	it.src.Sum(it.sum[:0])
	close(it.streamed)
	for _, e := range notices {
		c.notice(e)
	}
	return nil
}

// pendingRecord is a MessageRecord waiting for its message to be durable, its hashes still
// in binary: the hex strings are made only for OnMessage.
type pendingRecord struct {
	rec    MessageRecord
	sum    [sha256.Size]byte
	stored [sha256.Size]byte
	hasSum bool // stored is set (not a skipped pseudo-message)
}

// queue holds rec until the next flush makes its message durable. stored is the hash of
// the file written, nil for a message not written.
func (c *converter) queue(it *readItem, rec MessageRecord, stored *[sha256.Size]byte) error {
	rec.Size = it.m.Size()
	p := pendingRecord{rec: rec, hasSum: stored != nil, sum: it.sum}
	if stored != nil {
		p.stored = *stored
	}
	c.pending = append(c.pending, p)
	c.pendingBytes += rec.Size
	c.pendingEnd = c.opts.StartOffset + c.offset
	return nil
}

// durable calls sync (the writer's Flush, or Commit at the end), then hands the pending
// records to OnMessage: their messages are on disk.
func (c *converter) durable(sync func() error) error {
	if err := sync(); err != nil {
		return err
	}
	c.st.UIDValidity, c.st.NextUID = c.w.UIDValidity(), c.w.NextUID()
	c.st.Loose, c.st.LooseFrom = c.loose, c.looseFrom
	for i := range c.pending {
		p := &c.pending[i]
		if c.opts.OnMessage != nil {
			rec := p.rec
			rec.SHA256 = hex.EncodeToString(p.sum[:])
			if p.hasSum {
				rec.StoredSHA256 = hex.EncodeToString(p.stored[:])
			}
			c.opts.OnMessage(rec)
		}
	}
	if len(c.pending) > 0 {
		c.st.EndOffset = c.pendingEnd
	}
	c.st.Bytes = c.st.EndOffset - c.opts.StartOffset
	clear(c.pending)
	c.pending, c.pendingBytes = c.pending[:0], 0
	return nil
}

// date picks the message's received date (messageDate) and reports a fallback.
func (c *converter) date(m *mbox.Message, pos, off int64) (date, mtime time.Time) {
	date, mtime, fallback := messageDate(m, c.srcMTime)
	c.dateNotice(fallback, pos, off)
	return date, mtime
}

// dateNotice reports the fallback messageDate took for the message at pos, if any.
func (c *converter) dateNotice(fallback string, pos, off int64) {
	switch fallback {
	case EventDateFromHeader:
		c.notice(Event{Kind: EventDateFromHeader, Message: pos, Offset: off, Detail: "no date on the From_ line; using the Date: header"})
	case EventDateFromMTime:
		c.notice(Event{Kind: EventDateFromMTime, Message: pos, Offset: off, Detail: "no date on the From_ line nor in a Date: header; using the mbox file's mtime"})
	}
}

// messageDate picks the message's received date: the From_ line's, else the Date: header's,
// else the mbox file's mtime; fallback names the notice kind of a fallback, "" for none. The
// first two are the message's own and come back as date, which names its file; the mtime
// comes back as mtime alone, with a zero date, because a delivery, a touch or a restore
// changes it between two runs, and a name made from it would not be recognised by the next
// run.
func messageDate(m *mbox.Message, srcMTime time.Time) (date, mtime time.Time, fallback string) {
	if !m.Date.IsZero() {
		return m.Date, time.Time{}, ""
	}
	if t, ok := mbox.DateHeader(m.Header); ok {
		return t, time.Time{}, EventDateFromHeader
	}
	return time.Time{}, srcMTime, EventDateFromMTime
}

// messageFlags maps an mbox message's Status, X-Status and keywords to Maildir flag letters, and
// tells whether the message belongs in new/: only a message no client has seen (no "O" in
// Status), with no flags and no keywords, does.
func messageFlags(meta mbox.Meta) (flags string, isNew bool) {
	var set [128]bool
	if strings.ContainsRune(meta.Status, 'R') {
		set['S'] = true
	}
	for _, x := range meta.XStatus {
		switch x {
		case 'A':
			set['R'] = true
		case 'F':
			set['F'] = true
		case 'T':
			set['D'] = true
		case 'D':
			set['T'] = true
		}
	}
	var b strings.Builder
	for _, l := range "DFPRST" {
		if set[l] {
			b.WriteRune(l)
		}
	}
	flags = b.String()
	isNew = flags == "" && len(meta.Keywords) == 0 && !strings.ContainsRune(meta.Status, 'O')
	return flags, isNew
}

// CheckMbox reports, without writing anything, whether src looks like an mbox: it reads up to
// the first message's header. Callers use it before they create a Maildir, so that a file
// that is not an mbox leaves no trace.
func CheckMbox(src io.ReaderAt, size int64) error {
	_, err := mbox.NewReader(src, size, mbox.Options{}).Next()
	if err == io.EOF {
		return nil
	}
	return err
}
