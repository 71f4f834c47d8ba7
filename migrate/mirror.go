package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
)

// The mirror pass. A source whose migrated part changed since the last pass (a client
// flagged or expunged through Dovecot, a POP3 client deleted, Dovecot wrote its X-UID and
// X-IMAPbase headers) is read whole again, and the Maildir is made to show what Dovecot
// shows of the source now: messages that are new are written, those gone are removed,
// flags and keywords change by renaming the file, and dovecot-uidlist is written anew
// with the source's UIDVALIDITY and UIDs.
//
// A message's identity is its stored bytes (the message as Dovecot shows it: without the
// mbox-internal Status, X-Status, X-Keywords, X-UID, X-IMAP, X-IMAPbase and Content-Length
// headers, which Dovecot rewrites whenever flags change) and its own date (From_ line, else
// Date:), both carried by the name of its file (maildir.Own). Neither changes when Dovecot
// or a client rewrites the mbox, and a message's place does change, as earlier ones are
// expunged. Messages with the same identity (the same text delivered twice in one second)
// are told apart by their order, which rewrites keep, and by X-UID where Dovecot wrote one:
// the records of the last pass (root's, one line per message in source order: its
// sequence number, UID and file) are matched with the source in order, so that each source
// message has a file of its own and no file serves two.
//
// A Maildir that Dovecot or a delivery agent used (its index files, a file maildirmig did
// not write) belongs to its user: the pass then only adds what newly arrived in the source,
// changes and removes nothing, and says so. Only files this source's records name, or that
// a pass of this source interrupted before its records were kept, are ever removed.

// priorMsg is one message of the source's last pass, from root's records.
type priorMsg struct {
	seq  int64
	uid  uint32
	base string // its file's base name
	key  maildir.OwnKey
	used bool
}

// parsePrior reads root's records of the last pass: "<seq> <uid> <base>" per message in
// source order, or "<seq> <uid> <base> <head> <sum> <size>" where the file's name does not
// carry the message's identity (a rollback wrote the message from a file Dovecot named, or
// under another date): the record says it. A record of an earlier version has no base: its
// file is the one of ours with that sequence number (own, by seq).
func parsePrior(text string, bySeq map[int64][]string, own map[string]*ownFile, foreign map[string]bool) ([]priorMsg, error) {
	var out []priorMsg
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		f := strings.Split(line, " ")
		if len(f) < 2 || len(f) > 3 && len(f) != 6 {
			return nil, fmt.Errorf("migrate: records: bad line %q", line)
		}
		seq, err1 := strconv.ParseInt(f[0], 10, 64)
		uid, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("migrate: records: bad line %q", line)
		}
		p := priorMsg{seq: seq, uid: uint32(uid)}
		if len(f) == 6 {
			size, err := strconv.ParseInt(f[5], 10, 64)
			base, ok := unescapeRecordName(f[2])
			if err != nil || !ok {
				return nil, fmt.Errorf("migrate: records: bad line %q", line)
			}
			p.base, p.key = base, maildir.OwnKey{Head: f[3], Sum: f[4], Size: size}
			out = append(out, p)
			continue
		}
		if len(f) == 3 {
			p.base = f[2]
		} else {
			// Of the files with this sequence number, the one the uidlist lists under the
			// recorded UID, or the only one unless it is the other source's.
			for _, b := range bySeq[seq] {
				if o := own[b]; o != nil && o.ours && (o.uid == p.uid || len(bySeq[seq]) == 1 && !foreign[b]) {
					p.base = b
					break
				}
			}
			if p.base == "" {
				// Its file is gone: nothing can be matched with it.
				continue
			}
		}
		o, ok := maildir.ParseOwn(p.base)
		if !ok || o.Seq != seq {
			return nil, fmt.Errorf("migrate: records: %q is not a file name maildirmig gives to message %d", p.base, seq)
		}
		p.key = o.Key()
		out = append(out, p)
	}
	return out, nil
}

// ownFile is a file the Maildir holds: one of ours, or (ours false) one Dovecot or a delivery
// agent named, which only a record of a rollback names.
type ownFile struct {
	sub, name string
	ours      bool
	own       maildir.Own
	uid       uint32 // in dovecot-uidlist, 0 when not listed
	claimed   bool   // a source message has it
	msg       int64  // verify: the number of the source message that has it
}

