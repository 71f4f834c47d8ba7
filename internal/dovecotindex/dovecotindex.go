// Package dovecotindex reads the UIDVALIDITY and the next UID that Dovecot keeps for a mailbox
// in its index, where an mbox that holds no message has nowhere else to keep them: an empty
// mbox carries no X-IMAPbase header, and Dovecot then shows what its index says.
//
// A mailbox's index is a directory holding dovecot.index (a snapshot: a header, then one
// record per message) and dovecot.index.log (the transaction log: every change since, and
// some before), and after a rotation dovecot.index.log.2 (the log before that one). Dovecot
// often writes no snapshot at all for a small mailbox, and a snapshot lags the log: the newest
// values may be only in the log. Read computes what Dovecot would: the snapshot's header, then
// every header update and append of the log from where the snapshot says it stopped.
//
// For an mbox mailbox NAME beneath the mbox root (~/mail), the index directory is .imap/NAME
// beside the mailbox's file: ~/mail/.imap/INBOX for the INBOX, ~/mail/.imap/Archive for
// ~/mail/Archive, ~/mail/Lists/.imap/dovecot for ~/mail/Lists/dovecot (ReadMbox).
//
// The files belong to the mailbox's user, who may write anything there. They are opened
// through internal/safefs beneath a directory descriptor (no symlink followed, no FIFO waited
// on, regular files only), read whole or not at all up to a size limit, and refused with an
// error matching ErrMalformed at the first thing Dovecot itself would call corrupted. Only
// little-endian files (those of x86 and ARM servers) are read. The package reads no other
// part of the index (flags, keywords, the cache) and never writes.
package dovecotindex

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// UIDs are what a mailbox's index says of its UIDs.
type UIDs struct {
	UIDValidity uint32
	NextUID     uint32 // the UID the next message will get (IMAP's UIDNEXT)
}

// ErrNoIndex is returned when the directory holds no index: Dovecot never opened the mailbox
// there.
var ErrNoIndex = errors.New("dovecotindex: no index")

// ErrMalformed is matched by the errors about an index that is not what Dovecot writes:
// truncated, of another version or byte order, inconsistent, or larger than MaxLogSize.
var ErrMalformed = errors.New("dovecotindex: malformed index")

// File names in an index directory.
const (
	IndexName   = "dovecot.index"
	LogName     = "dovecot.index.log"
	PrevLogName = "dovecot.index.log.2"
)

// MaxLogSize is the largest transaction log read. Dovecot rotates a log once it passes
// 1 MiB (mail_index_log_rotate_max_size), so a larger one is not what it writes.
const MaxLogSize = 16 << 20

// ReadMbox reads the index of the mbox mailbox name (its path beneath the mbox root, levels
// separated by '/': "INBOX", "Archive", "Lists/dovecot") in the mbox root rootfd.
func ReadMbox(rootfd int, name string) (UIDs, error) {
	if name == "" || strings.HasPrefix(name, "/") || path.Clean(name) != name || name == "." || name == ".." || strings.HasPrefix(name, "../") {
		return UIDs{}, fmt.Errorf("dovecotindex: mailbox name %q", name)
	}
	dir, base := path.Split(name)
	fd, err := safefs.OpenDir(rootfd, path.Join(dir, ".imap", base))
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return UIDs{}, ErrNoIndex
	}
	if err != nil {
		return UIDs{}, fmt.Errorf("dovecotindex: %s: %w", path.Join(dir, ".imap", base), err)
	}
	defer unix.Close(fd)
	return Read(fd)
}

// Read reads the index in the index directory dirfd.
func Read(dirfd int) (UIDs, error) {
	// Only the snapshot's base header is needed, never its records.
	index, err := readFile(dirfd, IndexName, baseHeaderSize, true)
	if err != nil {
		return UIDs{}, err
	}
	log, err := readFile(dirfd, LogName, MaxLogSize, false)
	if err != nil {
		return UIDs{}, err
	}
	var prev []byte
	if log != nil {
		if prev, err = readFile(dirfd, PrevLogName, MaxLogSize, false); err != nil {
			return UIDs{}, err
		}
	}
	if index == nil && log == nil {
		return UIDs{}, ErrNoIndex
	}
	return Parse(index, log, prev)
}

