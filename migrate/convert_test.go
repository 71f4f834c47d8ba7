package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
)

func TestFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		meta  mbox.Meta
		flags string
		isNew bool
	}{
		{"no status at all", mbox.Meta{}, "", true},
		{"empty Status", mbox.Meta{Status: "", HasStatus: true}, "", true},
		{"seen by a client, not read", mbox.Meta{Status: "O", HasStatus: true}, "", false},
		{"read", mbox.Meta{Status: "RO", HasStatus: true}, "S", false},
		{"read without O", mbox.Meta{Status: "R", HasStatus: true}, "S", false},
		{"answered", mbox.Meta{XStatus: "A", HasXStatus: true}, "R", false},
		{"flagged", mbox.Meta{XStatus: "F"}, "F", false},
		{"draft", mbox.Meta{XStatus: "T"}, "D", false},
		{"deleted", mbox.Meta{XStatus: "D"}, "T", false},
		{"everything, repeated, in mbox order", mbox.Meta{Status: "OR", XStatus: "DFTAA"}, "DFRST", false},
		{"keywords alone go to cur", mbox.Meta{Keywords: []string{"work"}}, "", false},
		{"unknown letters ignored", mbox.Meta{Status: "XZ", XStatus: "Q"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags, isNew := messageFlags(tt.meta)
			if flags != tt.flags || isNew != tt.isNew {
				t.Errorf("messageFlags(%+v) = %q, %v; want %q, %v", tt.meta, flags, isNew, tt.flags, tt.isNew)
			}
		})
	}
}

const twoMessages = "From a@example.org Mon Jan  6 10:00:00 2025\n" +
	"Subject: one\nStatus: RO\n\none\n\n" +
	"From b@example.org Mon Jan  6 11:00:00 2025\n" +
	"Subject: two\n\ntwo\n\n"

const appended = "From c@example.org Mon Jan  6 12:00:00 2025\n" +
	"Subject: three\n\nthree\n\n"

func convertString(t *testing.T, d *maildir.Dir, src string, opts ConvertOptions) (Stats, []MessageRecord) {
	t.Helper()
	var recs []MessageRecord
	opts.OnMessage = func(r MessageRecord) { recs = append(recs, r) }
	opts.Location = time.UTC
	opts.Maildir.Host = "test.example"
	st, err := Convert(context.Background(), strings.NewReader(src), int64(len(src)), time.Unix(0, 0), d, opts)
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	return st, recs
}