// matcher pairs the messages of the source, in order, with those of the last pass.
type matcher struct {
	prior  []priorMsg
	byKey  map[maildir.OwnKey][]int // indices into prior, ascending
	byBody map[[2]string][]int      // by sum and size, for messages without a date of their own; made when first needed
	last   int                      // the last prior matched in order
	// Cursors of the identities that more than one prior message shares, made when first
	// matched: the user decides how many share one (the same message many times), and a
	// match must cost a few steps whatever their number.
	curKey  map[maildir.OwnKey]*cursor
	curBody map[[2]string]*cursor
}

// cursor keeps the place of the matches among the candidates of one identity. next and low
// only move forward, past candidates matched already: no unused candidate lies in
// cands[from:next] for the last from asked, nor in cands[:low].
type cursor struct {
	next, low int
	byUID     map[uint32][]int // positions in cands by UID, ascending
}

func newMatcher(prior []priorMsg) *matcher {
	m := &matcher{prior: prior, byKey: map[maildir.OwnKey][]int{}, curKey: map[maildir.OwnKey]*cursor{}, curBody: map[[2]string]*cursor{}, last: -1}
	for i, p := range prior {
		m.byKey[p.key] = append(m.byKey[p.key], i)
	}
	return m
}

func bodyKey(k maildir.OwnKey) [2]string { return [2]string{k.Sum, strconv.FormatInt(k.Size, 10)} }

// match returns the prior message the source message of key (and X-UID xuid, when its
// UIDs are comparable) is, or -1 for a message the last pass did not have. Among prior
// messages of the same identity it takes the one with that UID, else the first after the
// last one matched (the source keeps its order), else the first unused one. A message
// without a date of its own (undated) also matches a file an earlier version named by
// the source's mtime.
func (m *matcher) match(key maildir.OwnKey, xuid uint32, undated bool) int {
	cands := m.byKey[key]
	var c *cursor
	if len(cands) == 0 && undated {
		if m.byBody == nil {
			m.byBody = map[[2]string][]int{}
			for i, p := range m.prior {
				m.byBody[bodyKey(p.key)] = append(m.byBody[bodyKey(p.key)], i)
			}
		}
		body := bodyKey(key)
		if cands = m.byBody[body]; len(cands) > 1 {
			if c = m.curBody[body]; c == nil {
				c = &cursor{}
				m.curBody[body] = c
			}
		}
	} else if len(cands) > 1 {
		if c = m.curKey[key]; c == nil {
			c = &cursor{}
			m.curKey[key] = c
		}
	}
	pick := -1
	switch {
	case len(cands) == 1:
		if !m.prior[cands[0]].used {
			pick = cands[0]
		}
	case len(cands) > 1:
		pick = m.pick(cands, c, xuid)
	}
	if pick >= 0 {
		m.prior[pick].used = true
		m.last = max(m.last, pick)
	}
	return pick
}

// pick chooses among the candidates cands of one identity, whose cursor is c.
func (m *matcher) pick(cands []int, c *cursor, xuid uint32) int {
	from := sort.SearchInts(cands, m.last+1)
	if xuid != 0 {
		if c.byUID == nil {
			c.byUID = map[uint32][]int{}
			for at, i := range cands {
				c.byUID[m.prior[i].uid] = append(c.byUID[m.prior[i].uid], at)
			}
		}
		for _, at := range c.byUID[xuid] {
			if at >= from && !m.prior[cands[at]].used {
				return cands[at]
			}
		}
	}
	c.next = max(c.next, from)
	for c.next < len(cands) && m.prior[cands[c.next]].used {
		c.next++
	}
	if c.next < len(cands) {
		return cands[c.next]
	}
	for c.low < len(cands) && m.prior[cands[c.low]].used {
		c.low++
	}
	if c.low < len(cands) {
		return cands[c.low]
	}
	return -1
}

// mirrorRecord is what the pass keeps of one source message, for root's records.
type mirrorRecord struct {
	rec  MessageRecord
	add  bool // written by this pass (its UID comes from the writer in a live Maildir)
	base string
}

