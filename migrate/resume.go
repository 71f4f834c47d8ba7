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

// resume is one pass over a source under its lock, from where the last one stopped: the
// same rules for the INBOX (root holds the source and runs it) and for each mbox folder (the
// worker, as the user, holds the folder and runs it, since root never opens a file in a home).
type resume struct {
	src   io.ReaderAt
	name  string // the source as the administrator knows it, for errors
	size  int64  // the locked source's size
	start int64  // where this run starts: the end of what earlier runs migrated
	index int64  // sequence number of the message at start (the next one a new message gets)
	// mirror says the migrated part changed: the whole source is read again and the
	// Maildir made to mirror it (mirror.go), from the records prev names.
	mirror bool
	// fresh says the records start a new generation: a mirror pass, or a source converted
	// from offset 0.
	fresh  bool
	prev   *State // what the earlier runs left, the records included; nil when none is usable
	next   *State // what to remember, updated by advance
	h      hash.Hash
	hashed int64 // how far h has read
	bytes0 int64 // source bytes migrated before this run
}

// startResume decides how the locked source f (fstat st) is passed over, given the state prev
// of the earlier runs and next, which names this run's destination, options and zone: from
// the end of the migrated prefix when it is unchanged, else a mirror pass of the whole
// source (resume.mirror). A destination or options other than those it was migrated with are
// refused (ErrStateMismatch) unless force: another Maildir then starts a migration of its
// own there, other options a mirror pass that converts every message again. A source
// passed over again keeps the zone From_ dates without one were read in, so that the names of
// its messages do not depend on who runs us: zoneKept is then the notice to log, else nil.
// next gets what carries over from prev.
func startResume(f io.ReaderAt, name string, st unix.Stat_t, prev, next *State, force bool) (r *resume, zoneKept *Event, err error) {
	start, index, h, err := prev.Resume(f, st)
	mirror := false
	if errors.Is(err, ErrSourceChanged) {
		start, index, h, mirror, err = 0, prev.Messages, newSHA256(), true, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if prev != nil && (prev.RecordsLost || prev.RolledBack || prev.MaildirGone) && start > 0 {
		// The records of the last pass are gone: a mirror pass rebuilds them from the Maildir.
		// Or a rollback wrote the source from the Maildir, which may be gone or used since,
		// or the Maildir is gone: a mirror pass finds out, from the records.
		start, index, h, mirror = 0, prev.Messages, newSHA256(), true
	}
	if why := prev.differs(next); why != "" && (start > 0 || mirror) {
		if !force {
			return nil, nil, fmt.Errorf("%w: %s: %s (run with the same options, or with --force to migrate it again under these)", ErrStateMismatch, name, why)
		}
		if prev.Maildir != next.Maildir {
			// Another Maildir: a migration of its own, which knows nothing of the first.
			start, h, mirror = 0, newSHA256(), false
			prev = &State{Messages: prev.Messages, BaseIndex: prev.Messages, Gen: prev.Gen}
		} else {
			start, h, mirror = 0, newSHA256(), true
		}
	}
	if (start > 0 || mirror) && prev.Zone != "" && prev.Zone != next.Zone {
		if _, lerr := time.LoadLocation(prev.Zone); lerr != nil {
			return nil, nil, fmt.Errorf("%w: %s: earlier runs read From_ dates without a zone in %s, which cannot be loaded here (run with TZ=%s)", ErrStateMismatch, name, prev.Zone, prev.Zone)
		}
		zoneKept = &Event{Kind: EventZoneKept, Message: -1, Offset: start,
			Detail: fmt.Sprintf("reading From_ dates without a zone in %s, as earlier runs did, not %s", prev.Zone, next.Zone)}
		next.Zone = prev.Zone
	}
	if prev != nil {
		next.BaseIndex, next.Bytes, next.UIDValidity = prev.BaseIndex, prev.Bytes, prev.UIDValidity
		if start == 0 && !mirror {
			next.BaseIndex = index
		}
	}
	if start > 0 {
		// The rest of the source is split as its start was.
		next.Loose, next.LooseFrom = prev.Loose, prev.LooseFrom
	}
	bytes0 := next.Bytes
	if mirror {
		// A mirror pass counts what it reads anew.
		bytes0 -= prev.Offset
	}
	return &resume{src: f, name: name, size: st.Size, start: start, index: index, mirror: mirror, fresh: start == 0,
		prev: prev, next: next, h: h, hashed: start, bytes0: bytes0}, zoneKept, nil
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
	if r.mirror {
		n.Messages = max(r.index, s.Seq)
	}
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
//
// While convert runs, the states it saves say a pass is writing (State.Open); the last one
// does not. The caller saves the state to save first (opened) before convert writes.
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
		r.next.Open = true
		var err error
		stats, err = convert(advance)
		r.next.Open = false
		if err != nil {
			return stats, err
		}
	}
	return stats, advance(stats.EndOffset, stats)
}

// opened is the state to save before a pass writes: the earlier runs' (or, for a source
// never migrated, one that records nothing yet), marked Open.
func (r *resume) opened() State {
	var st State
	if r.prev != nil && !r.fresh || r.prev != nil && r.mirror {
		st = *r.prev
	} else {
		st = State{User: r.next.User, UID: r.next.UID, Kind: r.next.Kind, Source: r.next.Source, Maildir: r.next.Maildir,
			Messages: r.index, BaseIndex: r.index, Bytes: r.bytes0, UIDValidity: r.next.UIDValidity, Zone: r.next.Zone}
		if r.prev != nil {
			st.Gen, st.RecordsSize = r.prev.Gen, r.prev.RecordsSize
		}
	}
	st.Open, st.RecordsLost, st.MaildirGone = true, false, false
	st.Time = time.Now().UTC()
	return st
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