// readFile reads name beneath dirfd: up to max bytes when prefix, else the whole file, which
// must not be larger than max. A missing file gives nil.
func readFile(dirfd int, name string, max int64, prefix bool) ([]byte, error) {
	fd, err := safefs.Open(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dovecotindex: %s: %w", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("dovecotindex: %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrMalformed, name)
	}
	n := st.Size
	if n > max {
		if !prefix {
			return nil, fmt.Errorf("%w: %s has %d bytes, more than the %d read", ErrMalformed, name, st.Size, max)
		}
		n = max
	}
	// One byte more than fstat said tells a file that grew meanwhile from one that did not.
	b := make([]byte, n+1)
	got := 0
	for got < len(b) {
		m, err := unix.Pread(fd, b[got:], int64(got))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dovecotindex: %s: %w", name, err)
		}
		if m == 0 {
			break
		}
		got += m
	}
	if int64(got) > n && !prefix {
		return nil, fmt.Errorf("%w: %s changed while it was read", ErrMalformed, name)
	}
	return b[:min(int64(got), n)], nil
}

// The header of dovecot.index (struct mail_index_header): the fields read, by offset.
const (
	idxMajor          = 0  // uint8, 7
	idxBaseHeaderSize = 2  // uint16
	idxCompatFlags    = 12 // uint8
	idxIndexID        = 16
	idxUIDValidity    = 24
	idxNextUID        = 28
	idxLogFileSeq     = 60
	idxLogHeadOffset  = 68
	idxMinSize        = 72 // everything above lies below this

	// baseHeaderSize is the size of struct mail_index_header in Dovecot 2.x: the range a
	// header update of the log may write to when there is no snapshot to say otherwise.
	baseHeaderSize = 120

	indexMajor = 7
)

// compatLittleEndian is the compat_flags bit of a file written on a little-endian machine.
const compatLittleEndian = 0x01

// The header of a transaction log (struct mail_transaction_log_header).
const (
	logMajor          = 0 // uint8, 1
	logHdrSize        = 2 // uint16
	logIndexID        = 4
	logFileSeq        = 8
	logPrevFileSeq    = 12
	logPrevFileOffset = 16
	logCompatFlags    = 32 // uint8, in headers of 36 bytes and more (Dovecot 1.2 and later)
	logMinHdrSize     = 36

	logMajorVersion = 1
)

// Record types of the log (enum mail_transaction_type) that move the UIDs.
const (
	typeMask         = 0x0fffffff
	typeAppend       = 0x00000002
	typeHeaderUpdate = 0x00000020

	recordHeaderSize = 8 // size and type
	appendRecordSize = 8 // struct mail_index_record: uid, flags, padding
)

var le = binary.LittleEndian

// logFile is a parsed transaction log header.
type logFile struct {
	name                  string
	b                     []byte
	hdrSize               int
	indexID, seq, prevSeq uint32
	prevOffset            uint32
}

func parseLog(name string, b []byte) (*logFile, error) {
	if len(b) < logMinHdrSize {
		return nil, malformed(name, 0, "%d bytes, shorter than a log header", len(b))
	}
	if b[logMajor] != logMajorVersion {
		return nil, malformed(name, 0, "version %d.%d, not %d.x", b[logMajor], b[logMajor+1], logMajorVersion)
	}
	l := &logFile{name: name, b: b, hdrSize: int(le.Uint16(b[logHdrSize:])),
		indexID: le.Uint32(b[logIndexID:]), seq: le.Uint32(b[logFileSeq:]),
		prevSeq: le.Uint32(b[logPrevFileSeq:]), prevOffset: le.Uint32(b[logPrevFileOffset:])}
	switch {
	case l.hdrSize < logMinHdrSize || l.hdrSize > len(b) || l.hdrSize%4 != 0:
		return nil, malformed(name, logHdrSize, "header size %d", l.hdrSize)
	case b[logCompatFlags]&compatLittleEndian == 0:
		return nil, malformed(name, logCompatFlags, "written on a big-endian machine")
	case l.seq == 0:
		return nil, malformed(name, logFileSeq, "file sequence 0")
	}
	return l, nil
}

// state is the part of the index header the log is replayed on: its base header, of which
// UIDVALIDITY and the next UID are read at the end.
type state struct {
	hdr  [baseHeaderSize]byte
	size int // the base header's size: header updates must lie within it
}

func (s *state) uids() UIDs {
	return UIDs{UIDValidity: le.Uint32(s.hdr[idxUIDValidity:]), NextUID: le.Uint32(s.hdr[idxNextUID:])}
}