// mirrorer is one mirror pass of one source into one Maildir, in the worker.
type mirrorer struct {
	req      *workerRequest
	d        *maildir.Dir
	emit     func(workerMsg)
	folder   string
	src      io.ReaderAt
	size     int64
	srcMTime time.Time
	loc      *time.Location

	live     string // why the Maildir belongs to its user now; "" when it does not
	own      map[string]*ownFile
	bySeq    map[int64][]string
	foreign  map[string]bool
	recorded map[string]bool             // base names the records give
	leftover map[maildir.OwnKey][]string // files of ours an interrupted pass left unrecorded
	m        *matcher
	w        *maildir.Writer // nil in a dry run
	kw       maildir.Keywords
	nextSeq  int64

	// UIDs, while the Maildir is not live.
	validity, next, prevUID uint32
	srcValidity, srcLast    uint32
	sameValidity, keepX     bool
	started                 bool

	records []mirrorRecord
	stats   Stats
}

// mirror runs one mirror pass of src[0:size) into d; parentLive, when not empty, says the
// Maildir that d is a folder of is live. In a dry run nothing is written, and the stats
// count what a pass would do.
func mirror(ctx context.Context, req *workerRequest, src io.ReaderAt, size int64, srcMTime time.Time, d *maildir.Dir, folder, parentLive string, emit func(workerMsg)) (Stats, error) {
	loc, err := requestLocation(req)
	if err != nil {
		return Stats{}, err
	}
	// What it reads of the source, to compare and to write, is the work root's watchdog sees.
	src = newWorkMeter(emit).readerAt(src)
	mr := &mirrorer{req: req, d: d, emit: emit, folder: folder, src: src, size: size, srcMTime: srcMTime, loc: loc,
		own: map[string]*ownFile{}, bySeq: map[int64][]string{}, recorded: map[string]bool{},
		leftover: map[maildir.OwnKey][]string{}, nextSeq: req.NextSeq, live: parentLive}
	if err := mr.look(); err != nil {
		return Stats{}, err
	}
	mr.foreign = req.Foreign.in(mr.bySeq)
	prior, err := parsePrior(req.Prior, mr.bySeq, mr.own, mr.foreign)
	if err != nil {
		return Stats{}, err
	}
	if req.Prior == "" {
		// No records (lost, or none yet): the files of ours stand in for them, matched by
		// identity.
		prior = unrecorded(mr.own, req.StartIndex, mr.foreign)
	}
	mr.m = newMatcher(prior)
	for _, p := range prior {
		mr.recorded[p.base] = true
	}
	for base, f := range mr.own {
		if !f.ours {
			continue
		}
		// A new message never gets a sequence number a file has, whoever wrote it.
		mr.nextSeq = max(mr.nextSeq, f.own.Seq+1)
		if req.Interrupted && f.own.Seq >= req.NextSeq && !mr.recorded[base] && !mr.foreign[base] {
			k := f.own.Key()
			mr.leftover[k] = append(mr.leftover[k], base)
		}
	}
	for _, bases := range mr.leftover {
		sort.Slice(bases, func(i, j int) bool { return mr.own[bases[i]].own.Seq < mr.own[bases[j]].own.Seq })
	}
	if req.DryRun {
		if mr.kw, err = d.ReadKeywords(); err != nil {
			return Stats{}, err
		}
	} else {
		opts := maildir.Options{Fsync: maildir.Fsync(req.Fsync), Host: req.Host, BatchFiles: req.BatchFiles, BatchBytes: req.BatchBytes,
			Unlisted: mr.live == ""}
		opts.Recovered = func(detail string) {
			emit(workerMsg{T: msgEvent, Folder: folder, Event: &Event{Kind: EventRecovered, Message: -1, Detail: detail}})
		}
		if mr.w, err = maildir.NewWriter(d, opts); err != nil {
			return Stats{}, err
		}
		defer mr.w.Close()
	}
	err = mr.scan(ctx)
	if err == nil {
		err = mr.finish()
	}
	if err != nil && mr.w != nil {
		if aerr := mr.w.Abort(); aerr != nil {
			err = errors.Join(err, fmt.Errorf("%w: %w", errAbortFailed, aerr))
		}
	}
	mr.stats.EndOffset, mr.stats.Bytes, mr.stats.Live, mr.stats.Seq, mr.stats.Mirror = size, size, mr.live, mr.nextSeq, true
	if err != nil {
		return mr.stats, err
	}
	if mr.live != "" && (mr.stats.Changed > 0 || mr.stats.Removed > 0 || mr.stats.Deleted > 0) {
		mr.notice(Event{Kind: EventMaildirLive, Message: -1,
			Detail: fmt.Sprintf("%s is in use (%s): only new mail was added; %d flag changes and %d removals in the source were not applied, and %d messages deleted in the Maildir stay deleted",
				d.Path(), mr.live, mr.stats.Changed, mr.stats.Removed, mr.stats.Deleted)})
	}
	for i := range mr.records {
		emit(workerMsg{T: msgRecord, Record: &mr.records[i].rec, Folder: folder})
	}
	return mr.stats, nil
}

