package mbox_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/mbox"
)

// corpusWant is what reading one corpus file must give. Counts were checked against Dovecot
// 2.3.19 serving the file as an mbox INBOX wherever Dovecot accepts the file; where Dovecot
// refuses it ("not a valid mbox file": blank lines before the first From_ line, dateless From_
// lines) the count is the one SOURCES.md and the files' own projects give.
type corpusWant struct {
	messages int
	notMbox  bool
	loose    bool
}

var corpus = map[string]corpusWant{
	"dovecot-written/dovecot-mboxcl2-Archive.mbox": {messages: 1},
	"dovecot-written/dovecot-mboxcl2-inbox.mbox":   {messages: 10},
	"git-t5100/0001mboxrd":                         {messages: 1, loose: true},
	"git-t5100/0002mboxrd":                         {notMbox: true},
	"git-t5100/comment.in":                         {messages: 1},
	"git-t5100/embed-from.in":                      {messages: 1},
	"git-t5100/empty":                              {messages: 0},
	"git-t5100/info-from.in":                       {messages: 1},
	"git-t5100/nul-b64.in":                         {messages: 1},
	"git-t5100/nul-plain":                          {messages: 1},
	"git-t5100/quoted-cr.mbox":                     {messages: 2},
	"git-t5100/quoted-from.in":                     {messages: 1},
	"git-t5100/quoted-string.in":                   {messages: 1},
	"git-t5100/rfc2047-samples.mbox":               {messages: 11},
	"git-t5100/sample.mbox":                        {messages: 18},
	"git-t5100/sample.mboxrd":                      {messages: 2},
	"git-t5100/t4258-quoted-cr.mbox":               {notMbox: true},
	"gmime/substring.mbox":                         {messages: 3, loose: true},
	"gnu-mailutils/bigto.mbox":                     {messages: 1},
	"gnu-mailutils/mbox":                           {messages: 1},
	"gnu-mailutils/mbox1":                          {messages: 5},
	"gnu-mailutils/mbox2":                          {messages: 5},
	"gnu-mailutils/mime.mbox":                      {messages: 2},
	"gnu-mailutils/moderator.mbox":                 {messages: 1},
	"gnu-mailutils/msg.mbox":                       {messages: 4},
	"gnu-mailutils/relational.mbox":                {messages: 9},
	"gnu-mailutils/search.mbox":                    {messages: 8},
	"gnu-mailutils/search2.mbox":                   {messages: 5},
	"gnu-mailutils/sieve.mbox":                     {messages: 3},
	"gnu-mailutils/teaparty.mbox":                  {messages: 95},
	"mimekit/content-length.mbox.txt":              {messages: 29, loose: true},
	"mimekit/issue1189.mbox.txt":                   {messages: 4, loose: true},
	"mimekit/simple.mbox.txt":                      {messages: 3, loose: true},
	"mimekit/unmunged.mbox.txt":                    {messages: 2, loose: true}, // "From Russia with love" is body
	"neomutt-test-files/apple.mbox":                {messages: 0},
	"neomutt-test-files/banana.mbox":               {messages: 1},
	"neomutt-test-files/cherry.mbox":               {notMbox: true},
	"neomutt-test-files/endive.mbox":               {notMbox: true},
	"neomutt-test-files/fig.mbox":                  {notMbox: true},
	"perl-Mail-Box/mbox.cpy":                       {messages: 45},
	"perl-Mail-Box/mbox.src":                       {messages: 45},
	"perl-Mail-Box/mbox.win":                       {messages: 45},
}

// corpusFiles lists the corpus files that are meant as mboxes: not notmuch's single messages,
// summaries, scripts or READMEs.
func corpusFiles(t testing.TB, dir string) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range all {
		rel, _ := filepath.Rel(dir, f)
		base := filepath.Base(f)
		if strings.HasPrefix(rel, "notmuch-corpora") || strings.HasSuffix(base, ".sh") || strings.HasSuffix(base, "-summary.txt") ||
			base == "DISTFILES" || base == "README" || strings.HasSuffix(base, "expected-doveadm-fetch.txt") {
			continue
		}
		if st, err := os.Stat(f); err != nil || !st.Mode().IsRegular() {
			continue
		}
		files = append(files, rel)
	}
	return files
}

func TestCorpora(t *testing.T) {
	t.Parallel()
	dir := corporaDir(t)
	for _, rel := range corpusFiles(t, dir) {
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join(dir, rel))
			if err != nil {
				t.Fatal(err)
			}
			msgs := checkRoundTrip(t, data)
			_, notices, err := readAll(data, mbox.Options{})
			w, known := corpus[rel]
			if !known {
				t.Logf("%s: %d messages, err %v (no expected count in the table)", rel, len(msgs), err)
				return
			}
			if w.notMbox {
				if !errors.Is(err, mbox.ErrNotMbox) {
					t.Fatalf("err = %v, want ErrNotMbox", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != w.messages {
				t.Errorf("%d messages, want %d", len(msgs), w.messages)
			}
			loose := false
			for _, n := range notices {
				loose = loose || n.Kind == mbox.NoticeLoose
			}
			if loose != w.loose {
				t.Errorf("loose mode %v, want %v", loose, w.loose)
			}
		})
	}
}

// TestCorporaTruncated cuts the last byte off every corpus mbox: the last message then has no
// final newline, which must be kept as it is.
func TestCorporaTruncated(t *testing.T) {
	t.Parallel()
	dir := corporaDir(t)
	for _, rel := range corpusFiles(t, dir) {
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		for len(data) > 0 && (data[len(data)-1] == '\n' || data[len(data)-1] == '\r') {
			data = data[:len(data)-1]
		}
		checkRoundTrip(t, data)
	}
}

// TestDovecotMeta checks the metadata of the spool Dovecot wrote against what Dovecot reports
// for it (dovecot-mboxcl2.expected-doveadm-fetch.txt).
func TestDovecotMeta(t *testing.T) {
	t.Parallel()
	dir := corporaDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "dovecot-written", "dovecot-mboxcl2-inbox.mbox"))
	if err != nil {
		t.Fatal(err)
	}
	msgs, _, err := readAll(data, mbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := msgs[0].Meta.IMAPBase
	if b == nil || b.UIDValidity != 1795364162 || b.LastUID != 10 || strings.Join(b.Keywords, " ") != "$Forwarded $label1 NonJunk" {
		t.Errorf("X-IMAPbase = %+v", b)
	}
	for i, m := range msgs {
		if m.Meta.UID != uint32(i+1) {
			t.Errorf("message %d: X-UID %d, want %d", i, m.Meta.UID, i+1)
		}
		if !m.UsedContentLength() {
			t.Errorf("message %d: Content-Length not used", i)
		}
	}
	if !strings.Contains(string(msgs[8].body), "\nFrom ") {
		t.Errorf("message 9 lost the From_ line its body holds: %q", msgs[8].body)
	}
}
