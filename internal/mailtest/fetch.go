package mailtest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Record is what Dovecot reports about one message.
type Record struct {
	Mailbox  string
	UID      uint32
	Flags    []string // system flags then keywords, in Dovecot's order
	Received time.Time
	VSize    int64 // size.virtual: the size with CRLF line ends (what IMAP clients count)
	PSize    int64 // size.physical: the size as stored, as Dovecot sees it
	GUID     string
	Header   string // hdr: the header block as clients see it, with its final empty line
	Body     string
}

// FetchFields are the doveadm fetch fields that Fetch asks for.
const FetchFields = "uid flags date.received.unixtime size.virtual size.physical guid hdr body"

// BodySHA256 returns the hex SHA-256 of the body.
func (r Record) BodySHA256() string {
	s := sha256.Sum256([]byte(r.Body))
	return hex.EncodeToString(s[:])
}

// HeaderValue returns the first value of the header field key, unfolded, or "".
func (r Record) HeaderValue(key string) string {
	h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(r.Header))).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return ""
	}
	return h.Get(key)
}

// HasFlag reports whether the message carries flag (a system flag such as `\Seen`, or a keyword).
func (r Record) HasFlag(flag string) bool {
	for _, f := range r.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// FlagsWithout returns the flags minus the given ones, sorted, for comparisons that must not
// depend on session state such as \Recent.
func (r Record) FlagsWithout(drop ...string) []string {
	var out []string
	for _, f := range r.Flags {
		keep := true
		for _, d := range drop {
			if f == d {
				keep = false
			}
		}
		if keep {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// Fetch returns what Dovecot reports for every message of mailbox, in UID order, reading
// user's storage through doveadm. It fails the test when doveadm fails.
func (d *Dovecot) Fetch(t testing.TB, user, mailbox string) []Record {
	t.Helper()
	recs, err := d.TryFetch(t, user, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TryFetch is Fetch returning doveadm's error (for instance on a file Dovecot does not
// accept as an mbox) instead of failing the test.
func (d *Dovecot) TryFetch(t testing.TB, user, mailbox string) ([]Record, error) {
	t.Helper()
	out, err := d.Doveadm(t, user, "-f", "json", "fetch", FetchFields, "mailbox", mailbox, "all")
	if err != nil {
		return nil, err
	}
	recs, err := ParseFetchJSON(out)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		recs[i].Mailbox = mailbox
	}
	return recs, nil
}

// ParseFetchJSON parses `doveadm -f json fetch` output made with FetchFields (or a subset)
// into records. doveadm prints every value as a JSON string.
func ParseFetchJSON(b []byte) ([]Record, error) {
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, nil
	}
	var raw []map[string]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("mailtest: doveadm fetch output: %w", err)
	}
	recs := make([]Record, 0, len(raw))
	for i, m := range raw {
		var r Record
		var err error
		num := func(key string) int64 {
			v, ok := m[key]
			if !ok || err != nil {
				return 0
			}
			var n int64
			n, err = strconv.ParseInt(v, 10, 64)
			if err != nil {
				err = fmt.Errorf("mailtest: doveadm fetch record %d: %s %q: %w", i, key, v, err)
			}
			return n
		}
		r.UID = uint32(num("uid"))
		r.VSize = num("size.virtual")
		r.PSize = num("size.physical")
		if _, ok := m["date.received.unixtime"]; ok {
			r.Received = time.Unix(num("date.received.unixtime"), 0)
		}
		if err != nil {
			return nil, err
		}
		r.Flags = strings.Fields(m["flags"])
		r.GUID = m["guid"]
		r.Header = m["hdr"]
		r.Body = m["body"]
		recs = append(recs, r)
	}
	return recs, nil
}

// MailboxStatus is what `doveadm mailbox status` reports for one mailbox.
type MailboxStatus struct {
	Messages, UIDValidity, UIDNext uint32
	VSize                          int64
}

// Status returns the message count, UIDVALIDITY, UIDNEXT and total virtual size of mailbox.
func (d *Dovecot) Status(t testing.TB, user, mailbox string) MailboxStatus {
	t.Helper()
	out, err := d.Doveadm(t, user, "-f", "tab", "mailbox", "status", "messages uidvalidity uidnext vsize", mailbox)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parseTab(out)
	if err != nil || len(rows) != 1 {
		t.Fatalf("mailtest: doveadm mailbox status %s: %d rows, %v: %q", mailbox, len(rows), err, out)
	}
	var st MailboxStatus
	for key, dst := range map[string]*uint32{"messages": &st.Messages, "uidvalidity": &st.UIDValidity, "uidnext": &st.UIDNext} {
		n, err := strconv.ParseUint(rows[0][key], 10, 32)
		if err != nil {
			t.Fatalf("mailtest: doveadm mailbox status: %s: %v", key, err)
		}
		*dst = uint32(n)
	}
	n, err := strconv.ParseInt(rows[0]["vsize"], 10, 64)
	if err != nil {
		t.Fatalf("mailtest: doveadm mailbox status: vsize: %v", err)
	}
	st.VSize = n
	return st
}

// Mailboxes returns the names of user's mailboxes, sorted.
func (d *Dovecot) Mailboxes(t testing.TB, user string) []string {
	t.Helper()
	out, err := d.Doveadm(t, user, "mailbox", "list")
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Fields(string(out))
	sort.Strings(names)
	return names
}

// parseTab parses doveadm's tab formatter: a header line of names, then one line per row.
func parseTab(b []byte) ([]map[string]string, error) {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		return nil, nil
	}
	head := strings.Split(lines[0], "\t")
	var rows []map[string]string
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) != len(head) {
			return nil, fmt.Errorf("mailtest: doveadm tab output: %d fields, want %d: %q", len(f), len(head), l)
		}
		row := map[string]string{}
		for i, h := range head {
			row[h] = f[i]
		}
		rows = append(rows, row)
	}
	return rows, nil
}
