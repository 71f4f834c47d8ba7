package dovecotindex

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The files of these tests are written by the builders below, field by field as Dovecot lays
// them out (src/lib-index/mail-index.h, mail-transaction-log.h); TestRealDovecot reads what a
// real Dovecot wrote.

// logFileBytes builds a transaction log.
type logFileBytes struct{ b []byte }

func newLog(indexID, seq, prevSeq, prevOffset uint32) *logFileBytes {
	h := make([]byte, 40)
	h[0], h[1] = 1, 3
	binary.LittleEndian.PutUint16(h[2:], 40)
	binary.LittleEndian.PutUint32(h[4:], indexID)
	binary.LittleEndian.PutUint32(h[8:], seq)
	binary.LittleEndian.PutUint32(h[12:], prevSeq)
	binary.LittleEndian.PutUint32(h[16:], prevOffset)
	binary.LittleEndian.PutUint32(h[20:], 1700000000)
	binary.LittleEndian.PutUint64(h[24:], 1)
	h[32] = compatLittleEndian
	return &logFileBytes{b: h}
}

// encodeSize writes a record size as Dovecot does.
func encodeSize(n int) []byte {
	v := uint32(n) >> 2
	return []byte{0x80 | byte(v>>21&0x7f), 0x80 | byte(v>>14&0x7f), 0x80 | byte(v>>7&0x7f), 0x80 | byte(v&0x7f)}
}

func (l *logFileBytes) record(typ uint32, data []byte) *logFileBytes {
	l.b = append(l.b, encodeSize(8+len(data))...)
	l.b = binary.LittleEndian.AppendUint32(l.b, typ)
	l.b = append(l.b, data...)
	return l
}

// set writes a header update of the uint32 at off.
func (l *logFileBytes) set(off uint16, v uint32) *logFileBytes {
	d := binary.LittleEndian.AppendUint16(nil, off)
	d = binary.LittleEndian.AppendUint16(d, 4)
	d = binary.LittleEndian.AppendUint32(d, v)
	return l.record(0x10000000|typeHeaderUpdate, d)
}

func (l *logFileBytes) appendUIDs(uids ...uint32) *logFileBytes {
	var d []byte
	for _, u := range uids {
		d = binary.LittleEndian.AppendUint32(d, u)
		d = append(d, 0x80, 0, 0, 0)
	}
	return l.record(typeAppend, d)
}

// other writes a record Parse has no use for: an expunge of uid1..uid2.
func (l *logFileBytes) expunge(uid1, uid2 uint32) *logFileBytes {
	d := binary.LittleEndian.AppendUint32(nil, uid1)
	d = binary.LittleEndian.AppendUint32(d, uid2)
	return l.record(0x10000000|0xcd90|0x1, d)
}

func (l *logFileBytes) bytes() []byte { return append([]byte(nil), l.b...) }

// snapshot builds the start of a dovecot.index synced to log seq at offset head.
func snapshot(indexID, validity, next, seq, head uint32) []byte {
	b := make([]byte, baseHeaderSize)
	b[0], b[1] = indexMajor, 3
	binary.LittleEndian.PutUint16(b[2:], baseHeaderSize)
	binary.LittleEndian.PutUint32(b[4:], 232)
	binary.LittleEndian.PutUint32(b[8:], 40)
	b[12] = compatLittleEndian
	binary.LittleEndian.PutUint32(b[16:], indexID)
	binary.LittleEndian.PutUint32(b[24:], validity)
	binary.LittleEndian.PutUint32(b[28:], next)
	binary.LittleEndian.PutUint32(b[60:], seq)
	binary.LittleEndian.PutUint32(b[64:], head)
	binary.LittleEndian.PutUint32(b[68:], head)
	return b
}

const id = 0x6b170d23

