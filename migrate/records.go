package migrate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/maildir"
)

// The records of a source: one line "<seq> <uid> <base>" per message, in source order, in
// a root-only file beside the source's state: the message's sequence number (the position
// in its name), the UID it was given and its file's base name; a rollback adds the message's
// identity ("<head> <sum> <size>") where the name does not carry it. They are the source as the
// last pass left it: a mirror pass matches the source with them (mirror.go), verify proves
// each message's file, and a message the user deleted through Dovecot is told from a lost
// one by its UID (sortDeleted). Records of earlier versions have no base ("<seq> <uid>").
//
// A pass that converts from the end of the last one appends to the records, after cutting
// them back to the size the state names (what lies beyond was written by a pass that did
// not save its state). A pass that starts again (a mirror pass, or a source converted from
// its start) writes a new generation, which the state names once it is saved; the old one
// is removed after. A crash in between leaves the state and the generation it names.

// recordsPath names generation gen of the records of a user's source; generation 0 is the
// file of earlier versions.
func (s StateStore) recordsPath(user, kind, src string, gen int) (string, error) {
	p, err := s.keyPath(user, kind, src)
	if err != nil {
		return "", err
	}
	p = strings.TrimSuffix(p, ".json")
	if gen > 0 {
		p += "." + strconv.Itoa(gen)
	}
	return p + ".uids", nil
}

// recordsLost reports whether the records st names are missing or shorter than st says
// (removed by hand, or a file system that lost them): a pass then rebuilds them from the
// Maildir (mirror.go). Records of earlier versions have no size to check.
func (s StateStore) recordsLost(user, kind, src string, st *State) bool {
	if st == nil || st.Gen == 0 {
		return false
	}
	p, err := s.recordsPath(user, kind, src, st.Gen)
	if err != nil {
		return true
	}
	var fst unix.Stat_t
	return unix.Lstat(p, &fst) != nil || fst.Mode&unix.S_IFMT != unix.S_IFREG || fst.Size < st.RecordsSize
}

// records is an open records file, written by the process that holds the states.
type records struct {
	f    *os.File
	w    *bufio.Writer
	gen  int
	size int64 // bytes written and synced
	bad  error // a record that could not be kept: sync fails with it
}

// openRecords opens the records of a source for a pass: the generation prev names, cut back
// to the size it names, or with fresh a new generation, empty.
func (s StateStore) openRecords(user, kind, src string, prev *State, fresh bool) (*records, error) {
	gen, size := 0, int64(-1)
	if prev != nil {
		gen = prev.Gen
		if gen > 0 {
			size = prev.RecordsSize
		}
	}
	if fresh {
		gen, size = gen+1, 0
	}
	p, err := s.recordsPath(user, kind, src, gen)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("migrate: state: %w", err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("migrate: state: %w", err)
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err == nil && size >= 0 && size != end {
		if size > end {
			err = fmt.Errorf("%s holds %d bytes, not the %d its state names", p, end, size)
		} else if err = f.Truncate(size); err == nil {
			end, err = f.Seek(size, io.SeekStart)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("migrate: state: %w", err)
	}
	return &records{f: f, w: bufio.NewWriter(f), gen: gen, size: end}, nil
}

// add records one message made durable. The file's name comes from the worker, which read
// it in a home: a record without its identity must name a file of ours (maildir.ParseOwn),
// else it is not written and sync fails, before any state counts it.
func (r *records) add(rec MessageRecord) {
	if rec.Skipped || r.bad != nil {
		return
	}
	if base := baseName(rec.Name); base != "" && rec.Key == "" {
		if _, ok := maildir.ParseOwn(base); !ok {
			r.bad = fmt.Errorf("migrate: state: message %d: %q is not a file name maildirmig gives", rec.Index, base)
			return
		}
	}
	r.w.WriteString(strconv.FormatInt(rec.Index, 10))
	r.w.WriteByte(' ')
	r.w.WriteString(strconv.FormatUint(uint64(rec.UID), 10))
	if base := baseName(rec.Name); base != "" {
		r.w.WriteByte(' ')
		if rec.Key != "" {
			r.w.WriteString(escapeRecordName(base))
			r.w.WriteByte(' ')
			r.w.WriteString(rec.Key)
		} else {
			r.w.WriteString(base)
		}
	}
	r.w.WriteByte('\n')
}

// escapeRecordName writes the base name of a file a record names by its identity (a rollback
// wrote the message from a file Dovecot, a delivery agent or the user named) as one field:
// '%', spaces, control characters and DEL as %XX. Names of ours have none of them.
func escapeRecordName(base string) string {
	var b strings.Builder
	for i := 0; i < len(base); i++ {
		if c := base[i]; c <= ' ' || c == 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescapeRecordName reverses escapeRecordName; false for a field it could not have written.
func unescapeRecordName(field string) (string, bool) {
	if !strings.Contains(field, "%") {
		return field, field != ""
	}
	var b strings.Builder
	for i := 0; i < len(field); i++ {
		c := field[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(field) {
			return "", false
		}
		v, err := strconv.ParseUint(field[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

// sync makes what was added durable, before a state that counts it, and notes the size the
// state must name.
func (r *records) sync() error {
	if r.bad != nil {
		return r.bad
	}
	if err := r.w.Flush(); err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	end, err := r.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	r.size = end
	return nil
}

func (r *records) Close() error { return r.f.Close() }

// note puts the records' generation and size into st, once they are synced.
func (r *records) note(st *State) { st.Gen, st.RecordsSize = r.gen, r.size }

// dropOlder removes the generations of a source's records before the one st names, once st
// is saved.
func (s StateStore) dropOlder(user, kind, src string, st *State) {
	for gen := st.Gen - 1; gen >= 0 && gen >= st.Gen-2; gen-- {
		if p, err := s.recordsPath(user, kind, src, gen); err == nil {
			_ = os.Remove(p)
		}
	}
}

// readRecords returns the records st names, as the lines a mirror pass or verify reads:
// "<seq> <uid>[ <base>]" in source order, one per message. Records of earlier versions may
// repeat a message (a pass resumed after a crash recorded it again); the last line for it
// wins, at its place.
func (s StateStore) readRecords(user, kind, src string, st *State) (string, error) {
	if st == nil {
		return "", nil
	}
	p, err := s.recordsPath(user, kind, src, st.Gen)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("migrate: state: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if st.Gen > 0 {
		r = io.LimitReader(f, st.RecordsSize)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("migrate: state: %w", err)
	}
	if st.Gen > 0 {
		return string(b), nil
	}
	last := map[int64]int{}
	var lines []string
	for l := range strings.Lines(string(b)) {
		if !strings.HasSuffix(l, "\n") {
			break // cut short by a crash
		}
		a, _, _ := strings.Cut(l, " ")
		seq, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			continue
		}
		if i, ok := last[seq]; ok {
			lines[i] = ""
		}
		last[seq] = len(lines)
		lines = append(lines, l)
	}
	var out strings.Builder
	for _, l := range lines {
		out.WriteString(l)
	}
	return out.String(), nil
}

// lookupUIDs returns the recorded UIDs of the positions in want, from the records st names.
func (s StateStore) lookupUIDs(user, kind, src string, st *State, want map[int64]bool) (map[int64]uint32, error) {
	out := make(map[int64]uint32, len(want))
	text, err := s.readRecords(user, kind, src, st)
	if err != nil {
		return nil, err
	}
	for l := range strings.Lines(text) {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		pos, err1 := strconv.ParseInt(f[0], 10, 64)
		uid, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 == nil && err2 == nil && want[pos] {
			out[pos] = uint32(uid)
		}
	}
	return out, nil
}