// Parse computes the UIDs from the contents of dovecot.index, dovecot.index.log and
// dovecot.index.log.2, each nil when the file is missing.
func Parse(index, log, prevLog []byte) (UIDs, error) {
	s := &state{size: baseHeaderSize}
	var cur, prev *logFile
	var err error
	if log != nil {
		if cur, err = parseLog(LogName, log); err != nil {
			return UIDs{}, err
		}
	}
	if prevLog != nil && cur != nil {
		if prev, err = parseLog(PrevLogName, prevLog); err != nil {
			return UIDs{}, err
		}
	}
	switch {
	case index == nil && cur == nil:
		return UIDs{}, ErrNoIndex
	case index == nil:
		err = s.replayAll(cur, prev)
	default:
		err = s.fromSnapshot(index, cur, prev)
	}
	if err != nil {
		return UIDs{}, err
	}
	u := s.uids()
	switch {
	case u.UIDValidity == 0:
		return UIDs{}, fmt.Errorf("%w: no UIDVALIDITY was ever set", ErrMalformed)
	case u.NextUID == 0:
		return UIDs{}, fmt.Errorf("%w: no next UID was ever set", ErrMalformed)
	}
	return u, nil
}

// replayAll replays the whole log, from an empty header, as Dovecot does with no snapshot:
// the log must then be the first of its index, or follow the first.
func (s *state) replayAll(cur, prev *logFile) error {
	switch {
	case cur.prevSeq == 0:
		return s.replay(cur, cur.hdrSize, len(cur.b))
	case prev != nil && prev.seq == cur.prevSeq && prev.prevSeq == 0 && prev.indexID == cur.indexID:
		if err := s.replay(prev, prev.hdrSize, rotatedEnd(prev, cur)); err != nil {
			return err
		}
		return s.replay(cur, cur.hdrSize, len(cur.b))
	}
	return fmt.Errorf("%w: no %s, and the transaction logs before %s are gone", ErrMalformed, IndexName, LogName)
}

// rotatedEnd is where prev ended when cur replaced it: what lies beyond was never synced.
func rotatedEnd(prev, cur *logFile) int {
	if end := int(cur.prevOffset); end >= prev.hdrSize && end <= len(prev.b) {
		return end
	}
	return len(prev.b)
}

// fromSnapshot starts from the snapshot's header and replays the log from where it says it
// stopped.
func (s *state) fromSnapshot(index []byte, cur, prev *logFile) error {
	if len(index) < idxMinSize {
		return malformed(IndexName, 0, "%d bytes, shorter than an index header", len(index))
	}
	if index[idxMajor] != indexMajor {
		return malformed(IndexName, 0, "version %d.%d, not %d.x", index[idxMajor], index[idxMajor+1], indexMajor)
	}
	if index[idxCompatFlags]&compatLittleEndian == 0 {
		return malformed(IndexName, idxCompatFlags, "written on a big-endian machine")
	}
	base := int(le.Uint16(index[idxBaseHeaderSize:]))
	if base < idxMinSize || (len(index) < baseHeaderSize && base > len(index)) {
		return malformed(IndexName, idxBaseHeaderSize, "base header size %d", base)
	}
	s.size = base
	copy(s.hdr[:], index[:min(base, baseHeaderSize)])
	if cur == nil {
		return nil
	}
	id, seq, head := le.Uint32(index[idxIndexID:]), le.Uint32(index[idxLogFileSeq:]), int(le.Uint32(index[idxLogHeadOffset:]))
	if cur.indexID != id {
		return malformed(LogName, logIndexID, "index id %d, not the %d of %s", cur.indexID, id, IndexName)
	}
	switch {
	case cur.seq == seq:
		return s.replayFrom(cur, head)
	case cur.seq < seq:
		return malformed(LogName, logFileSeq, "sequence %d, older than the %d %s was synced to", cur.seq, seq, IndexName)
	case cur.prevSeq == 0:
		// A log that starts anew resets the index: Dovecot keeps nothing of the snapshot.
		*s = state{size: baseHeaderSize}
		return s.replay(cur, cur.hdrSize, len(cur.b))
	case prev != nil && prev.seq == seq && cur.prevSeq == seq && prev.indexID == id:
		if err := s.replayRange(prev, head, rotatedEnd(prev, cur)); err != nil {
			return err
		}
		return s.replay(cur, cur.hdrSize, len(cur.b))
	case cur.prevSeq == seq && int(cur.prevOffset) == head:
		// The snapshot was synced up to the rotation: nothing of the older log is missing.
		return s.replay(cur, cur.hdrSize, len(cur.b))
	}
	return malformed(LogName, logPrevFileSeq, "%s was synced to log %d, and the logs between it and %d are gone", IndexName, seq, cur.seq)
}

