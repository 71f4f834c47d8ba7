package e2e

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/internal/mailtest"
	"github.com/maildirmig/maildirmig/mbox"
)

// judgeTZ is not UTC so that a From_ date read in the wrong zone shows.
const judgeTZ = "America/New_York"

// corpusMboxes returns the mbox-like files of the corpora (relative paths): everything but
// notmuch-corpora (single messages), summaries, the expected-output files and scripts.
func corpusMboxes(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "notmuch-corpora" {
				return filepath.SkipDir
			}
			return nil
		}
		base := d.Name()
		switch {
		case base == "SOURCES.md", base == "DISTFILES", base == "README",
			strings.HasSuffix(base, ".sh"), strings.HasSuffix(base, "-summary.txt"),
			strings.Contains(base, ".expected-"):
			return nil
		}
		files = append(files, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// firstText returns the first line of b that is not blank, after a UTF-8 byte-order mark.
func firstText(b []byte) string {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			return l
		}
	}
	return ""
}

// keepOwnLineEnds returns Dovecot's records of src as maildirmig must reproduce them, and how
// many it changed. That is the one deliberate difference from Dovecot: Dovecot takes the line
// end right before a From_ line, or at the end of the file, for the mbox's, even when no empty
// line is there, and drops it from the message's body; maildirmig keeps it, because only an
// empty line between messages or at the end of the file belongs to the mbox (SPEC, "Reading an
// mbox"), and without one the message's own last line end is the message's. Postfix ends every
// message with an empty line, so real spools never show this. Which messages lack that empty
// line is read from src with the mbox reader (Separator() empty after a line end); the
// boundaries themselves are still judged by Dovecot. The body gains that line end ("\r\n" in a
// CRLF file) and the virtual size, which counts it as CRLF, 2 bytes; nothing else changes.
// When the message's last line is a header line (Dovecot's body is empty), Dovecot keeps it
// whole and there is no difference.
func keepOwnLineEnds(t *testing.T, want []mailtest.Record, src []byte) ([]mailtest.Record, int) {
	t.Helper()
	r := mbox.NewReader(bytes.NewReader(src), int64(len(src)), mbox.Options{})
	var eols []string
	for {
		m, err := r.Next()
		if err != nil {
			break
		}
		data, err := io.ReadAll(m.Body)
		if err != nil {
			t.Fatalf("reading the source: %v", err)
		}
		if m.Pseudo {
			continue
		}
		data = append(slices.Clone(m.Header), data...)
		eol := ""
		if len(m.Separator()) == 0 {
			switch {
			case bytes.HasSuffix(data, []byte("\r\n")):
				eol = "\r\n"
			case bytes.HasSuffix(data, []byte("\n")):
				eol = "\n"
			}
		}
		eols = append(eols, eol)
	}
	if len(eols) != len(want) {
		return want, 0 // the counts differ: compareRecords says so
	}
	out := slices.Clone(want)
	n := 0
	for i, eol := range eols {
		if eol == "" || out[i].Body == "" {
			continue
		}
		out[i].Body += eol
		out[i].VSize += 2
		n++
	}
	return out, n
}