// EventMaildirLive is the notice that a pass only added to a Maildir Dovecot or a delivery
// agent uses, and what in the source it did not apply.
const EventMaildirLive = "maildir-live"

func requestLocation(req *workerRequest) (*time.Location, error) {
	if req.Location == "" || req.Location == "Local" {
		return time.Local, nil
	}
	l, err := time.LoadLocation(req.Location)
	if err != nil {
		return nil, fmt.Errorf("migrate: time zone: %w", err)
	}
	return l, nil
}

// look lists what the Maildir holds: the files of ours with their UIDs, and whether
// Dovecot or anyone else uses it.
func (mr *mirrorer) look() error {
	entries, err := mr.d.Messages()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name == "" || e.Name[0] == '.' {
			continue
		}
		base := baseName(e.Name)
		o, ok := maildir.ParseOwn(e.Name)
		if !ok {
			if mr.live == "" {
				mr.live = fmt.Sprintf("it holds %s/%s, which maildirmig did not write", e.Sub, e.Name)
			}
			mr.own[base] = &ownFile{sub: e.Sub, name: e.Name}
			continue
		}
		mr.own[base] = &ownFile{sub: e.Sub, name: e.Name, own: o, ours: true}
		mr.bySeq[o.Seq] = append(mr.bySeq[o.Seq], base)
	}
	if marker, err := maildir.LiveMarker(mr.d); err != nil {
		return err
	} else if marker != "" && mr.live == "" {
		mr.live = "Dovecot keeps " + marker + " there"
	}
	h, ok, err := mr.d.ScanUIDList(func(uid uint32, base string) {
		if o := mr.own[base]; o != nil {
			o.uid = uid
			if !o.ours && mr.live == "" {
				mr.live = "its dovecot-uidlist lists " + base + ", which maildirmig did not write"
			}
		} else if _, ours := maildir.ParseOwn(base); !ours && mr.live == "" {
			mr.live = "its dovecot-uidlist lists " + base + ", which maildirmig did not write"
		}
	})
	if err != nil {
		return err
	}
	if ok {
		mr.validity, mr.next = h.Validity, h.Next
	}
	return nil
}

// scan reads the source and settles each message: kept (and renamed for its flags), or
// written.
func (mr *mirrorer) scan(ctx context.Context) error {
	r := mbox.NewReader(mr.src, mr.size, mbox.Options{Unescape: mbox.Unescape(mr.req.Unescape), Location: mr.loc})
	h := sha256.New()
	var reported, read int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("message %d: %w", mr.stats.Messages+1, err)
		}
		mr.stats.Messages++
		if !mr.started {
			mr.startUIDs(m.Meta.IMAPBase)
		}
		header := m.Header
		if !mr.req.KeepHeaders {
			header = mbox.StripMeta(header)
		}
		h.Reset()
		h.Write(header)
		n, err := io.Copy(h, m.Body)
		if err != nil {
			return fmt.Errorf("message %d at offset %d: %w", m.Index+1, m.Offset, err)
		}
		if m.Pseudo {
			mr.stats.Skipped++
			continue
		}
		var sum [32]byte
		h.Sum(sum[:0])
		if err := mr.settle(r, m, int64(len(header))+n, sum); err != nil {
			return fmt.Errorf("message %d at offset %d: %w", m.Index+1, m.Offset, err)
		}
		// As convertChecked reports: per MiB or progressMessages messages read.
		if read++; r.Offset()-reported >= 1<<20 || read >= progressMessages {
			off := r.Offset()
			mr.emit(workerMsg{T: msgProgress, N: off - reported, Messages: read, Folder: mr.folder})
			reported, read = off, 0
		}
	}
	if off := r.Offset(); off > reported || read > 0 {
		mr.emit(workerMsg{T: msgProgress, N: off - reported, Messages: read, Folder: mr.folder})
	}
	mr.stats.Loose, mr.stats.LooseFrom = r.Loose(), r.LooseFrom()
	return nil
}

