package export

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/maildir"
)

// benchMaildir writes n messages of the kind bench/corpus makes (mostly 2-12 KB of text, one
// in a hundred with a 60 KB attachment) into a Maildir under dir, and returns it open with
// the total of the message sizes.
func benchMaildir(b *testing.B, dir string, n int) (*maildir.Dir, int64) {
	b.Helper()
	d, err := maildir.Open(filepath.Join(dir, "Maildir"), true)
	must(b, err)
	w, err := maildir.NewWriter(d, maildir.Options{Host: "bench", Fsync: maildir.FsyncNone})
	must(b, err)
	r := rand.New(rand.NewPCG(1, 2))
	line := strings.Repeat("the mailbox migration report is attached please ", 2)[:72] + "\n"
	var total int64
	date := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		var sb strings.Builder
		fmt.Fprintf(&sb, "Return-Path: <u%d@example.org>\nFrom: u%d@example.org\nTo: you@example.org\nSubject: message %d\nDate: %s\nMessage-ID: <%d@example.org>\n\n",
			i%97, i%97, i, date.Format(time.RFC1123Z), i)
		size := 2000 + r.IntN(10000)
		if i%100 == 0 {
			size += 60000
		}
		for sb.Len() < size {
			sb.WriteString(line)
		}
		flags := ""
		if i%3 != 0 {
			flags = "S"
		}
		res, err := w.Add(&maildir.Message{Date: date, Flags: flags, Position: int64(i), Content: strings.NewReader(sb.String())})
		must(b, err)
		total += res.Size
		date = date.Add(time.Minute)
	}
	must(b, w.Commit())
	must(b, w.Close())
	return d, total
}

// BenchmarkExport measures, on a Maildir of 20,000 messages, the floor (every file copied in
// UID order into one file, then fsync, as `cat` and `sync` would), Write with an fsync, and
// Write with Verify; b.SetBytes is the messages' bytes, so MB/s compare directly.
func BenchmarkExport(b *testing.B) {
	dir := b.TempDir()
	d, total := benchMaildir(b, dir, 20000)
	defer d.Close()
	out := filepath.Join(dir, "out.mbox")
	run := func(b *testing.B, fn func(l *maildir.Listing, f *os.File) error) {
		b.SetBytes(total)
		for range b.N {
			l, err := d.List()
			must(b, err)
			f, err := os.Create(out)
			must(b, err)
			must(b, fn(l, f))
			must(b, f.Sync())
			must(b, f.Close())
			must(b, l.Close())
		}
	}
	b.Run("floor", func(b *testing.B) {
		run(b, func(l *maildir.Listing, f *os.File) error {
			return l.Each(func(m *maildir.Listed) error {
				_, err := io.Copy(f, m.File)
				return err
			})
		})
	})
	opts := Options{Location: time.UTC}
	b.Run("write", func(b *testing.B) {
		run(b, func(l *maildir.Listing, f *os.File) error {
			_, err := Write(f, l, opts)
			return err
		})
	})
	b.Run("write+verify", func(b *testing.B) {
		run(b, func(l *maildir.Listing, f *os.File) error {
			res, err := Write(f, l, opts)
			if err != nil {
				return err
			}
			_, err = Verify(f, res, l, opts)
			return err
		})
	})
}
