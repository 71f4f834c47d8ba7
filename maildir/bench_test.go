package maildir

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var benchBody = []byte("Subject: benchmark\n\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef012345678912345\n", 64))[:4096]

// BenchmarkAdd measures messages/s for 4 KiB messages, as a migration of a
// typical spool writes them. Batches hold the default 512 files.
func BenchmarkAdd(b *testing.B) {
	for _, mode := range []Fsync{FsyncBatch, FsyncAlways, FsyncNone} {
		b.Run(mode.String(), func(b *testing.B) {
			benchAdd(b, mode)
		})
	}
}

// BenchmarkAddBusyDisk is BenchmarkAdd while another writer keeps dirtying a
// large file on the same file system, outside the Maildir: the cost of a
// batch must not depend on data that is not the Maildir's.
func BenchmarkAddBusyDisk(b *testing.B) {
	for _, mode := range []Fsync{FsyncBatch, FsyncAlways} {
		b.Run(mode.String(), func(b *testing.B) {
			defer dirtyFile(b)()
			benchAdd(b, mode)
		})
	}
}

func benchAdd(b *testing.B, mode Fsync) {
	d, err := Open(filepath.Join(b.TempDir(), "Maildir"), true)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	w, err := NewWriter(d, Options{Host: testHost, Fsync: mode})
	if err != nil {
		b.Fatal(err)
	}
	date := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	r := bytes.NewReader(benchBody)
	b.SetBytes(int64(len(benchBody)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Reset(benchBody)
		if _, err := w.Add(&Message{Date: date, Position: int64(i), New: true, Content: r}); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSmallMailbox measures whole conversions of mailboxes of a few
// messages (most users on a server): NewWriter, Add, Commit, in a fresh
// Maildir each time. One op is one mailbox.
func BenchmarkSmallMailbox(b *testing.B) {
	for _, busy := range []bool{false, true} {
		for _, n := range []int{1, 3, 10} {
			name := strconv.Itoa(n) + "msgs"
			if busy {
				name += "/busydisk"
			}
			b.Run(name, func(b *testing.B) {
				if busy {
					defer dirtyFile(b)()
				}
				benchSmallMailbox(b, n)
			})
		}
	}
}

func benchSmallMailbox(b *testing.B, n int) {
	root := b.TempDir()
	date := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	r := bytes.NewReader(benchBody)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := Open(filepath.Join(root, "Maildir"+strconv.Itoa(i)), true)
		if err != nil {
			b.Fatal(err)
		}
		w, err := NewWriter(d, Options{Host: testHost})
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < n; j++ {
			r.Reset(benchBody)
			if _, err := w.Add(&Message{Date: date, Position: int64(j), New: true, Content: r}); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/mailbox")
}

// dirtyFile starts a goroutine that writes a new 256 MiB file over and over
// in a directory next to the benchmark's Maildirs, never syncing it, the way
// another service on a mail server writes; the returned function stops it
// and removes the file.
func dirtyFile(b *testing.B) (stop func()) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "other-service.log")
	chunk := bytes.Repeat([]byte("other service data\n"), 1<<20/19+1)[:1<<20]
	var done atomic.Bool
	var wg sync.WaitGroup
	var written atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			f, err := os.Create(path)
			if err != nil {
				b.Error(err)
				return
			}
			for i := 0; i < 256 && !done.Load(); i++ {
				if _, err := f.Write(chunk); err != nil {
					b.Error(err)
					break
				}
				written.Add(int64(len(chunk)))
			}
			f.Close()
			os.Remove(path)
		}
	}()
	// Let it get ahead, so the first batch already has company.
	for written.Load() < 64<<20 {
		time.Sleep(time.Millisecond)
	}
	return func() {
		done.Store(true)
		wg.Wait()
		os.Remove(path)
	}
}

// BenchmarkAddAgain measures a re-run over a Maildir that already holds all
// of its 10,000 messages, each Add finding its file: messages with a date of
// their own, messages without one written under that name, and messages
// without one that an earlier version named after the source's mtime (the
// first Add lists cur/ and new/ again to find those). One op is one re-run.
func BenchmarkAddAgain(b *testing.B) {
	const n = 10000
	mtime := time.Unix(1700000000, 123456789)
	date := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name        string
		first, then Message
	}{
		{"dated", Message{Date: date}, Message{Date: date}},
		{"undated", Message{MTime: mtime}, Message{MTime: mtime.Add(time.Hour)}},
		{"undated-earlier-names", Message{Date: mtime}, Message{MTime: mtime.Add(time.Hour)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d, err := Open(filepath.Join(b.TempDir(), "Maildir"), true)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			add := func(m Message) {
				w, err := NewWriter(d, Options{Host: testHost, Fsync: FsyncNone})
				if err != nil {
					b.Fatal(err)
				}
				r := bytes.NewReader(benchBody)
				for i := 0; i < n; i++ {
					r.Reset(benchBody)
					m.Position, m.New, m.Content = int64(i), true, r
					if _, err := w.Add(&m); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			add(tc.first)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				add(tc.then)
			}
			b.StopTimer()
			if es, err := os.ReadDir(filepath.Join(d.Path(), "new")); err != nil || len(es) != n {
				b.Fatalf("%d files (%v), want %d", len(es), err, n)
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
