package migrate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/maildir"
)

// smallMessages is an mbox of n messages of a hundred bytes or so.
func smallMessages(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "From a@example.org Mon Jan  1 10:00:00 2024\nSubject: %d\n\nbody\n\n", i)
	}
	return b.String()
}

// TestWorkerReportsMessagesAsRead: the worker's progress lines count the messages it reads as
// it reads them, at most progressMessages apart, while their records wait for the flush that
// makes them durable (every 4096 messages): the console's count follows the reading, not the
// flushes.
func TestWorkerReportsMessagesAsRead(t *testing.T) {
	t.Parallel()
	const n = 1000
	src := filepath.Join(t.TempDir(), "inbox")
	must(t, os.WriteFile(src, []byte(smallMessages(n)), 0o600))
	f, err := os.Open(src)
	must(t, err)
	defer f.Close()
	req := convertRequest(opConvert, ConvertOptions{Maildir: maildir.Options{Fsync: maildir.FsyncNone, Host: "testhost"}})
	req.Path = filepath.Join(t.TempDir(), "Maildir")
	var readBeforeRecords, read, records, lines int64
	err = serve(context.Background(), req, f, func(m workerMsg) {
		switch m.T {
		case msgProgress:
			lines++
			read += m.Messages
			if records == 0 {
				readBeforeRecords = read
			}
		case msgRecord:
			records++
		}
	})
	must(t, err)
	if records != n || read != n {
		t.Fatalf("%d records, %d messages reported read; want %d of each", records, read, n)
	}
	if readBeforeRecords < n-progressMessages {
		t.Errorf("%d messages reported read before the first record, want at least %d", readBeforeRecords, n-progressMessages)
	}
	if want := int64(n / progressMessages); lines < want {
		t.Errorf("%d progress lines for %d messages, want at least %d", lines, n, want)
	}
}

// TestRunCountsMessagesOnce: the console hears of every message of the INBOX and the folders
// once, through Config.Message, as the workers read them.
func TestRunCountsMessagesOnce(t *testing.T) {
	tr := newTree(t, "ann")
	tr.write("var/mail/ann", smallMessages(300), "ann")
	tr.mkdir("home/ann/mail", 0o700, "ann")
	tr.write("home/ann/mail/Archive", smallMessages(70), "ann")
	cfg := tr.config()
	counted := map[string]int64{}
	cfg.Message = func(user string, n int64) { counted[user] += n }
	sum, _ := run(t, cfg)
	if sum.Failed != 0 || counted["ann"] != 370 {
		t.Errorf("%+v; counted %v, want ann's 370 messages", sum, counted)
	}
}
