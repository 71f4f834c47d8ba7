package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// BenchmarkList lists a Maildir of 100,000 messages as a migration names them, all listed in
// dovecot-uidlist, and reports the heap a Listing holds per message (heap-B/msg) besides
// the time of List.
func BenchmarkList(b *testing.B) {
	const n = 100_000
	md := filepath.Join(b.TempDir(), "Maildir")
	for _, s := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(md, s), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	var ul strings.Builder
	ul.WriteString("3 V1700000000 N100001 G0123456789abcdef0123456789abcdef\n")
	for i := 1; i <= n; i++ {
		base := fmt.Sprintf("%d.M%dQ%dX%016x.mail.example.org,S=5,W=6", 1600000000+i, i%1000000, i, i*7919)
		if err := os.WriteFile(filepath.Join(md, "cur", base+":2,S"), []byte("x\n\ny\n"[:5]), 0o600); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&ul, "%d :%s\n", i, base)
	}
	if err := os.WriteFile(filepath.Join(md, uidlistName), []byte(ul.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	d, err := Open(md, false)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var perMsg float64
	b.ResetTimer()
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		l, err := d.List()
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perMsg = float64(after.HeapAlloc-before.HeapAlloc) / n
		if l.Messages != n {
			b.Fatalf("%d messages", l.Messages)
		}
		runtime.KeepAlive(l)
		l.Close()
	}
	b.ReportMetric(perMsg, "heap-B/msg")
}
