package mailtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// IMAPClient is a minimal IMAP4rev1 client: enough to record what a mail client sees,
// nothing more. Responses are parsed into atoms, strings and lists.
type IMAPClient struct {
	conn net.Conn
	r    *bufio.Reader
	tag  int
}

// IMAPMessage is what UID FETCH (UID FLAGS INTERNALDATE RFC822.SIZE) returns for one message.
type IMAPMessage struct {
	UID          uint32
	Flags        []string
	InternalDate time.Time
	Size         int64
}

// IMAP connects to the running Dovecot and logs in as user. The connection is closed when
// the test ends.
func (d *Dovecot) IMAP(t testing.TB, user string) *IMAPClient {
	t.Helper()
	u := d.User(t, user)
	c, err := DialIMAP(d.IMAPAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Command("LOGIN " + quote(u.Name) + " " + quote(u.Password)); err != nil {
		t.Fatalf("%v\n%s", err, d.Log())
	}
	return c
}

// DialIMAP connects to addr and reads the greeting.
func DialIMAP(addr string) (*IMAPClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("mailtest: imap: %w", err)
	}
	c := &IMAPClient{conn: conn, r: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	greet, err := c.readResponse()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if !strings.HasPrefix(greet, "* OK") {
		conn.Close()
		return nil, fmt.Errorf("mailtest: imap: greeting %q", greet)
	}
	return c, nil
}

// Close logs out and closes the connection.
func (c *IMAPClient) Close() error {
	c.Command("LOGOUT")
	return c.conn.Close()
}

// Command sends one command and returns its untagged responses (without the leading "* "),
// or an error when the tagged reply is not OK.
func (c *IMAPClient) Command(cmd string) ([]string, error) {
	c.tag++
	tag := "a" + strconv.Itoa(c.tag)
	c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(c.conn, tag+" "+cmd+"\r\n"); err != nil {
		return nil, fmt.Errorf("mailtest: imap: %w", err)
	}
	var untagged []string
	for {
		line, err := c.readResponse()
		if err != nil {
			return untagged, err
		}
		switch {
		case strings.HasPrefix(line, "* "):
			untagged = append(untagged, line[2:])
		case strings.HasPrefix(line, tag+" "):
			status := line[len(tag)+1:]
			if !strings.HasPrefix(status, "OK") {
				return untagged, fmt.Errorf("mailtest: imap: %s: %s", strings.Fields(cmd)[0], status)
			}
			return untagged, nil
		}
	}
}

// readResponse reads one response line, with the literals it announces kept inline as
// "{n}\r\n" followed by their n bytes.
func (c *IMAPClient) readResponse() (string, error) {
	var b strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("mailtest: imap: %w", err)
		}
		b.WriteString(line)
		trim := strings.TrimRight(line, "\r\n")
		if !strings.HasSuffix(trim, "}") {
			return strings.TrimRight(b.String(), "\r\n"), nil
		}
		open := strings.LastIndexByte(trim, '{')
		n, err := strconv.Atoi(trim[open+1 : len(trim)-1])
		if open < 0 || err != nil {
			return strings.TrimRight(b.String(), "\r\n"), nil
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(c.r, lit); err != nil {
			return "", fmt.Errorf("mailtest: imap: literal: %w", err)
		}
		b.Write(lit)
	}
}

// List returns the names of all mailboxes (LIST "" "*"), in server order.
func (c *IMAPClient) List(t testing.TB) []string {
	t.Helper()
	return c.names(t, "LIST")
}

// Lsub returns the names of the subscribed mailboxes (LSUB "" "*"), in server order.
func (c *IMAPClient) Lsub(t testing.TB) []string {
	t.Helper()
	return c.names(t, "LSUB")
}

