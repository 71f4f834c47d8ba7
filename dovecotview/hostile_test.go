package dovecotview

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A user's Maildir holds a FIFO among its messages, under a name without S= and W=: Dovecot
// opens it to learn its size and blocks for ever. Recording that user must end, with an error
// that says why, not hang the administrator's run.
func TestRecordFIFOInMaildir(t *testing.T) {
	s := newServer(t, "rvfifo")
	md := filepath.Join(s.user.Home, "Maildir")
	for _, d := range []string{md, md + "/cur", md + "/new", md + "/tmp"} {
		s.user.Mkdir(t, d)
	}
	s.user.WriteFile(t, filepath.Join(md, "cur", "1704067200.M1P1.host,S=11,W=12:2,S"), []byte("Subject: x\n"))
	fifo := filepath.Join(md, "cur", "1704067300.M1P2.host:2,S")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(fifo, s.user.UID, s.user.GID); err != nil {
		t.Fatal(err)
	}
	s.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	r := s.recorder(false)
	r.StallTimeout = 2 * time.Second
	if _, err := r.Settings(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The test's own bound, far above the stall timeout: without the watchdog the user is
	// never done.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u := r.User(ctx, s.user.Name)
	if ctx.Err() != nil {
		t.Fatalf("recording a user with a FIFO in cur/ did not end: %+v", u)
	}
	if u.Error == "" || !strings.Contains(u.Error, "printed nothing for 2s, killed") || !strings.Contains(u.Error, "FIFO") {
		t.Errorf("recording a user with a FIFO in cur/: %+v; want an error that says doveadm was killed and why", u)
	}
	// Without the FIFO the same user is recorded.
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if u := r.User(ctx, s.user.Name); u.Error != "" || len(u.Mailboxes) == 0 {
		t.Errorf("the user without the FIFO: %+v", u)
	}
}

// TestReadTextsStreams: texts larger than readTexts holds in memory are hashed as they stream,
// with the same hash whatever size.physical says (right, one byte short, zero), CRLF and bare
// LF alike across every read; a text above the limit, by its size.physical or by what streams,
// is refused, and the refusal is not one to retry.
func TestReadTextsStreams(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("line\r\nbare\n\r\n", (maxHeld+300<<10)/13) + "end"
	keys := []textKey{{"aa", 1}, {"aa", 2}, {"bb", 3}}
	texts := []string{big + "\n", "Subject: small\n\nx\n", big}
	var want []string
	for _, text := range texts {
		want = append(want, sumCRLF([]byte(text)))
	}
	for name, size := range map[string]func(i int) int{
		"sizes right": func(i int) int { return len(texts[i]) },
		"one short":   func(i int) int { return len(texts[i]) - 1 },
		"zero":        func(int) int { return 0 },
	} {
		var got []string
		err := readTexts(strings.NewReader(pager(keys, texts, size)), keys, MaxHashed, func(_ textKey, sum string) { got = append(got, sum) })
		if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: %v, hashes %q; want %q", name, err, got, want)
		}
	}
	limit := int64(len(big) - 1)
	for name, size := range map[string]func(i int) int{
		"size above the limit":        func(i int) int { return len(texts[i]) },
		"text above its size's limit": func(i int) int { return 10 },
	} {
		err := readTexts(strings.NewReader(pager(keys, texts, size)), keys, limit, func(textKey, string) {})
		if !errors.Is(err, errTooLarge) || errors.Is(err, errTextOrder) {
			t.Errorf("%s: %v; want errTooLarge", name, err)
		}
	}
}