// startUIDs settles the UIDVALIDITY and the first next UID of the pass from the source's
// X-IMAPbase (or UW's X-IMAP), if it has one, and the Maildir's dovecot-uidlist.
func (mr *mirrorer) startUIDs(base *mbox.IMAPBase) {
	mr.started = true
	old, oldNext := mr.validity, mr.next
	if base != nil && base.UIDValidity != 0 {
		mr.srcValidity, mr.srcLast = base.UIDValidity, base.LastUID
		mr.validity, mr.keepX = base.UIDValidity, true
	}
	if mr.live != "" {
		// A live Maildir keeps its UIDVALIDITY; the writer gives new mail its UIDs.
		if mr.w != nil && mr.keepX {
			mr.w.SetUIDBase(mr.srcValidity, mr.srcLast)
		}
		return
	}
	if mr.validity == 0 {
		mr.validity = uint32(time.Now().Unix())
	}
	mr.sameValidity = old != 0 && old == mr.validity
	mr.next = 1
	if mr.sameValidity {
		mr.next = max(oldNext, 1)
	}
	if mr.keepX && mr.srcLast < math.MaxUint32 {
		mr.next = max(mr.next, mr.srcLast+1)
	}
}

// settle decides what becomes of the source message m (its stored bytes size and sum).
func (mr *mirrorer) settle(r *mbox.Reader, m *mbox.Message, size int64, sum [32]byte) error {
	date, _, _ := messageDate(m, mr.srcMTime)
	var key maildir.OwnKey
	if date.IsZero() {
		key = maildir.OwnKeyOf(0, 0, sum, size)
	} else {
		key = maildir.OwnKeyOf(date.Unix(), int64(date.Nanosecond()/1000), sum, size)
	}
	xuid := m.Meta.UID
	if !mr.keepX {
		xuid = 0
	}
	flags, isNew := messageFlags(m.Meta)
	want := &maildir.Message{Flags: flags, Keywords: m.Meta.Keywords, New: isNew}
	rec := MessageRecord{Offset: m.Offset, Size: m.Size()}
	if p := mr.m.match(key, xuid, date.IsZero()); p >= 0 {
		pm := &mr.m.prior[p]
		rec.Index = pm.seq
		if _, ours := maildir.ParseOwn(pm.base); !ours {
			// A file Dovecot named (a rollback recorded it): the record carries its
			// identity on, as the name cannot.
			rec.Key = recordKey(pm.key)
		}
		if f := mr.own[pm.base]; f != nil && !f.claimed {
			f.claimed = true
			return mr.keep(f, pm.base, want, xuid, rec)
		}
		if mr.live != "" {
			// Deleted in the Maildir by its user: it stays deleted, and stays recorded so
			// that the next pass knows it too.
			mr.stats.Deleted++
			rec.UID, rec.Name = pm.uid, pm.base
			mr.records = append(mr.records, mirrorRecord{rec: rec, base: pm.base})
			return nil
		}
		// Gone from a Maildir nobody else uses: written again, under its old name.
		return mr.add(r, m, pm.seq, want, date, xuid, sum, rec)
	}
	// A file a pass of this source wrote before it was interrupted, and did not record.
	if bases := mr.leftover[key]; len(bases) > 0 {
		base := bases[0]
		mr.leftover[key] = bases[1:]
		f := mr.own[base]
		f.claimed = true
		rec.Index = f.own.Seq
		return mr.keep(f, base, want, xuid, rec)
	}
	seq := mr.nextSeq
	mr.nextSeq++
	return mr.add(r, m, seq, want, date, xuid, sum, rec)
}

// recordKey is the identity k as a record carries it: "<head> <sum> <size>".
func recordKey(k maildir.OwnKey) string {
	return k.Head + " " + k.Sum + " " + strconv.FormatInt(k.Size, 10)
}

