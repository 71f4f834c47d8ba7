package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/fault"
	"github.com/maildirmig/maildirmig/internal/lock"
	"github.com/maildirmig/maildirmig/internal/safefs"
)

// dovecot-uidlist upkeep: the Writer gives each message it delivers the UID
// Dovecot will show (the mbox's own X-UID while UIDs stay ascending under the
// kept UIDVALIDITY, else the next free one) and lists it in dovecot-uidlist
// once the message is visible, appending in place as Dovecot does or
// rewriting the file when its header must change, always under Dovecot's
// dotlock (ctllock.go). A uidlist someone else changed since the Writer read
// it is read again: their UIDs stand, ours move above them (Renumbered).
// dovecot-keywords is kept the same way.

// spillEvery is how many uidlist lines Add keeps in memory, in the modes
// without batches, before it appends them to dovecot-uidlist.
const spillEvery = 512

// SetUIDBase tells the writer the mbox's UIDVALIDITY and LAST USED UID
// (X-IMAPbase second field). Call it before the first Add; without it a fresh
// UIDVALIDITY (time.Now().Unix()) and UIDs from 1 are used (unless the Maildir
// already has a uidlist, whose UIDVALIDITY is kept). A zero uidValidity is no
// base at all.
func (w *Writer) SetUIDBase(uidValidity, lastUID uint32) {
	if uidValidity == 0 {
		return
	}
	w.haveBase, w.baseValidity = true, uidValidity
	if w.pubStat == nil && w.ul.validity != uidValidity {
		w.ul.validity = uidValidity
		w.ulDirty = true
	}
	if w.ul.validity == uidValidity && lastUID < math.MaxUint32 && w.ul.next <= lastUID {
		w.ul.next = lastUID + 1
		w.ulDirty = true
	}
}

// Renumbered reports whether some message could not keep its mbox UID (clients
// will re-download it).
func (w *Writer) Renumbered() bool { return w.renumbered }

// UIDValidity reports the UIDVALIDITY that Commit writes.
func (w *Writer) UIDValidity() uint32 { return w.ul.validity }

// NextUID reports the next UID that Commit writes.
func (w *Writer) NextUID() uint32 { return w.ul.next }

// DroppedKeywords reports keyword names that did not fit in the 26 letters, or
// that cannot be stored in dovecot-keywords (empty, or containing spaces or
// control characters).
func (w *Writer) DroppedKeywords() []string { return w.dropped }

// assignUID gives the next message its UID: the wanted mbox UID when it keeps
// UIDs ascending in mbox order and was never given before under this
// UIDVALIDITY, else the next free one.
func (w *Writer) assignUID(wanted uint32) (uint32, error) {
	keepable := w.haveBase && w.baseValidity == w.ul.validity
	var uid uint32
	if keepable && wanted != 0 && wanted > w.used && wanted > w.prev && wanted < math.MaxUint32 {
		uid = wanted
		if w.ul.next <= uid {
			w.ul.next = uid + 1
		}
	} else {
		if w.ul.next == math.MaxUint32 {
			return 0, fmt.Errorf("maildir: %s: no UIDs left under UIDVALIDITY %d (the source's UIDs reach %d; Dovecot, opening such a mailbox, renumbers every message under a new UIDVALIDITY, which maildirmig does not do)", w.d.path, w.ul.validity, math.MaxUint32-1)
		}
		uid = w.ul.next
		w.ul.next++
		if wanted != 0 && w.haveBase {
			w.renumbered = true
		}
	}
	if uid > w.used {
		w.used = uid
	}
	w.prev = uid
	w.ulDirty = true
	return uid, nil
}

func (w *Writer) keywordIndex(name string) (int, bool) {
	free := -1
	for i, k := range w.kw {
		if k == name && k != "" {
			return i, true
		}
		if k == "" && free < 0 {
			free = i
		}
	}
	valid := name != ""
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] == 0x7f {
			valid = false
		}
	}
	if !valid || free < 0 {
		for _, d := range w.dropped {
			if d == name {
				return 0, false
			}
		}
		w.dropped = append(w.dropped, name)
		return 0, false
	}
	w.kw[free] = name
	w.kwDirty = true
	return free, true
}

// list gives base its line in the uidlist. batch is the number of the batch
// whose file it is, listed once that batch is moved in; 0 for a file in cur/
// or new/ already, or about to be moved there.
func (w *Writer) list(uid uint32, base string, batch uint64) {
	w.tail = append(w.tail, uidLine{uid: uid, text: strconv.FormatUint(uint64(uid), 10) + " :" + base, base: base, batch: batch})
}