// TestConvertResume is what the batch run relies on: the records say where each message came
// from and where it went, and a second conversion from EndOffset adds only what was appended.
func TestConvertResume(t *testing.T) {
	t.Parallel()
	d, err := maildir.Open(filepath.Join(t.TempDir(), "Maildir"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	st, recs := convertString(t, d, twoMessages, ConvertOptions{})
	if st.Messages != 2 || st.Written != 2 || st.EndOffset != int64(len(twoMessages)) || st.Bytes != int64(len(twoMessages)) {
		t.Fatalf("first run: %+v", st)
	}
	if len(recs) != 2 {
		t.Fatalf("first run: %d records, want 2", len(recs))
	}
	sum := sha256.Sum256([]byte("Subject: one\nStatus: RO\n\none\n"))
	if recs[0].SHA256 != hex.EncodeToString(sum[:]) || recs[0].Offset != 0 || recs[0].Sub != "cur" || recs[0].UID != 1 {
		t.Errorf("record 0 = %+v", recs[0])
	}
	stored, err := os.ReadFile(filepath.Join(d.Path(), recs[0].Sub, recs[0].Name))
	if err != nil {
		t.Fatal(err)
	}
	if string(stored) != "Subject: one\n\none\n" {
		t.Errorf("stored message 0 = %q", stored)
	}
	storedSum := sha256.Sum256(stored)
	if recs[0].StoredSHA256 != hex.EncodeToString(storedSum[:]) {
		t.Errorf("record 0 stored sha256 %s does not match the file", recs[0].StoredSHA256)
	}
	if recs[1].Offset != int64(strings.Index(twoMessages, "From b")) || recs[1].Sub != "new" || recs[1].UID != 2 {
		t.Errorf("record 1 = %+v", recs[1])
	}

	grown := twoMessages + appended
	st, recs = convertString(t, d, grown, ConvertOptions{StartOffset: st.EndOffset, StartIndex: 2})
	if st.Messages != 1 || st.Written != 1 || st.EndOffset != int64(len(grown)) {
		t.Fatalf("resumed run: %+v", st)
	}
	if len(recs) != 1 || recs[0].Index != 2 || recs[0].Offset != int64(len(twoMessages)) || recs[0].UID != 3 {
		t.Fatalf("resumed run records: %+v", recs)
	}
	if !strings.Contains(recs[0].Name, "Q2X") {
		t.Errorf("resumed message name %q does not carry its position 2", recs[0].Name)
	}

	// Converting the whole file again finds everything there.
	st, _ = convertString(t, d, grown, ConvertOptions{})
	if st.Written != 0 || st.Existed != 3 {
		t.Fatalf("full re-run: %+v", st)
	}
}

// TestConvertCancel: an interrupted conversion leaves no tmp file and reports the context's error.
func TestConvertCancel(t *testing.T) {
	t.Parallel()
	d, err := maildir.Open(filepath.Join(t.TempDir(), "Maildir"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = Convert(ctx, strings.NewReader(twoMessages+appended), int64(len(twoMessages+appended)), time.Unix(0, 0), d, ConvertOptions{
		Progress: func(int64) {
			if n++; n == 1 {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Convert after cancel: %v, want context.Canceled", err)
	}
	ents, err := os.ReadDir(filepath.Join(d.Path(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("tmp/ holds %d files after an interrupted run", len(ents))
	}
}

// TestConvertNotMbox: CheckMbox refuses before anything is created.
func TestConvertNotMbox(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"\x01\x01\x01\x01\n", "Dear Bob,\n\nFrom a Mon Jan  6 10:00:00 2025\n"} {
		if err := CheckMbox(bytes.NewReader([]byte(src)), int64(len(src))); !errors.Is(err, mbox.ErrNotMbox) {
			t.Errorf("CheckMbox(%q) = %v, want ErrNotMbox", src, err)
		}
	}
	for _, src := range []string{"", "\n\n", twoMessages} {
		if err := CheckMbox(bytes.NewReader([]byte(src)), int64(len(src))); err != nil {
			t.Errorf("CheckMbox(%q) = %v, want nil", src, err)
		}
	}
}

// BenchmarkConvertRetained converts a mailbox of many small messages and reports the heap
// that stays in use per message between two flushes far apart (retained-B/msg): what makes
// memory grow with the number of messages, which must stay near what the writer needs to
// recognise a message it already wrote. One op is one mailbox of 6×4096 messages.
func BenchmarkConvertRetained(b *testing.B) {
	const first, last = flushEveryMessages, 5 * flushEveryMessages
	var src bytes.Buffer
	for i := range last + flushEveryMessages {
		fmt.Fprintf(&src, "From bench@example.org Mon Jan  1 10:00:00 2024\nSubject: message %d\nMessage-ID: <%d@example.org>\n\n%s\n", i, i, benchBody)
	}
	path := filepath.Join(b.TempDir(), "mbox")
	if err := os.WriteFile(path, src.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var retained float64
	b.SetBytes(int64(src.Len()))
	for i := 0; b.Loop(); i++ {
		d, err := maildir.Open(filepath.Join(b.TempDir(), "Maildir"+strconv.Itoa(i)), true)
		if err != nil {
			b.Fatal(err)
		}
		var atFirst uint64
		_, err = Convert(context.Background(), f, int64(src.Len()), time.Now(), d, ConvertOptions{
			Maildir: maildir.Options{Host: "mx.example.org", Fsync: maildir.FsyncNone},
			OnMessage: func(r MessageRecord) {
				// The first record of a batch: the same state of the converter both times.
				switch r.Index {
				case first:
					atFirst = heap()
				case last:
					retained = (float64(heap()) - float64(atFirst)) / (last - first)
				}
			},
		})
		d.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(retained, "retained-B/msg")
}

// BenchmarkConvert measures the whole convert path per message: the mbox read, the header
// filter, hashing, the Maildir writer and its syncs, for 2,048 messages of about 1 KiB, in the
// two durable modes and with no fsync. One op is one mailbox, into a fresh Maildir.
func BenchmarkConvert(b *testing.B) {
	const n = 2048
	var src bytes.Buffer
	for i := range n {
		fmt.Fprintf(&src, "From bench@example.org Mon Jan  1 10:%02d:%02d 2024\nSubject: message %d\nMessage-ID: <%d@example.org>\nStatus: RO\n\n%s\n", i/60%60, i%60, i, i, benchBody)
	}
	for _, mode := range []maildir.Fsync{maildir.FsyncSyncfs, maildir.FsyncBatch, maildir.FsyncNone} {
		b.Run(mode.String(), func(b *testing.B) {
			b.SetBytes(int64(src.Len()))
			for i := 0; b.Loop(); i++ {
				d, err := maildir.Open(filepath.Join(b.TempDir(), "Maildir"+strconv.Itoa(i)), true)
				if err != nil {
					b.Fatal(err)
				}
				st, err := Convert(context.Background(), bytes.NewReader(src.Bytes()), int64(src.Len()), time.Now(), d, ConvertOptions{
					Maildir: maildir.Options{Host: "mx.example.org", Fsync: mode},
				})
				d.Close()
				if err != nil {
					b.Fatal(err)
				}
				if st.Written != n {
					b.Fatalf("wrote %d messages of %d", st.Written, n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
		})
	}
}

var benchBody = strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\n", 16)

// TestConvertResumePoints: each flush is a resume point at a message boundary, with every
// message before it listed in dovecot-uidlist; an interrupted conversion leaves every file it
// made durable listed, and converting again from the last resume point writes nothing twice.
func TestConvertResumePoints(t *testing.T) {
	t.Parallel()
	var src strings.Builder
	var bounds []int64
	for i := range 5 {
		fmt.Fprintf(&src, "From x@example.org Mon Jan  1 10:00:0%d 2024\nSubject: %d\n\nbody %d\n\n", i, i, i)
		bounds = append(bounds, int64(src.Len()))
	}
	md := filepath.Join(t.TempDir(), "Maildir")
	d, err := maildir.Open(md, true)
	must(t, err)
	defer d.Close()
	listed := func() int {
		b, err := os.ReadFile(filepath.Join(md, "dovecot-uidlist"))
		must(t, err)
		return strings.Count(string(b), "\n") - 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	var points []Stats
	opts := ConvertOptions{
		Location: time.UTC, FlushEvery: 2,
		Maildir: maildir.Options{Host: "test.example", Fsync: maildir.FsyncNone},
		OnDurable: func(s Stats) {
			points = append(points, s)
			if n := listed(); int64(n) < s.Messages {
				t.Errorf("resume point %d: %d messages before it, %d listed", s.EndOffset, s.Messages, n)
			}
			if len(points) == 2 {
				cancel()
			}
		},
	}
	_, err = Convert(ctx, strings.NewReader(src.String()), int64(src.Len()), time.Unix(0, 0), d, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Convert: %v, want context.Canceled", err)
	}
	if len(points) != 2 || points[0].EndOffset != bounds[1] || points[0].Messages != 2 || points[1].EndOffset != bounds[3] || points[1].Messages != 4 {
		t.Fatalf("resume points %+v, want after messages 2 and 4 (%d, %d)", points, bounds[1], bounds[3])
	}
	files := 0
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(md, sub))
		must(t, err)
		files += len(ents)
	}
	if n := listed(); n != files || files < 4 {
		t.Errorf("after the interruption: %d files, %d listed", files, n)
	}
	opts.OnDurable, opts.StartOffset, opts.StartIndex = nil, points[1].EndOffset, points[1].Messages
	st, err := Convert(context.Background(), strings.NewReader(src.String()), int64(src.Len()), time.Unix(0, 0), d, opts)
	must(t, err)
	if st.Messages != 1 || st.Written+int64(files) != 5 || listed() != 5 {
		t.Errorf("resumed: %+v after %d files; %d listed, want 5", st, files, listed())
	}
}

// looseUndated is a loose-mode mbox of n messages with neither a From_ date nor a Date:
// header, as a bounce spool of "From MAILER-DAEMON" lines is: each message's date comes
// from the mbox file's mtime.
func looseUndated(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "From MAILER-DAEMON\nSubject: bounce %d\n\nundeliverable %d\n\n", i, i)
	}
	return b.String()
}

// An interrupted conversion of messages dated by the mbox's mtime, run again after that
// mtime changed (a delivery, a touch), finds every file the first run made durable and
// writes only the rest: the mtime is each file's date, never part of its name.
func TestConvertUndatedAgainAfterMTimeChange(t *testing.T) {
	t.Parallel()
	const n, stopAt = 30, 10
	src := looseUndated(n)
	d, err := maildir.Open(filepath.Join(t.TempDir(), "Maildir"), true)
	must(t, err)
	defer d.Close()
	opts := ConvertOptions{Location: time.UTC, Maildir: maildir.Options{Host: "test.example", BatchFiles: 4}}
	ctx, cancel := context.WithCancel(context.Background())
	seen := 0
	opts.Progress = func(int64) {
		if seen++; seen == stopAt {
			cancel()
		}
	}
	first := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	if _, err := Convert(ctx, strings.NewReader(src), int64(len(src)), first, d, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Convert: %v", err)
	}
	entries, err := d.Messages()
	must(t, err)
	durable := len(entries)
	if durable == 0 || durable >= n {
		t.Fatalf("%d files after the interruption; want some of the %d", durable, n)
	}

	later := first.Add(25 * time.Hour)
	opts.Progress = nil
	var events []Event
	opts.Notice = func(e Event) { events = append(events, e) }
	st, err := Convert(context.Background(), strings.NewReader(src), int64(len(src)), later, d, opts)
	must(t, err)
	if st.Messages != n || st.Existed != int64(durable) || st.Written != int64(n-durable) {
		t.Fatalf("re-run after the mtime changed: %+v; want %d found and %d written", st, durable, n-durable)
	}
	if entries, err = d.Messages(); err != nil || len(entries) != n {
		t.Fatalf("%d files after the re-run (%v), want each of the %d messages once", len(entries), err, n)
	}
	fromMTime := 0
	for _, e := range events {
		if e.Kind == EventDateFromMTime {
			fromMTime++
		}
	}
	if fromMTime != n {
		t.Errorf("%d date-from-mtime notices, want %d", fromMTime, n)
	}
	// Those written by the re-run show its mtime; the name holds no date.
	for _, e := range entries {
		if !strings.HasPrefix(e.Name, "0.M0Q") {
			t.Errorf("%s/%s: name of an undated message not 0.M0Q...", e.Sub, e.Name)
		}
		fi, err := os.Stat(filepath.Join(d.Path(), e.Sub, e.Name))
		must(t, err)
		if pos := positionOf(t, e.Name); pos >= int64(durable) && !fi.ModTime().Equal(later) {
			t.Errorf("%s: mtime %v, want %v", e.Name, fi.ModTime(), later)
		}
	}
}

// positionOf returns the Q<position> of a name the writer gave.
func positionOf(t *testing.T, name string) int64 {
	t.Helper()
	o, ok := maildir.ParseOwn(name)
	if !ok {
		t.Fatalf("%s: not a name of ours", name)
	}
	return o.Seq
}

// TestConvertRecoversDeadRun: Convert cleans up after a maildirmig that died on this host (its
// tmp/ files and its run marker, whose lock the kernel dropped), says so in a recovered event,
// and leaves tmp/ empty when it ends.
func TestConvertRecoversDeadRun(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	d, err := maildir.Open(md, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	host := "mx.example.org"
	// The pid does not matter: the marker is not locked, so its run is dead.
	dead := []string{".maildirmig.P4194304I0123abcd." + host, "1700000000.P4194304I0123abcdQ0R001122334455." + host}
	for _, n := range dead {
		if err := os.WriteFile(filepath.Join(md, "tmp", n), []byte("half a message"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var events []Event
	_, err = Convert(context.Background(), strings.NewReader(twoMessages), int64(len(twoMessages)), time.Unix(0, 0), d, ConvertOptions{
		Maildir: maildir.Options{Host: host, Fsync: maildir.FsyncNone},
		Notice:  func(e Event) { events = append(events, e) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(md, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("tmp/ holds %d files after Convert", len(ents))
	}
	want := Event{Kind: EventRecovered, Message: -1, Detail: "removed 1 file left in tmp/ by a maildirmig that died (pid 4194304)"}
	if len(events) != 1 || events[0] != want {
		t.Errorf("events %+v, want %+v", events, want)
	}
}

// fileTimeKept sets the mtime of a fresh file in dir to t and returns the mtime the file
// system kept: the kernel keeps a date it cannot hold at the nearest one it can.
func fileTimeKept(t *testing.T, dir string, at time.Time) time.Time {
	t.Helper()
	f, err := os.CreateTemp(dir, "probe")
	must(t, err)
	defer os.Remove(f.Name())
	defer f.Close()
	ts := [2]unix.Timespec{{Sec: at.Unix()}, {Sec: at.Unix()}}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, f.Name(), ts[:], 0))
	var st unix.Stat_t
	must(t, unix.Fstat(int(f.Fd()), &st))
	return time.Unix(st.Mtim.Unix())
}

// TestConvertDatesOutOfRange: From_ years a file time cannot hold, or could not before. Year
// 2500 once became 1915 and 9999 became 1901 (the nanoseconds since 1970 overflowed), and
// 1000, 1960 and 1969 became 1970 without a word. Each file now gets its date as mtime where
// the file system holds it, else the nearest date it holds (ext4: 1901-12-13 to 2446-05-10),
// with a date-out-of-range notice for exactly those. The file names, the messages' identity,
// are the ones earlier versions gave: the date's seconds, 0 before 1970.
func TestConvertDatesOutOfRange(t *testing.T) {
	t.Parallel()
	years := []int{1000, 1960, 1969, 2500, 9999, 2024}
	var src strings.Builder
	for i, y := range years {
		fmt.Fprintf(&src, "From a@example.org Mon Jan  1 10:00:00 %d\nSubject: %d\n\nmessage %d\n\n", y, y, i)
	}
	dir := filepath.Join(t.TempDir(), "Maildir")
	d, err := maildir.Open(dir, true)
	must(t, err)
	defer d.Close()
	var events []Event
	var recs []MessageRecord
	opts := ConvertOptions{Location: time.UTC, Maildir: maildir.Options{Host: "test.example"},
		Notice: func(e Event) { events = append(events, e) }, OnMessage: func(r MessageRecord) { recs = append(recs, r) }}
	st, err := Convert(context.Background(), strings.NewReader(src.String()), int64(src.Len()), time.Now(), d, opts)
	must(t, err)
	if st.Written != int64(len(years)) || len(recs) != len(years) {
		t.Fatalf("%+v, %d records; want %d written", st, len(recs), len(years))
	}
	notices := map[int64]string{}
	for _, e := range events {
		if e.Kind == EventDateOutOfRange {
			notices[e.Message] = e.Detail
		}
	}
	for i, y := range years {
		date := time.Date(y, 1, 1, 10, 0, 0, 0, time.UTC)
		kept := fileTimeKept(t, t.TempDir(), date)
		r := recs[i]
		fi, err := os.Lstat(filepath.Join(dir, r.Sub, r.Name))
		must(t, err)
		got := fi.ModTime().UTC()
		t.Logf("year %d: mtime %s, name %s, notice %q", y, got.Format(time.RFC3339), r.Name, notices[int64(i)])
		if !got.Equal(kept) {
			t.Errorf("year %d: mtime %s, want %s, the nearest this file system holds", y, got, kept.UTC())
		}
		switch {
		case y < 1970 && (got.After(time.Unix(0, 0)) || got.Year() < 1901):
			t.Errorf("year %d: mtime %s is not the nearest date before 1970", y, got)
		case y > 2038 && got.Year() < 2038:
			t.Errorf("year %d: mtime %s went back in time", y, got)
		}
		if clamped := !kept.Equal(date); clamped != (notices[int64(i)] != "") {
			t.Errorf("year %d: mtime %s, notice %q: a notice must say exactly when the date could not be kept", y, got, notices[int64(i)])
		}
		secs := date.Unix()
		if secs < 0 {
			secs = 0
		}
		if want := fmt.Sprintf("%d.M0Q%dX", secs, i); !strings.HasPrefix(r.Name, want) {
			t.Errorf("year %d: name %s, want the name earlier versions gave, %s...", y, r.Name, want)
		}
	}
}

// TestConvertReadAhead: the conversion reads ahead on another goroutine (readahead.go), small
// messages whole and larger ones handed over to be streamed. Whatever the size of a message or
// of its header block, and around the size where one becomes the other, every record is what a
// plain read of the mbox gives (index, offset, size, SHA-256 of the source bytes), every file
// holds the bytes to store (StoredSHA256 is theirs), the UW pseudo-message is skipped, and
// the reader's notices are told in the order a plain read meets them.
func TestConvertReadAhead(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.WriteString("From MAILER-DAEMON Mon Jan  6 09:00:00 2025\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1700000000 0000000009\n\npseudo\n\n")
	line := "a body line of about sixty bytes, to fill messages with text\n"
	add := func(i int, header string, body int) {
		fmt.Fprintf(&b, "From x@example.org Mon Jan  6 10:%02d:00 2025\nSubject: %d\nStatus: RO\n%s\n", i%60, i, header)
		for b2 := 0; b2 < body; b2 += len(line) {
			b.WriteString(line[:min(len(line), body-b2)])
		}
		b.WriteString("\n")
	}
	for i, size := range []int{10, readAheadMax - 200, readAheadMax - 40, readAheadMax, readAheadMax + 100, 3 * readAheadMax, 100, 0} {
		add(i, "", size)
	}
	// A header block larger than what is read whole, then a Content-Length that is wrong.
	add(100, strings.Repeat("X-Filler: "+strings.Repeat("h", 60)+"\n", readAheadMax/70+10), 50)
	add(101, "Content-Length: 5\n", 200)
	for i := range 40 {
		add(200+i, "", 300*i)
	}
	b.WriteString("From x@example.org Mon Jan  6 12:00:00 2025\nSubject: last\n\nno final newline")
	src := b.Bytes()

	type want struct {
		rec    MessageRecord
		stored [32]byte
	}
	var wants []want
	var wantNotices []string
	r := mbox.NewReader(bytes.NewReader(src), int64(len(src)), mbox.Options{Location: time.UTC, Notice: func(n mbox.Notice) {
		wantNotices = append(wantNotices, fmt.Sprintf("%s %d %d", n.Kind, n.Message, n.Offset))
	}})
	for {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		body, err := io.ReadAll(m.Body)
		must(t, err)
		w := want{rec: MessageRecord{Index: int64(m.Index), Offset: m.Offset, Size: m.Size(), SHA256: hexSum(append(bytes.Clone(m.Header), body...))}}
		w.stored = sha256.Sum256(append(mbox.StripMeta(m.Header), body...))
		wants = append(wants, w)
	}

	path := filepath.Join(t.TempDir(), "mbox")
	must(t, os.WriteFile(path, src, 0o600))
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	md := filepath.Join(t.TempDir(), "Maildir")
	d, err := maildir.Open(md, true)
	must(t, err)
	defer d.Close()
	var recs []MessageRecord
	var notices []string
	st, err := Convert(context.Background(), f, int64(len(src)), time.Now(), d, ConvertOptions{
		Location: time.UTC, FlushEvery: 7,
		Maildir:   maildir.Options{Host: "mx.example.org", Fsync: maildir.FsyncNone},
		OnMessage: func(r MessageRecord) { recs = append(recs, r) },
		Notice: func(e Event) {
			if strings.HasPrefix(e.Kind, "content-length") || strings.HasPrefix(e.Kind, "no-final") {
				notices = append(notices, fmt.Sprintf("%s %d %d", e.Kind, e.Message, e.Offset))
			}
		},
	})
	must(t, err)
	if st.EndOffset != int64(len(src)) || st.Skipped != 1 || int(st.Written) != len(wants)-1 {
		t.Errorf("stats %+v, want %d bytes, 1 skipped, %d written", st, len(src), len(wants)-1)
	}
	if len(recs) != len(wants) {
		t.Fatalf("%d records, want %d", len(recs), len(wants))
	}
	for i, r := range recs {
		w := wants[i]
		if r.Index != w.rec.Index || r.Offset != w.rec.Offset || r.Size != w.rec.Size || r.SHA256 != w.rec.SHA256 {
			t.Errorf("record %d: index %d offset %d size %d sha %s; a plain read: %d %d %d %s", i, r.Index, r.Offset, r.Size, r.SHA256, w.rec.Index, w.rec.Offset, w.rec.Size, w.rec.SHA256)
		}
		if r.Skipped {
			if i != 0 {
				t.Errorf("record %d skipped", i)
			}
			continue
		}
		stored, err := os.ReadFile(filepath.Join(md, r.Sub, r.Name))
		must(t, err)
		if sum := sha256.Sum256(stored); sum != w.stored || hex.EncodeToString(sum[:]) != r.StoredSHA256 {
			t.Errorf("record %d: file %s holds %d bytes of SHA-256 %x, want %x (record: %s)", i, r.Name, len(stored), sum, w.stored, r.StoredSHA256)
		}
	}
	if strings.Join(notices, "\n") != strings.Join(wantNotices, "\n") || len(wantNotices) < 2 {
		t.Errorf("notices:\n%s\nwant, as a plain read meets them:\n%s", strings.Join(notices, "\n"), strings.Join(wantNotices, "\n"))
	}
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