// keep keeps the file f (base name base) for a source message, renamed for the flags want
// asks when the Maildir is not live, and gives it its UID.
func (mr *mirrorer) keep(f *ownFile, base string, want *maildir.Message, xuid uint32, rec MessageRecord) error {
	rec.Name, rec.Sub, rec.Existed = f.name, f.sub, true
	mr.stats.Existed++
	sub, name, changed, err := mr.wants(f, base, want)
	if err != nil {
		return err
	}
	if changed {
		mr.stats.Changed++
	}
	if mr.live != "" {
		rec.UID = f.uid
		mr.records = append(mr.records, mirrorRecord{rec: rec, base: base})
		return nil
	}
	if changed && mr.w != nil {
		if sub, name, _, err = mr.w.Restate(base, want); err != nil {
			return err
		}
		mr.change(Change{Kind: ChangeFlags, Name: f.sub + "/" + f.name, To: sub + "/" + name, Why: "its flags or keywords changed in the source"})
		rec.Name, rec.Sub = name, sub
	}
	wanted := xuid
	if wanted == 0 && mr.sameValidity {
		wanted = f.uid
	}
	rec.UID = mr.assign(wanted, xuid != 0)
	mr.records = append(mr.records, mirrorRecord{rec: rec, base: base})
	return nil
}

// wants returns where the file f belongs for the flags want asks, and whether that is not
// where it is. A dry run reads the keyword letters from dovecot-keywords; a keyword it
// lacks is a change.
func (mr *mirrorer) wants(f *ownFile, base string, want *maildir.Message) (sub, name string, changed bool, err error) {
	if mr.w != nil {
		sub, name, err = mr.w.Wants(base, want)
		return sub, name, err == nil && (sub != f.sub || name != f.name), err
	}
	sub, name, missing, err := mr.kw.NameFor(base, want)
	return sub, name, err == nil && (missing || sub != f.sub || name != f.name), err
}

// assign gives the next message of the source its UID: wanted (its X-UID, or the UID its
// file has) when that keeps UIDs ascending, else the next free one.
func (mr *mirrorer) assign(wanted uint32, fromSource bool) uint32 {
	var uid uint32
	if wanted != 0 && wanted > mr.prevUID && wanted < math.MaxUint32 {
		uid = wanted
	} else {
		uid = mr.next
		if fromSource {
			mr.stats.Renumbered = true
		}
	}
	mr.prevUID = uid
	mr.next = max(mr.next, uid+1)
	return uid
}

// add writes the source message m as a new file of sequence number seq.
func (mr *mirrorer) add(r *mbox.Reader, m *mbox.Message, seq int64, want *maildir.Message, date time.Time, xuid uint32, sum [32]byte, rec MessageRecord) error {
	rec.Index = seq
	mr.stats.Written++
	if mr.w == nil {
		mr.records = append(mr.records, mirrorRecord{rec: rec, add: true})
		return nil
	}
	again, err := mr.reread(r, m)
	if err != nil {
		return err
	}
	_, mtime, fallback := messageDate(again, mr.srcMTime)
	switch fallback {
	case EventDateFromHeader:
		mr.notice(Event{Kind: fallback, Message: seq, Offset: m.Offset, Detail: "no date on the From_ line; using the Date: header"})
	case EventDateFromMTime:
		mr.notice(Event{Kind: fallback, Message: seq, Offset: m.Offset, Detail: "no date on the From_ line nor in a Date: header; using the mbox file's mtime"})
	}
	header := again.Header
	if !mr.req.KeepHeaders {
		header = mbox.StripMeta(header)
	}
	msg := *want
	msg.Date, msg.MTime, msg.Position = date, mtime, seq
	msg.Content = io.MultiReader(bytes.NewReader(header), again.Body)
	if mr.live != "" {
		msg.UID = m.Meta.UID
	}
	res, err := mr.w.Add(&msg)
	if err != nil {
		return err
	}
	if res.SHA256 != sum {
		return fmt.Errorf("migrate: the source changed while it was read (offset %d)", m.Offset)
	}
	rec.Name, rec.Sub, rec.Existed = res.Name, res.Sub, res.Existed
	base := baseName(res.Name)
	if f := mr.own[base]; f != nil {
		f.claimed = true
	}
	if mr.live == "" {
		rec.UID = mr.assign(xuid, xuid != 0)
	}
	mr.records = append(mr.records, mirrorRecord{rec: rec, add: true, base: base})
	return nil
}