func TestParse(t *testing.T) {
	t.Parallel()
	first := newLog(id, 2, 0, 0).set(idxUIDValidity, 1111).appendUIDs(1, 2, 3).expunge(1, 3)
	// A snapshot taken after the first records: what follows it moves the UIDs on.
	early := newLog(id, 2, 0, 0).set(idxUIDValidity, 1111).appendUIDs(1, 2)
	head := uint32(len(early.b))
	withTail := newLog(id, 2, 0, 0).set(idxUIDValidity, 1111).appendUIDs(1, 2).appendUIDs(3, 4).expunge(1, 4)
	// Rotated: the snapshot points into the older log.
	older := newLog(id, 3, 2, 500).set(idxUIDValidity, 2222).appendUIDs(5)
	olderHead := uint32(len(older.b))
	older.appendUIDs(6)
	newer := newLog(id, 4, 3, uint32(len(older.b))).appendUIDs(7).set(idxNextUID, 20)
	for _, tc := range []struct {
		name             string
		index, log, prev []byte
		want             UIDs
	}{
		{"log only", nil, first.bytes(), nil, UIDs{1111, 4}},
		{"next UID set by a header update", nil, newLog(id, 1, 0, 0).set(idxUIDValidity, 1111).appendUIDs(1).set(idxNextUID, 10).bytes(), nil, UIDs{1111, 10}},
		{"next UID never goes down", nil, newLog(id, 1, 0, 0).set(idxUIDValidity, 1111).appendUIDs(1, 7).set(idxNextUID, 3).bytes(), nil, UIDs{1111, 8}},
		{"UIDVALIDITY changed later", nil, newLog(id, 1, 0, 0).set(idxUIDValidity, 1111).appendUIDs(1).set(idxUIDValidity, 3333).bytes(), nil, UIDs{3333, 2}},
		{"snapshot, then the log from where it stopped", snapshot(id, 1111, 3, 2, head), withTail.bytes(), nil, UIDs{1111, 5}},
		{"snapshot only", snapshot(id, 1111, 9, 2, 40), nil, nil, UIDs{1111, 9}},
		{"snapshot in the rotated log", snapshot(id, 2222, 6, 3, olderHead), newer.bytes(), older.bytes(), UIDs{2222, 20}},
		{"snapshot synced up to the rotation", snapshot(id, 2222, 7, 3, uint32(len(older.b))), newer.bytes(), nil, UIDs{2222, 20}},
		{"log that starts anew resets the snapshot", snapshot(id, 1111, 50, 2, 40), newLog(id, 5, 0, 0).set(idxUIDValidity, 4444).set(idxNextUID, 1).bytes(), nil, UIDs{4444, 1}},
		{"no snapshot, first log rotated", nil, newLog(id, 2, 1, 0).appendUIDs(4).bytes(), newLog(id, 1, 0, 0).set(idxUIDValidity, 1111).appendUIDs(1, 2, 3).bytes(), UIDs{1111, 5}},
		{"record being written ends the log", nil, append(first.bytes(), 0, 0, 0, 0, 2, 0, 0, 0), nil, UIDs{1111, 4}},
		{"record cut short ends the log", nil, append(first.bytes(), encodeSize(16)...), nil, UIDs{1111, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.index, tc.log, tc.prev)
			if err != nil || got != tc.want {
				t.Errorf("Parse: %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	good := newLog(id, 2, 0, 0).set(idxUIDValidity, 1111).appendUIDs(1)
	corrupt := func(b []byte, off int, v ...byte) []byte {
		b = append([]byte(nil), b...)
		copy(b[off:], v)
		return b
	}
	bigEndian := snapshot(id, 1, 2, 2, 40)
	bigEndian[12] = 0
	for _, tc := range []struct {
		name             string
		index, log, prev []byte
		want             string
	}{
		{"log shorter than its header", nil, good.bytes()[:30], nil, "shorter than a log header"},
		{"log of another version", nil, corrupt(good.bytes(), 0, 2), nil, "version 2.3"},
		{"log from a big-endian machine", nil, corrupt(good.bytes(), 32, 0), nil, "big-endian"},
		{"log header size beyond the file", nil, corrupt(good.bytes(), 2, 0xff, 0x7f), nil, "header size"},
		{"record size without its marker bits", nil, corrupt(good.bytes(), 40, 0, 0, 0, 3), nil, "record size field"},
		{"record shorter than its header", nil, corrupt(good.bytes(), 40, 0x80, 0x80, 0x80, 0x81), nil, "record size field"},
		{"header update outside the header", nil, newLog(id, 1, 0, 0).set(118, 1).bytes(), nil, "outside the header"},
		{"header update longer than its record", nil, newLog(id, 1, 0, 0).record(typeHeaderUpdate, []byte{24, 0, 40, 0, 1, 2, 3, 4}).bytes(), nil, "header update of 40 bytes"},
		{"append of a partial record", nil, newLog(id, 1, 0, 0).record(typeAppend, []byte{1, 0, 0, 0}).bytes(), nil, "not a multiple"},
		{"append below the next UID", nil, newLog(id, 1, 0, 0).set(idxUIDValidity, 1).appendUIDs(5, 3).bytes(), nil, "append of UID 3"},
		{"append of UID 0", nil, newLog(id, 1, 0, 0).appendUIDs(0).bytes(), nil, "append of UID 0"},
		{"no UIDVALIDITY", nil, newLog(id, 1, 0, 0).appendUIDs(1).bytes(), nil, "no UIDVALIDITY"},
		{"first logs gone, no snapshot", nil, newLog(id, 3, 2, 100).appendUIDs(9).bytes(), nil, "logs before"},
		{"snapshot of another version", corrupt(snapshot(id, 1, 2, 2, 40), 0, 6), good.bytes(), nil, "version 6.3"},
		{"snapshot from a big-endian machine", bigEndian, good.bytes(), nil, "big-endian"},
		{"snapshot cut short", snapshot(id, 1, 2, 2, 40)[:50], good.bytes(), nil, "shorter than an index header"},
		{"snapshot and log of two indexes", snapshot(id+1, 1, 2, 2, 40), good.bytes(), nil, "index id"},
		{"snapshot newer than the log", snapshot(id, 1, 2, 3, 40), good.bytes(), nil, "older than"},
		{"snapshot offset beyond the log", snapshot(id, 1, 2, 2, 4000), good.bytes(), nil, "outside"},
		{"logs missing between snapshot and log", snapshot(id, 1, 2, 2, 40), newLog(id, 4, 3, 60).appendUIDs(3).bytes(), nil, "are gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.index, tc.log, tc.prev)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: %+v, %v; want ErrMalformed with %q", got, err, tc.want)
			}
		})
	}
	if _, err := Parse(nil, nil, nil); !errors.Is(err, ErrNoIndex) {
		t.Errorf("no files: %v, want ErrNoIndex", err)
	}
}

// FuzzParse: whatever the files hold, Parse answers without panicking, and what it accepts
// has a UIDVALIDITY and a next UID.
func FuzzParse(f *testing.F) {
	older := newLog(id, 3, 2, 500).set(idxUIDValidity, 2222).appendUIDs(5)
	f.Add(snapshot(id, 1111, 3, 2, 40), newLog(id, 2, 0, 0).set(idxUIDValidity, 1111).appendUIDs(1, 2).expunge(1, 2).bytes(), []byte(nil))
	f.Add([]byte(nil), newLog(id, 4, 3, 60).appendUIDs(6).bytes(), older.bytes())
	f.Fuzz(func(t *testing.T, index, log, prev []byte) {
		u, err := Parse(index, log, prev)
		if err == nil && (u.UIDValidity == 0 || u.NextUID == 0) {
			t.Fatalf("accepted %+v", u)
		}
	})
}

func writeIndexDir(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func openDir(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestReadMbox finds each mailbox's index where Dovecot's mbox storage keeps it, reads only
// regular files, follows no symlink and refuses a log too large.
func TestReadMbox(t *testing.T) {
	t.Parallel()
	log := newLog(id, 1, 0, 0).set(idxUIDValidity, 1234).appendUIDs(1, 2).bytes()
	root := writeIndexDir(t, map[string][]byte{
		".imap/INBOX/" + LogName:         log,
		"Lists/.imap/dovecot/" + LogName: newLog(id, 1, 0, 0).set(idxUIDValidity, 5678).set(idxNextUID, 9).bytes(),
		".imap/Empty/.keep":              nil,
		".imap/Big/" + LogName:           nil,
	})
	if err := os.Symlink(filepath.Join(root, ".imap/INBOX/"+LogName), filepath.Join(root, ".imap/Empty/"+LogName)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, ".imap/Fifo"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, ".imap/Fifo/"+LogName), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(root, ".imap/Big/"+LogName), MaxLogSize+1); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, ".imap/INBOX"), filepath.Join(root, ".imap/Linked")); err != nil {
		t.Fatal(err)
	}
	fd := openDir(t, root)
	for _, tc := range []struct {
		name string
		want UIDs
		err  string
	}{
		{"INBOX", UIDs{1234, 3}, ""},
		{"Lists/dovecot", UIDs{5678, 9}, ""},
		{"Archive", UIDs{}, ErrNoIndex.Error()},
		{"Empty", UIDs{}, "too many levels of symbolic links"},
		{"Linked", UIDs{}, ErrNoIndex.Error()},
		{"Fifo", UIDs{}, "not a regular file"},
		{"Big", UIDs{}, "more than the"},
		{"../INBOX", UIDs{}, "mailbox name"},
		{"/INBOX", UIDs{}, "mailbox name"},
	} {
		got, err := ReadMbox(fd, tc.name)
		if tc.err == "" && (err != nil || got != tc.want) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ReadMbox(%q): %+v, %v; want %+v, %q", tc.name, got, err, tc.want, tc.err)
		}
	}
}