// maybePublish lists the tail in dovecot-uidlist once it is long and no
// batch is pending, the only time every line of it is a durable file's.
func (w *Writer) maybePublish() error {
	if len(w.tail) < spillEvery || len(w.pending) > 0 || w.job != nil {
		return nil
	}
	return w.publish(nil, false)
}

// publish lists the tail in dovecot-uidlist, up to the first line of a file
// still in tmp/, and with header rewrites the
// file when its header says a lower next UID than ul.next, all under
// Dovecot's lock (lk, or taken here when lk is nil).
//
// Lines are appended in place, as Dovecot appends, when the file is a
// version 3 file ending in a newline; it is rewritten when it is missing,
// of version 1, ends in a line cut short, or needs a new header. When the
// file is not as this Writer left it, it is read first: a line of ours
// that someone else listed meanwhile keeps their UID, and when someone else
// gave UIDs meanwhile the tail's UIDs move above theirs (Renumbered). A file
// of another UIDVALIDITY is an error.
func (w *Writer) publish(lk *ctlLock, header bool) error {
	if w.listable() == 0 && !(header && w.ulDirty && w.ul.next > w.pubHead) {
		return nil
	}
	if lk == nil {
		var err error
		if lk, err = w.lockControl(uidlistName); err != nil {
			return err
		}
		defer lk.drop()
	}
	err := w.publishLocked(lk, header)
	if !errors.Is(err, lock.ErrLost) {
		return err
	}
	// Someone took the lock over as stale while this Writer held it (a
	// stopped process, slow storage), and may have changed the file: it is
	// read again under a lock of our own.
	again, err := w.lockControl(uidlistName)
	if err != nil {
		return err
	}
	defer again.drop()
	w.unpin()
	return w.publishLocked(again, header)
}

// publishLocked is publish under lk, which it checks is still ours before
// it reads the file and before it changes it (lock.ErrLost when not).
func (w *Writer) publishLocked(lk *ctlLock, header bool) error {
	needHead := header && w.ulDirty && w.ul.next > w.pubHead
	if err := lk.held(); err != nil {
		return err
	}
	display := w.d.path + "/" + uidlistName
	old, st, err := openControl(w.d.fd, uidlistName, display)
	if err != nil {
		return err
	}
	if old != nil {
		defer func() {
			if old != w.pubFile {
				old.Close()
			}
		}()
	}
	cur := &uidlist{version: w.ul.version, validity: w.ul.validity, next: w.pubNext, headNext: w.pubHead, last: w.pubLast, guid: w.ul.guid, extra: w.ul.extra}
	rewrite := old == nil || needHead
	if old != nil && (w.pubFile == nil || !w.unchanged(st)) {
		if cur, err = w.rescan(old, display); err != nil {
			return err
		}
		if cur.validity != w.ul.validity {
			return fmt.Errorf("maildir: %s: UIDVALIDITY is %d now, not the %d this migration gives UIDs under (did Dovecot make a new one?)", display, cur.validity, w.ul.validity)
		}
		w.renumber(cur)
		rewrite = rewrite || header && w.ulDirty && w.ul.next > cur.headNext
	}
	if old != nil && st.Size > 0 {
		// A line cut short (a write that hit the quota, a crash) may be
		// there even in the file this Writer read: appending after it would
		// glue our first line to it. Dovecot skips it, and so does a rewrite.
		var end [1]byte
		if _, err := old.ReadAt(end[:], st.Size-1); err != nil || end[0] != '\n' {
			rewrite = true
		}
	}
	rewrite = rewrite || cur.version != '3'
	// Renumbered above with the rest of the tail, so that the lines still
	// waiting stay above them.
	lines := w.tail[:w.listable()]
	last := cur.last
	if n := len(lines); n > 0 {
		last = lines[n-1].uid
	}
	next := max(cur.next, last+1)
	head := cur.headNext
	if rewrite {
		head = max(w.ul.next, cur.next)
		next = max(next, head)
		if err := w.rewriteUIDList(lk, cur, head, old, lines); err != nil {
			return err
		}
		// Under the lock the file is still the one just renamed in.
		f, fst, err := openControl(w.d.fd, uidlistName, display)
		if err != nil {
			return err
		}
		if f == nil {
			return fmt.Errorf("maildir: %s: gone after it was written", display)
		}
		w.pin(f)
		st = fst
	} else {
		if err := lk.held(); err != nil {
			return err
		}
		if st, err = w.appendUIDList(st, lines); err != nil {
			return err
		}
		w.pin(old)
	}
	w.pubStat, w.pubNext, w.pubLast, w.pubHead = st, next, last, head
	if rewrite {
		w.ul.version = '3'
	}
	w.ulDirty = w.ul.next > head
	k := copy(w.tail, w.tail[len(lines):])
	clear(w.tail[k:])
	w.tail = w.tail[:k]
	return nil
}