// reread reads the message m again from the source, alone: a reader over exactly its
// bytes splits and unescapes it as the whole file's reader did.
func (mr *mirrorer) reread(r *mbox.Reader, m *mbox.Message) (*mbox.Message, error) {
	n := int64(len(m.FromLine)) + m.Size()
	sr := io.NewSectionReader(mr.src, m.Offset, n)
	one := mbox.NewReader(sr, n, mbox.Options{Unescape: mbox.Unescape(mr.req.Unescape), Location: mr.loc, Loose: r.Loose(), LooseFrom: r.LooseFrom()})
	again, err := one.Next()
	if err != nil {
		return nil, fmt.Errorf("migrate: reading the message again: %w", err)
	}
	return again, nil
}

func (mr *mirrorer) notice(e Event) {
	mr.emit(workerMsg{T: msgEvent, Folder: mr.folder, Event: &e})
}

// Change kinds: what a mirror pass did to a file of the Maildir.
const (
	ChangeFlags   = "flags"   // renamed for the flags and keywords the source gives it now
	ChangeRemoved = "removed" // removed: its source message is gone
)

// Change is one file a mirror pass renamed or removed.
type Change struct {
	Kind string `json:"kind"`
	Name string `json:"name"`         // sub/name before
	To   string `json:"to,omitempty"` // sub/name after a rename
	Why  string `json:"why"`
}

func (mr *mirrorer) change(c Change) {
	mr.emit(workerMsg{T: msgChange, Folder: mr.folder, Change: &c})
}

// finish removes what the source no longer has, makes everything durable and lists every
// message in dovecot-uidlist in source order, when the Maildir is not live.
func (mr *mirrorer) finish() error {
	for i := range mr.m.prior {
		p := &mr.m.prior[i]
		if f := mr.own[p.base]; !p.used && f != nil && f.ours && !f.claimed {
			if err := mr.remove(f, p.base, "its message is gone from the source"); err != nil {
				return err
			}
		}
	}
	for _, bases := range mr.leftover {
		for _, base := range bases {
			if f := mr.own[base]; !f.claimed {
				if err := mr.remove(f, base, "a pass that was interrupted wrote it for a message the source no longer has"); err != nil {
					return err
				}
			}
		}
	}
	if !mr.started {
		mr.startUIDs(nil)
	}
	if mr.w == nil {
		mr.stats.UIDValidity, mr.stats.NextUID = mr.validity, mr.next
		return nil
	}
	if err := mr.w.Commit(); err != nil {
		return err
	}
	if mr.live != "" {
		// The writer listed what it added, as Dovecot numbers it.
		for i := range mr.records {
			if rec := &mr.records[i]; rec.add {
				if _, _, uid, ok := mr.w.Has(rec.base); ok {
					rec.rec.UID = uid
				}
			}
		}
		mr.stats.UIDValidity, mr.stats.NextUID = mr.w.UIDValidity(), mr.w.NextUID()
		return nil
	}
	if err := mr.w.SyncDirs(); err != nil {
		return err
	}
	entries := make([]maildir.UIDEntry, 0, len(mr.records))
	for _, rec := range mr.records {
		entries = append(entries, maildir.UIDEntry{UID: rec.rec.UID, Base: rec.base})
	}
	if err := mr.w.ReplaceUIDList(mr.validity, mr.next, entries); err != nil {
		return err
	}
	mr.stats.UIDValidity, mr.stats.NextUID = mr.validity, mr.next
	return nil
}

// remove takes the file f away; in a live Maildir it only counts what was not done.
func (mr *mirrorer) remove(f *ownFile, base, why string) error {
	mr.stats.Removed++
	if mr.live != "" || mr.w == nil {
		return nil
	}
	if err := mr.w.Remove(base); err != nil {
		return err
	}
	mr.change(Change{Kind: ChangeRemoved, Name: f.sub + "/" + f.name, Why: why})
	return nil
}
