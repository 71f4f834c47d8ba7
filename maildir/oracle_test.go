package maildir

import (
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	gomaildir "github.com/emersion/go-maildir"
)

// TestGoMaildirReadsWhatWeWrite uses emersion/go-maildir, an independent
// Maildir implementation, as an oracle: it must find every message we wrote
// under our base name as its key, with our flags and our bytes.
func TestGoMaildirReadsWhatWeWrite(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	_, w := newTestWriter(t, md, Options{Host: "oracle:host"})
	type wanted struct{ flags, body string }
	want := map[string]wanted{}
	for i, c := range []struct {
		flags    string
		keywords []string
		new      bool
		body     string
	}{
		{"", nil, true, "Subject: new\n\nbody\n"},
		{"S", nil, false, "Subject: seen\r\n\r\nbody\r\n"},
		{"RSF", []string{"Junk"}, false, "Subject: flagged\n\n"},
		{"", nil, false, ""},
	} {
		r := add(t, w, &Message{Date: time.Unix(1600000000+int64(i), 0), Flags: c.flags, Keywords: c.keywords,
			New: c.new, Position: int64(i), Content: strings.NewReader(c.body)})
		n, err := ParseName(r.Name)
		must(t, err)
		flags := n.Flags
		if r.Sub == "new" {
			flags = "" // go-maildir's Unseen moves it to cur with no flags
		}
		want[n.Base] = wanted{flags, c.body}
	}
	must(t, w.Commit())

	d := gomaildir.Dir(md)
	unseen, err := d.Unseen()
	must(t, err)
	if len(unseen) != 1 {
		t.Errorf("go-maildir finds %d unseen messages, want 1", len(unseen))
	}
	msgs, err := d.Messages()
	must(t, err)
	if len(msgs) != len(want) {
		t.Fatalf("go-maildir finds %d messages, want %d", len(msgs), len(want))
	}
	for _, m := range msgs {
		wt, ok := want[m.Key()]
		if !ok {
			t.Errorf("go-maildir key %q is none of ours", m.Key())
			continue
		}
		var flags []string
		for _, f := range m.Flags() {
			flags = append(flags, string(f))
		}
		sort.Strings(flags)
		if got := strings.Join(flags, ""); got != wt.flags {
			t.Errorf("%s: go-maildir flags %q, want %q", m.Key(), got, wt.flags)
		}
		rc, err := m.Open()
		must(t, err)
		b, err := io.ReadAll(rc)
		rc.Close()
		must(t, err)
		if string(b) != wt.body {
			t.Errorf("%s: go-maildir reads %q, want %q", m.Key(), b, wt.body)
		}
	}
}