func (c *IMAPClient) names(t testing.TB, verb string) []string {
	t.Helper()
	resp, err := c.Command(verb + ` "" "*"`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range resp {
		toks, err := parseIMAP(r)
		if err != nil {
			t.Fatal(err)
		}
		// verb (flags) delimiter name
		if len(toks) == 4 && atom(toks[0]) == verb {
			names = append(names, atom(toks[3]))
		}
	}
	return names
}

// Status returns MESSAGES, UIDVALIDITY and UIDNEXT of mailbox (STATUS; VSize is not set).
func (c *IMAPClient) Status(t testing.TB, mailbox string) MailboxStatus {
	t.Helper()
	resp, err := c.Command("STATUS " + quote(mailbox) + " (MESSAGES UIDVALIDITY UIDNEXT)")
	if err != nil {
		t.Fatal(err)
	}
	var st MailboxStatus
	for _, r := range resp {
		toks, err := parseIMAP(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != 3 || atom(toks[0]) != "STATUS" {
			continue
		}
		items, _ := toks[2].([]any)
		for i := 0; i+1 < len(items); i += 2 {
			n, _ := strconv.ParseUint(atom(items[i+1]), 10, 32)
			switch strings.ToUpper(atom(items[i])) {
			case "MESSAGES":
				st.Messages = uint32(n)
			case "UIDVALIDITY":
				st.UIDValidity = uint32(n)
			case "UIDNEXT":
				st.UIDNext = uint32(n)
			}
		}
	}
	return st
}

// Examine opens mailbox read-only and returns what EXAMINE reports of it: EXISTS as Messages,
// UIDVALIDITY and UIDNEXT. Dovecot syncs the mailbox first, where STATUS may answer from its
// mailbox list index, which lags behind an mbox just changed.
func (c *IMAPClient) Examine(t testing.TB, mailbox string) MailboxStatus {
	t.Helper()
	resp, err := c.Command("EXAMINE " + quote(mailbox))
	if err != nil {
		t.Fatal(err)
	}
	var st MailboxStatus
	for _, r := range resp {
		f := strings.Fields(strings.NewReplacer("[", " ", "]", " ").Replace(r))
		var dst *uint32
		switch {
		case len(f) >= 2 && f[1] == "EXISTS":
			n, _ := strconv.ParseUint(f[0], 10, 32)
			st.Messages = uint32(n)
		case len(f) >= 3 && f[0] == "OK" && f[1] == "UIDVALIDITY":
			dst = &st.UIDValidity
		case len(f) >= 3 && f[0] == "OK" && f[1] == "UIDNEXT":
			dst = &st.UIDNext
		}
		if dst != nil {
			n, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil {
				t.Fatalf("EXAMINE %s: %q: %v", mailbox, r, err)
			}
			*dst = uint32(n)
		}
	}
	if st.UIDValidity == 0 || st.UIDNext == 0 {
		t.Fatalf("EXAMINE %s: no UIDVALIDITY or UIDNEXT in %q", mailbox, resp)
	}
	return st
}

// Messages opens mailbox read-only (EXAMINE, so that \Recent and \Seen stay as they are) and
// returns UID, FLAGS, INTERNALDATE and RFC822.SIZE of every message in sequence order.
func (c *IMAPClient) Messages(t testing.TB, mailbox string) []IMAPMessage {
	t.Helper()
	resp, err := c.Command("EXAMINE " + quote(mailbox))
	if err != nil {
		t.Fatal(err)
	}
	exists := 0
	for _, r := range resp {
		if f := strings.Fields(r); len(f) == 2 && f[1] == "EXISTS" {
			exists, _ = strconv.Atoi(f[0])
		}
	}
	if exists == 0 {
		return nil
	}
	resp, err = c.Command("FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []IMAPMessage
	for _, r := range resp {
		toks, err := parseIMAP(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != 3 || atom(toks[1]) != "FETCH" {
			continue
		}
		items, _ := toks[2].([]any)
		var m IMAPMessage
		for i := 0; i+1 < len(items); i += 2 {
			switch strings.ToUpper(atom(items[i])) {
			case "UID":
				n, _ := strconv.ParseUint(atom(items[i+1]), 10, 32)
				m.UID = uint32(n)
			case "RFC822.SIZE":
				m.Size, _ = strconv.ParseInt(atom(items[i+1]), 10, 64)
			case "INTERNALDATE":
				m.InternalDate, err = time.Parse("_2-Jan-2006 15:04:05 -0700", atom(items[i+1]))
				if err != nil {
					t.Fatalf("mailtest: imap: INTERNALDATE: %v", err)
				}
			case "FLAGS":
				fl, _ := items[i+1].([]any)
				for _, f := range fl {
					m.Flags = append(m.Flags, atom(f))
				}
			}
		}
		msgs = append(msgs, m)
	}
	if len(msgs) != exists {
		t.Fatalf("mailtest: imap: %s: %d FETCH responses for %d messages", mailbox, len(msgs), exists)
	}
	return msgs
}

// Bodies opens mailbox read-only and returns every message as IMAP clients receive it
// (BODY.PEEK[], which leaves \Seen alone), by UID.
func (c *IMAPClient) Bodies(t testing.TB, mailbox string) map[uint32]string {
	t.Helper()
	if _, err := c.Command("EXAMINE " + quote(mailbox)); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Command("UID FETCH 1:* (UID BODY.PEEK[])")
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[uint32]string{}
	for _, r := range resp {
		toks, err := parseIMAP(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != 3 || atom(toks[1]) != "FETCH" {
			continue
		}
		items, _ := toks[2].([]any)
		var uid uint32
		var body string
		for i := 0; i+1 < len(items); i += 2 {
			switch strings.ToUpper(atom(items[i])) {
			case "UID":
				n, _ := strconv.ParseUint(atom(items[i+1]), 10, 32)
				uid = uint32(n)
			case "BODY[]":
				body = atom(items[i+1])
			}
		}
		bodies[uid] = body
	}
	return bodies
}

func atom(v any) string {
	s, _ := v.(string)
	return s
}

// quote makes s an IMAP quoted string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// parseIMAP splits a response into atoms and strings (as string) and parenthesised lists
// (as []any). Brackets in atoms such as BODY[TEXT] are kept in the atom.
func parseIMAP(s string) ([]any, error) {
	p := &imapParser{s: s}
	toks, err := p.list(0)
	if err != nil {
		return nil, fmt.Errorf("mailtest: imap: parse %q: %w", s, err)
	}
	return toks, nil
}

type imapParser struct {
	s string
	i int
}

func (p *imapParser) list(depth int) ([]any, error) {
	var out []any
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == ' ':
			p.i++
		case c == '(':
			p.i++
			sub, err := p.list(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub)
		case c == ')':
			if depth == 0 {
				return nil, errors.New("unbalanced )")
			}
			p.i++
			return out, nil
		case c == '"':
			var b strings.Builder
			p.i++
			for ; p.i < len(p.s) && p.s[p.i] != '"'; p.i++ {
				if p.s[p.i] == '\\' && p.i+1 < len(p.s) {
					p.i++
				}
				b.WriteByte(p.s[p.i])
			}
			if p.i >= len(p.s) {
				return nil, errors.New("unterminated string")
			}
			p.i++
			out = append(out, b.String())
		case c == '{':
			end := strings.IndexByte(p.s[p.i:], '}')
			if end < 0 {
				return nil, errors.New("bad literal")
			}
			n, err := strconv.Atoi(p.s[p.i+1 : p.i+end])
			if err != nil {
				return nil, err
			}
			p.i += end + 1
			if strings.HasPrefix(p.s[p.i:], "\r\n") {
				p.i += 2
			}
			if p.i+n > len(p.s) {
				return nil, errors.New("short literal")
			}
			out = append(out, p.s[p.i:p.i+n])
			p.i += n
		default:
			start := p.i
			depthBr := 0
			for p.i < len(p.s) {
				ch := p.s[p.i]
				if ch == '[' {
					depthBr++
				} else if ch == ']' {
					depthBr--
				} else if depthBr == 0 && (ch == ' ' || ch == '(' || ch == ')') {
					break
				}
				p.i++
			}
			out = append(out, p.s[start:p.i])
		}
	}
	if depth != 0 {
		return nil, errors.New("unbalanced (")
	}
	return out, nil
}