// listable counts the lines at the start of the tail that may be listed:
// those of files in cur/ or new/. The lines of a batch still in tmp/ wait,
// and so do all after them, for the file lists UIDs in ascending order.
func (w *Writer) listable() int {
	n := 0
	for n < len(w.tail) && w.tail[n].batch <= w.movedSeq {
		n++
	}
	return n
}

// sameFile says whether a and b describe one file, unchanged. It may
// only be trusted while the file of b is held open (Writer.pubFile).
func sameFile(a, b *unix.Stat_t) bool {
	return a != nil && b != nil && a.Dev == b.Dev && a.Ino == b.Ino && a.Size == b.Size &&
		a.Mtim == b.Mtim && a.Ctim == b.Ctim
}

// unchanged says whether st, the uidlist now, is the file this Writer
// last read or wrote, unchanged since.
func (w *Writer) unchanged(st *unix.Stat_t) bool {
	if w.sawUIDList != nil {
		seen := *st
		w.sawUIDList(&seen)
		st = &seen
	}
	return sameFile(st, w.pubStat)
}

// pin holds f, the uidlist as last read or written, open in place of the
// file held before.
func (w *Writer) pin(f *os.File) {
	if w.pubFile != nil && w.pubFile != f {
		w.pubFile.Close()
	}
	w.pubFile = f
}

// unpin closes the uidlist held open: the next publish reads the file again.
func (w *Writer) unpin() {
	w.pin(nil)
}

// rescan reads the whole uidlist f, changed by someone else since this
// Writer last saw it, and drops from the tail the lines of files it lists
// already (keeping the file's UID for them).
func (w *Writer) rescan(f *os.File, display string) (*uidlist, error) {
	var mine map[baseKey]int
	if len(w.tail) > 0 {
		mine = make(map[baseKey]int, len(w.tail))
		for i, l := range w.tail {
			mine[keyOf(l.base)] = i
		}
	}
	listed := map[int]uint32{}
	u, err := scanUIDList(f, func(l uidLine) error {
		if mine != nil {
			if i, ok := mine[keyOf(l.base)]; ok {
				listed[i] = l.uid
			}
		}
		return nil
	})
	if err != nil {
		if ue, ok := errors.AsType[*UIDListError](err); ok {
			ue.Path = display
			return nil, ue
		}
		return nil, fmt.Errorf("maildir: read %s: %w", display, bare(err, display))
	}
	if len(listed) > 0 {
		tail := w.tail[:0]
		for i, l := range w.tail {
			if uid, ok := listed[i]; ok {
				k := keyOf(l.base)
				e := w.known[k]
				e.uid = uid
				w.known[k] = e
				w.renumbered = w.renumbered || uid != l.uid
				continue
			}
			tail = append(tail, l)
		}
		clear(w.tail[len(tail):])
		w.tail = tail
		// Results not yet reported durable carry the UIDs Dovecot gave.
		for i := range w.waiting {
			if e, ok := w.known[keyOf(baseOf(w.waiting[i].Name))]; ok && e.uid != 0 {
				w.waiting[i].UID = e.uid
			}
		}
	}
	return u, nil
}

// renumber moves the tail's UIDs above those someone else gave since this
// Writer last wrote the file (cur is the file now), keeping their order.
func (w *Writer) renumber(cur *uidlist) {
	foreign := cur.next > w.pubNext || cur.last > w.pubLast
	if !foreign && (len(w.tail) == 0 || w.tail[0].uid > cur.last) {
		return
	}
	next, prev := cur.next, cur.last
	var moved map[string]uint32
	for i := range w.tail {
		l := &w.tail[i]
		if l.uid < next || l.uid <= prev {
			l.uid = max(next, prev+1)
			if moved == nil {
				moved = map[string]uint32{}
			}
			moved[l.base] = l.uid
			l.text = strconv.FormatUint(uint64(l.uid), 10) + " :" + l.base
			k := keyOf(l.base)
			e := w.known[k]
			e.uid = l.uid
			w.known[k] = e
			w.renumbered = true
		}
		prev = l.uid
		next = max(next, prev+1)
	}
	w.ul.next = max(w.ul.next, next)
	w.used = max(w.used, prev)
	w.prev = max(w.prev, prev)
	// Results not yet reported durable carry the UIDs Dovecot will show.
	for i := range w.waiting {
		if uid, ok := moved[baseOf(w.waiting[i].Name)]; ok {
			w.waiting[i].UID = uid
		}
	}
}

