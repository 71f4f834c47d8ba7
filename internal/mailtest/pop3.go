package mailtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// POP3UIDL logs in to the running Dovecot's POP3 service as user and returns the UIDL of
// every message of the INBOX, in message-number order. POP3 clients that leave mail on the
// server download again every message whose UIDL changed.
func (d *Dovecot) POP3UIDL(t testing.TB, user string) []string {
	t.Helper()
	u := d.User(t, user)
	uidls, err := pop3UIDL(d.POP3Addr, u.Name, u.Password)
	if err != nil {
		t.Fatalf("%v\n%s", err, d.Log())
	}
	return uidls
}

func pop3UIDL(addr, user, pass string) ([]string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("mailtest: pop3: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(conn)
	reply := func(cmd string) (string, error) {
		if cmd != "" {
			if _, err := io.WriteString(conn, cmd+"\r\n"); err != nil {
				return "", fmt.Errorf("mailtest: pop3: %w", err)
			}
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("mailtest: pop3: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if !strings.HasPrefix(line, "+OK") {
			verb, _, _ := strings.Cut(cmd, " ")
			return "", fmt.Errorf("mailtest: pop3: %s: %s", verb, line)
		}
		return line, nil
	}
	for _, cmd := range []string{"", "USER " + user, "PASS " + pass, "UIDL"} {
		if _, err := reply(cmd); err != nil {
			return nil, err
		}
	}
	var uidls []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("mailtest: pop3: UIDL: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "." {
			break
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("mailtest: pop3: UIDL line %q", line)
		}
		uidls = append(uidls, f[1])
	}
	// QUIT would enter the UPDATE state; nothing was deleted, but a plain close is
	// enough and leaves the mailbox untouched.
	return uidls, nil
}

// POP3 logs in to the running Dovecot's POP3 service as user, sends each command (RETR,
// DELE...) and fails the test on a reply that is not +OK, then QUITs, so that what DELE
// marked is expunged, as a POP3 client that downloads and deletes does. A RETR's message is
// read and dropped.
func (d *Dovecot) POP3(t testing.TB, user string, cmds ...string) {
	t.Helper()
	u := d.User(t, user)
	if err := pop3Session(d.POP3Addr, u.Name, u.Password, cmds); err != nil {
		t.Fatalf("%v\n%s", err, d.Log())
	}
}

func pop3Session(addr, user, pass string, cmds []string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("mailtest: pop3: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(conn)
	all := append(append([]string{"", "USER " + user, "PASS " + pass}, cmds...), "QUIT")
	for _, cmd := range all {
		if cmd != "" {
			if _, err := io.WriteString(conn, cmd+"\r\n"); err != nil {
				return fmt.Errorf("mailtest: pop3: %w", err)
			}
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("mailtest: pop3: %s: %w", cmd, err)
		}
		if !strings.HasPrefix(line, "+OK") {
			return fmt.Errorf("mailtest: pop3: %s: %s", cmd, strings.TrimSpace(line))
		}
		verb, _, _ := strings.Cut(cmd, " ")
		if strings.EqualFold(verb, "RETR") || strings.EqualFold(verb, "TOP") {
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return fmt.Errorf("mailtest: pop3: %s: %w", cmd, err)
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
			}
		}
	}
	return nil
}
