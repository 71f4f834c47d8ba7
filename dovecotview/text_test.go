package dovecotview

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// pager builds doveadm's pager output for texts, the way doveadm-print-pager.c writes it:
// "name: value\n" per field, the text raw after "text:\n", "\f\n" before every message
// but the first. size gives each message's size.physical.
func pager(keys []textKey, texts []string, size func(i int) int) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString("\f\n")
		}
		fmt.Fprintf(&b, "mailbox-guid: %s\nuid: %d\nsize.physical: %d\ntext:\n%s", k.guid, k.uid, size(i), texts[i])
	}
	return b.String()
}

// TestReadTexts: every text comes back byte for byte, whatever it holds (bytes that are not
// UTF-8, form feeds, a copy of the fields doveadm writes between messages) and whether or not
// size.physical is right (Dovecot counts one byte short for an mbox's last message without
// its final newline).
func TestReadTexts(t *testing.T) {
	t.Parallel()
	keys := []textKey{{"aa", 1}, {"aa", 2}, {"bb", 1}, {"bb", 7}}
	texts := []string{
		"Subject: latin-1\n\ncaf\xe9 \x0c\x01 and \r\n crlf\n",
		"Subject: fields inside\n\n\f\nmailbox-guid: bb\nuid: 2\nsize.physical: 3\ntext:\nxyz\n",
		"Subject: no final newline\n\nbody",
		"Subject: last\n\nlast body\n",
	}
	for _, tt := range []struct {
		name string
		size func(i int) int
	}{
		{"sizes right", func(i int) int { return len(texts[i]) }},
		{"one short", func(i int) int { return len(texts[i]) - 1 }},
		{"zero", func(int) int { return 0 }},
	} {
		var got, want []string
		for _, text := range texts {
			want = append(want, sumCRLF([]byte(text)))
		}
		err := readTexts(strings.NewReader(pager(keys, texts, tt.size)), keys, MaxHashed, func(k textKey, sum string) {
			if want := keys[len(got)]; k != want {
				t.Errorf("%s: text of %v, want %v", tt.name, k, want)
			}
			got = append(got, sum)
		})
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("%s: hashes\n%q\nwant\n%q (of %q)", tt.name, got, want, texts)
		}
	}
}

// TestReadTextsOrder: output that does not hold the messages listed, in their order (mail
// arrived or was expunged between the two fetches), is an error to retry on, not a hash of
// the wrong message.
func TestReadTextsOrder(t *testing.T) {
	t.Parallel()
	keys := []textKey{{"aa", 1}, {"aa", 2}}
	texts := []string{"one\n", "two\n"}
	out := pager(keys, texts, func(i int) int { return len(texts[i]) })
	for _, tt := range []struct {
		name string
		want []textKey
		out  string
	}{
		{"one more listed", append(keys, textKey{"aa", 3}), out},
		{"one less listed", keys[:1], out},
		{"another UID", []textKey{{"aa", 1}, {"aa", 5}}, out},
		{"none listed", nil, out},
		{"no output", keys, ""},
	} {
		err := readTexts(strings.NewReader(tt.out), tt.want, MaxHashed, func(textKey, string) {})
		if !errors.Is(err, errTextOrder) {
			t.Errorf("%s: %v, want errTextOrder", tt.name, err)
		}
	}
	if err := readTexts(strings.NewReader(""), nil, MaxHashed, func(textKey, string) {}); err != nil {
		t.Errorf("no messages, no output: %v", err)
	}
}

// TestSumCRLF: the hash is that of the message as IMAP clients get it, so an mbox header
// with bare LFs and the same message with CRLFs hash alike, and a changed byte does not.
func TestSumCRLF(t *testing.T) {
	t.Parallel()
	crlf := "Subject: x\r\n\r\nbody\r\nbare\rcr\r\n"
	sum := sha256.Sum256([]byte(crlf))
	want := hex.EncodeToString(sum[:])
	for _, text := range []string{crlf, "Subject: x\n\nbody\nbare\rcr\n", "Subject: x\n\r\nbody\r\nbare\rcr\n"} {
		if got := sumCRLF([]byte(text)); got != want {
			t.Errorf("sumCRLF(%q) = %s, want %s", text, got, want)
		}
	}
	if sumCRLF([]byte("Subject: x\n\nbody\nbare\rCR\n")) == want {
		t.Errorf("a changed byte hashes alike")
	}
}

// TestParseUIDL reads POP3 UIDL answers as Dovecot's pop3 gives them, and refuses what is not
// a whole listing: an -ERR, and the "+OK" alone Dovecot sends before it disconnects when it
// cannot compute a UIDL (pop3_uidl_format=%m on a Maildir).
func TestParseUIDL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{"listing", "+OK\r\n1 000000016b031542\r\n2 000000026b031542\r\n.\r\n", []string{"000000016b031542", "000000026b031542"}, ""},
		{"empty", "+OK\r\n.\r\n", nil, ""},
		{"greeting first", "+OK Logged in.\r\n+OK\r\n1 a\r\n.\r\n", []string{"a"}, ""},
		{"error", "-ERR [SYS/TEMP] Internal error occurred.\r\n", nil, "pop3: -ERR [SYS/TEMP] Internal error occurred."},
		{"cut short", "+OK\r\n", nil, "pop3: the UIDL listing ended early"},
		{"numbering", "+OK\r\n1 a\r\n3 b\r\n.\r\n", nil, `pop3: UIDL line "3 b"`},
		{"no uidl", "+OK\r\n1\r\n.\r\n", nil, `pop3: UIDL line "1"`},
		{"garbage first", "hello\r\n", nil, `pop3: unexpected "hello"`},
	} {
		got, err := parseUIDL(strings.NewReader(tt.in))
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("%s: %q, %v; want error %q", tt.name, got, err, tt.err)
		case tt.err == "" && (err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want)):
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

// TestDovecotErrors finds the lines of a Dovecot tool's standard error that report a failure,
// which doveadm often does while exiting 0.
func TestDovecotErrors(t *testing.T) {
	t.Parallel()
	stderr := "doveadm(xb)<8437><fEAQ>: Error: chdir(/home/xb/) failed: Permission denied\n" +
		"pop3(xa)<28129><MaKv>: Info: Disconnected: Connection closed top=0/0\n" +
		"doveadm(xa): Warning: Some warning mentioning Error: inside\n" +
		"Fatal: Unknown user\n"
	got := dovecotErrors(stderr)
	want := []string{"Error: chdir(/home/xb/) failed: Permission denied", "Fatal: Unknown user"}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Errorf("dovecotErrors = %q, want %q", got, want)
	}
}