// rewriteUIDList writes a whole new dovecot-uidlist into the lock file and
// renames it over the old one: a version 3 header with the UIDVALIDITY,
// GUID and other fields of cur and the next UID head, the lines of old (when
// there is one), then lines.
func (w *Writer) rewriteUIDList(lk *ctlLock, cur *uidlist, head uint32, old *os.File, lines []uidLine) error {
	display := w.d.path + "/" + uidlistName
	bw := bufio.NewWriterSize(lk.h.File(), 64*1024)
	guid := cur.guid
	if guid == "" {
		guid = w.ul.guid
	}
	fmt.Fprintf(bw, "3 V%d N%d G%s", cur.validity, head, guid)
	for _, f := range cur.extra {
		bw.WriteString(" " + f)
	}
	bw.WriteByte('\n')
	if old != nil {
		if _, err := old.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("maildir: read %s: %w", display, bare(err, display))
		}
		_, err := scanUIDList(old, func(l uidLine) error {
			bw.WriteString(l.text)
			return bw.WriteByte('\n')
		})
		if err != nil {
			return fmt.Errorf("maildir: read %s: %w", display, bare(err, display))
		}
	}
	for _, l := range lines {
		bw.WriteString(l.text)
		bw.WriteByte('\n')
	}
	if err := fault.UIDListRewrite.On(lk.h.File(), "write").Err(bw.Flush()); err != nil {
		return fmt.Errorf("maildir: write %s.lock: %w", display, bare(err, display+".lock"))
	}
	return w.install(lk)
}

// appendUIDList appends lines to dovecot-uidlist in place, and returns the
// file's identity after. seen is the file publish checked.
func (w *Writer) appendUIDList(seen *unix.Stat_t, lines []uidLine) (*unix.Stat_t, error) {
	display := w.d.path + "/" + uidlistName
	fd, err := safefs.Open(w.d.fd, uidlistName, unix.O_WRONLY|unix.O_APPEND|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("maildir: open %s: %w", display, err)
	}
	f := os.NewFile(uintptr(fd), display)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &unsafeError{display, "is not a regular file"}
	}
	if st.Dev != seen.Dev || st.Ino != seen.Ino || st.Size != seen.Size {
		return nil, fmt.Errorf("maildir: %s: replaced or changed while this process held %s.lock", display, uidlistName)
	}
	// A failed append (EDQUOT, ENOSPC) may have written part of a line:
	// cut the file back to what it was, still under the lock, so that the
	// next append does not glue its first line to the part.
	size := st.Size
	fail := func(err error) (*unix.Stat_t, error) {
		if terr := unix.Ftruncate(fd, size); terr != nil {
			err = errors.Join(err, fmt.Errorf("maildir: truncate %s back to %d bytes: %w", display, size, terr))
		}
		return nil, err
	}
	write := func(b []byte) error {
		_, err := fault.UIDListAppend.On(f, "write").N(f.Write(b))
		if err = w.traced(err, "append "+uidlistName); err != nil {
			return fmt.Errorf("maildir: append to %s: %w", display, bare(err, display))
		}
		return nil
	}
	b := w.buf[:0]
	for _, l := range lines {
		if len(b)+len(l.text)+1 > cap(b) && len(b) > 0 {
			if err := write(b); err != nil {
				return fail(err)
			}
			b = b[:0]
		}
		b = append(b, l.text...)
		b = append(b, '\n')
	}
	if err := write(b); err != nil {
		return fail(err)
	}
	if w.opts.Fsync != FsyncNone {
		if err := w.traced(unix.Fsync(fd), "fsync "+uidlistName); err != nil {
			return fail(fmt.Errorf("maildir: fsync %s: %w", display, err))
		}
	}
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("maildir: stat %s: %w", display, err)
	}
	return &st, nil
}

func (w *Writer) writeKeywords() error {
	if !w.kwDirty {
		return nil
	}
	data := keywordsBytes(&w.kw)
	err := w.writeControl(keywordsName, func(out io.Writer) error {
		if _, err := out.Write(data); err != nil {
			return fmt.Errorf("maildir: write %s/%s.lock: %w", w.d.path, keywordsName, bare(err, w.d.path+"/"+keywordsName+".lock"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.kwDirty = false
	return nil
}