func (s *state) replayFrom(l *logFile, from int) error {
	return s.replayRange(l, from, len(l.b))
}

func (s *state) replayRange(l *logFile, from, to int) error {
	if from < l.hdrSize || from > to {
		return malformed(IndexName, idxLogHeadOffset, "log offset %d outside %d..%d of %s", from, l.hdrSize, to, l.name)
	}
	return s.replay(l, from, to)
}

// replay applies the records of l between from and to. A record cut short at the end, or
// one whose size is still 0, is one Dovecot is writing: it ends the log, as for Dovecot.
func (s *state) replay(l *logFile, from, to int) error {
	b := l.b[:to]
	for off := from; off+recordHeaderSize <= len(b); {
		size, ok := recordSize(b[off:])
		switch {
		case ok && size == 0:
			return nil
		case !ok || size < recordHeaderSize:
			return malformed(l.name, off, "record size field %x", b[off:off+4])
		case off+size > len(b):
			return nil
		}
		typ := le.Uint32(b[off+4:]) & typeMask
		data := b[off+recordHeaderSize : off+size]
		var err error
		switch typ {
		case typeHeaderUpdate:
			err = s.headerUpdates(data)
		case typeAppend:
			err = s.appends(data)
		}
		if err != nil {
			return malformed(l.name, off, "%v", err)
		}
		off += size
	}
	return nil
}

// recordSize decodes a record's size, which Dovecot stores 7 bits per byte, each byte with
// its high bit set, most significant first, in units of 4 bytes. A field of zeroes is a
// record being written (size 0, ok).
func recordSize(b []byte) (int, bool) {
	if b[0]|b[1]|b[2]|b[3] == 0 {
		return 0, true
	}
	if b[0]&b[1]&b[2]&b[3]&0x80 == 0 {
		return 0, false
	}
	v := uint32(b[0]&0x7f)<<21 | uint32(b[1]&0x7f)<<14 | uint32(b[2]&0x7f)<<7 | uint32(b[3]&0x7f)
	return int(v) << 2, true
}

// headerUpdates applies the header updates in data: each an offset and a size (16 bits
// each), then that many bytes, padded to 4. The next UID never goes down, as in Dovecot.
func (s *state) headerUpdates(data []byte) error {
	for i := 0; i < len(data); {
		if i+4 > len(data) {
			return errors.New("header update cut short")
		}
		off, n := int(le.Uint16(data[i:])), int(le.Uint16(data[i+2:]))
		if i+4+n > len(data) {
			return fmt.Errorf("header update of %d bytes in a record of %d", n, len(data))
		}
		if off+n > s.size {
			return fmt.Errorf("header update of %d+%d outside the header's %d bytes", off, n, s.size)
		}
		next := le.Uint32(s.hdr[idxNextUID:])
		if off < baseHeaderSize {
			copy(s.hdr[off:], data[i+4:i+4+min(n, baseHeaderSize-off)])
		}
		if le.Uint32(s.hdr[idxNextUID:]) < next {
			le.PutUint32(s.hdr[idxNextUID:], next)
		}
		i += 4 + n
		i += (4 - i%4) % 4
	}
	return nil
}

// appends applies appended messages: each moves the next UID past its own, and none may
// take a UID below it.
func (s *state) appends(data []byte) error {
	if len(data)%appendRecordSize != 0 {
		return fmt.Errorf("appends of %d bytes, not a multiple of %d", len(data), appendRecordSize)
	}
	for i := 0; i < len(data); i += appendRecordSize {
		uid, next := le.Uint32(data[i:]), le.Uint32(s.hdr[idxNextUID:])
		if uid == 0 || uid == ^uint32(0) || uid < next {
			return fmt.Errorf("append of UID %d with the next UID at %d", uid, next)
		}
		le.PutUint32(s.hdr[idxNextUID:], uid+1)
	}
	return nil
}

func malformed(name string, off int, format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d: %s", ErrMalformed, name, off, fmt.Sprintf(format, args...))
}
