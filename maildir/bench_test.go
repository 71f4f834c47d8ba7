package maildir

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkAdd measures messages/s for 4 KiB messages, as a migration of a
// typical spool writes them. Batches hold the default 512 files.
func BenchmarkAdd(b *testing.B) {
	body := []byte("Subject: benchmark\n\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef012345678912345\n", 64))[:4096]
	for _, mode := range []Fsync{FsyncBatch, FsyncAlways, FsyncNone} {
		b.Run(mode.String(), func(b *testing.B) {
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
			r := bytes.NewReader(body)
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.Reset(body)
				if _, err := w.Add(&Message{Date: date, Position: int64(i), New: true, Content: r}); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Commit(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