// TestDovecotJudge converts every corpus mbox with maildirmig and asks Dovecot, once over a
// copy of the mbox and once over the Maildir, what each message is: the two answers must be
// equal. Where Dovecot refuses the mbox, maildirmig must either refuse it too (not an mbox:
// exit 1, an error naming the file, nothing written) or convert it in loose mode with a
// warning.
func TestDovecotJudge(t *testing.T) {
	corpora := mailtest.Corpora(t)
	mailtest.RequireDovecot(t)
	dir := mailtest.Dir(t)
	d := mailtest.NewDovecot(t, mailtest.DovecotConfig{MailLocation: "maildir:~/Maildir"})
	for i, rel := range corpusMboxes(t, corpora) {
		rel := rel
		name := "u" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(filepath.Join(corpora, rel))
			if err != nil {
				t.Fatal(err)
			}
			u := mailtest.NewUser(t, dir, name)
			u.TZ = judgeTZ
			asMbox, asMaildir := u, u
			asMbox.MailLocation = "mbox:~/mail:INBOX=~/inbox"
			asMaildir.Name += "-md"
			asMaildir.MailLocation = "maildir:~/Maildir"
			d.AddUser(t, asMbox)
			d.AddUser(t, asMaildir)
			u.Mkdir(t, filepath.Join(u.Home, "mail"))
			// Dovecot rewrites the mbox it reads: it gets its own copy, and
			// maildirmig reads another.
			u.WriteFile(t, filepath.Join(u.Home, "inbox"), src)
			spool := filepath.Join(u.Home, "spool")
			u.WriteFile(t, spool, src)
			maildir := filepath.Join(u.Home, "Maildir")

			want, dovecotErr := d.TryFetch(t, asMbox.Name, "INBOX")
			r := convert(t, u, spool, maildir)
			t.Logf("dovecot: %d messages (err %v); maildirmig: exit %d, stdout %q, stderr %q",
				len(want), dovecotErr, r.code, strings.TrimSpace(r.stdout), strings.TrimSpace(r.stderr))
			if after, err := os.ReadFile(spool); err != nil || !bytes.Equal(after, src) {
				t.Errorf("maildirmig changed its source (err %v)", err)
			}

			if dovecotErr != nil {
				if !strings.Contains(dovecotErr.Error(), "isn't a valid mbox") && !strings.Contains(dovecotErr.Error(), "not a valid mbox") {
					t.Fatalf("dovecot failed for another reason: %v\n%s", dovecotErr, d.Log())
				}
				first := firstText(src)
				if strings.HasPrefix(first, "From ") {
					// A From_ line without a date: loose mode.
					if r.code != 0 {
						t.Fatalf("loose-mode file: exit %d, want 0; stderr %q", r.code, r.stderr)
					}
					if !strings.Contains(r.stderr, "maildirmig: warning:") {
						t.Errorf("loose-mode file converted without a warning; stderr %q", r.stderr)
					}
					got := d.Fetch(t, asMaildir.Name, "INBOX")
					if len(got) == 0 {
						t.Errorf("loose-mode file gave an empty Maildir")
					}
					t.Logf("loose mode: %d messages in the Maildir", len(got))
					return
				}
				if r.code != 1 {
					t.Errorf("not an mbox: exit %d, want 1", r.code)
				}
				if !strings.Contains(r.stderr, "maildirmig: error:") || !strings.Contains(r.stderr, spool) {
					t.Errorf("not an mbox: stderr %q lacks an error naming %s", r.stderr, spool)
				}
				if files := messageFiles(t, maildir); len(files) != 0 {
					t.Errorf("not an mbox: Maildir holds %v", files)
				}
				return
			}

			if r.code != 0 {
				t.Fatalf("maildirmig exit %d, stderr %q", r.code, r.stderr)
			}
			got := d.Fetch(t, asMaildir.Name, "INBOX")
			if w, n := keepOwnLineEnds(t, want, src); n > 0 {
				t.Logf("%d messages end with a line end and no empty line after it: they keep that line end, which Dovecot drops", n)
				want = w
			}
			compareRecords(t, want, got)
			if files := messageFiles(t, maildir); len(files) != len(want) {
				t.Errorf("Maildir holds %d files, want %d", len(files), len(want))
			}
			if len(want) == 0 {
				return
			}
			ms, ds := d.Status(t, asMbox.Name, "INBOX"), d.Status(t, asMaildir.Name, "INBOX")
			if ds.UIDNext != ms.UIDNext {
				t.Errorf("UIDNEXT %d, want %d", ds.UIDNext, ms.UIDNext)
			}
			// Without X-IMAPbase both sides invent a UIDVALIDITY of their own.
			if bytes.Contains(src, []byte("\nX-IMAPbase: ")) || bytes.Contains(src, []byte("\nX-IMAP: ")) {
				if ds.UIDValidity != ms.UIDValidity {
					t.Errorf("UIDVALIDITY %d, want %d", ds.UIDValidity, ms.UIDValidity)
				}
			}
		})
	}
}
