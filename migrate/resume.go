package migrate

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// resume is one conversion of a source under its lock, from where the last one stopped: the
// same rules for the INBOX (root holds the source and runs it) and for each mbox folder (the
// worker, as the user, holds the folder and runs it, since root never opens a file in a home).
type resume struct {
	src   io.ReaderAt
	name  string // the source as the administrator knows it, for errors
	size  int64  // the locked source's size
	start int64  // where this run starts: the end of what earlier runs migrated
	index int64  // position number of the message at start
	// forced says the source is migrated again from 0 after it changed (--force): the
	// messages already in the Maildir may then be anywhere in the source.
	forced bool
	next   *State // what to remember, updated by advance
	h      hash.Hash
	hashed int64 // how far h has read
	bytes0 int64 // source bytes migrated before this run
}

// startResume decides where the locked source f (fstat st) resumes, given the state prev of
// the earlier runs and next, which names this run's destination, options and zone. The
// migrated prefix must be unchanged (ErrSourceChanged), and the destination and options
// those it was migrated with (ErrStateMismatch); --force starts again from 0 instead. A
// resumed source keeps the zone From_ dates without one were read in, so that the names of
// the messages still to migrate do not depend on who runs us: zoneKept is then the notice to
// log, else nil. next gets what carries over from prev.
func startResume(f io.ReaderAt, name string, st unix.Stat_t, prev, next *State, force bool) (r *resume, zoneKept *Event, err error) {
	start, index, h, forced, err := prev.resumeForced(f, st, force)
	if err != nil {
		return nil, nil, err
	}
	if why := prev.differs(next); why != "" && start > 0 {
		if !force {
			return nil, nil, fmt.Errorf("%w: %s: %s (run with the same options, or with --force to migrate it again from the start)", ErrStateMismatch, name, why)
		}
		start, index, h, forced = 0, prev.BaseIndex, newSHA256(), true
	}
	if start > 0 && prev.Zone != "" && prev.Zone != next.Zone {
		if _, lerr := time.LoadLocation(prev.Zone); lerr != nil {
			return nil, nil, fmt.Errorf("%w: %s: earlier runs read From_ dates without a zone in %s, which cannot be loaded here (run with TZ=%s, or with --force to migrate it again from the start)", ErrStateMismatch, name, prev.Zone, prev.Zone)
		}
		zoneKept = &Event{Kind: EventZoneKept, Message: -1, Offset: start,
			Detail: fmt.Sprintf("reading From_ dates without a zone in %s, as earlier runs did, not %s", prev.Zone, next.Zone)}
		next.Zone = prev.Zone
	}
	if prev != nil {
		next.BaseIndex, next.Bytes, next.UIDValidity = prev.BaseIndex, prev.Bytes, prev.UIDValidity
		if start == 0 {
			next.BaseIndex = index
		}
	}
	if start > 0 {
		// The rest of the source is split as its start was.
		next.Loose, next.LooseFrom = prev.Loose, prev.LooseFrom
	}
	return &resume{src: f, name: name, size: st.Size, start: start, index: index, forced: forced, next: next,
		h: h, hashed: start, bytes0: next.Bytes}, zoneKept, nil
}

// advance moves next to the resume point end a conversion reported, with its stats s, once it
// has checked that end is one (checkResumePoint) and hashed the source up to it.
func (r *resume) advance(end int64, s Stats) error {
	if err := checkResumePoint(r.src, r.name, r.size, r.hashed, end); err != nil {
		return err
	}
	if _, err := io.Copy(r.h, io.NewSectionReader(r.src, r.hashed, end-r.hashed)); err != nil {
		return fmt.Errorf("migrate: hashing %s: %w", r.name, err)
	}
	r.hashed = end
	n := r.next
	n.Size, n.Offset, n.SHA256 = r.size, end, hex.EncodeToString(r.h.Sum(nil))
	n.Messages = r.index + s.Messages
	n.Bytes = r.bytes0 + end - r.start
	if s.UIDValidity != 0 {
		n.UIDValidity = s.UIDValidity
	}
	if r.start == 0 && end > 0 {
		n.Loose, n.LooseFrom = s.Loose, s.LooseFrom
	}
	n.Time = time.Now().UTC()
	return nil
}

// run is the conversion of the source from its resume point: convert (nil when there is
// nothing to convert) converts the rest and reports each resume point to its durable
// callback, which advances there and has save record the state; the end it returns is
// advanced to and saved too. save may be nil when the caller records next itself. It
// returns the conversion's stats: with nothing converted, EndOffset is the start.
func (r *resume) run(convert func(durable func(end int64, s Stats) error) (Stats, error), save func() error) (Stats, error) {
	advance := func(end int64, s Stats) error {
		if err := r.advance(end, s); err != nil {
			return err
		}
		if save == nil {
			return nil
		}
		return save()
	}
	stats := Stats{EndOffset: r.start, UIDValidity: r.next.UIDValidity}
	if convert != nil {
		var err error
		if stats, err = convert(advance); err != nil {
			return stats, err
		}
	}
	return stats, advance(stats.EndOffset, stats)
}

// EventZoneKept is the notice that a resumed migration reads From_ dates in the zone the
// earlier runs used, not in this process's.
const EventZoneKept = "zone-kept"

// checkResumePoint refuses an end offset a conversion reported unless it is one: not before
// from, not beyond the source's size, and at the end of the source or at a line starting
// "From ". For the INBOX root checks what its worker says; for a folder the worker checks
// what its own conversion says, as the same rule, since root never opens a folder.
func checkResumePoint(f io.ReaderAt, name string, size, from, end int64) error {
	if end < from || end > size {
		return fmt.Errorf("migrate: the worker reported offset %d, outside %d..%d of %s", end, from, size, name)
	}
	if end == size {
		return nil
	}
	var b [5]byte
	if _, err := f.ReadAt(b[:], end); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("migrate: reading %s: %w", name, err)
	}
	if string(b[:]) != "From " {
		return fmt.Errorf("migrate: the worker reported offset %d of %s, which does not start a message", end, name)
	}
	return nil
}
