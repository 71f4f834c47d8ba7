package dovecotview

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// parseUIDL reads a POP3 server's answer to UIDL (RFC 1939): "+OK", then "N UIDL" per message
// and a line ".". Dovecot's pop3 started with -u sends no greeting, but one would be an "+OK"
// line too: the listing is what follows the last "+OK" line. A "-ERR" line, or an answer cut
// short (Dovecot disconnects when it cannot compute a UIDL, and says why on standard error
// only), is an error.
func parseUIDL(rd io.Reader) ([]string, error) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 4096), 1<<20)
	var uidls []string
	listing := false
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, "-ERR"):
			return nil, fmt.Errorf("pop3: %s", line)
		case strings.HasPrefix(line, "+OK"):
			listing, uidls = true, nil
		case !listing:
			return nil, fmt.Errorf("pop3: unexpected %q", line)
		case line == ".":
			return uidls, nil
		default:
			n, uidl, ok := strings.Cut(line, " ")
			num, err := strconv.Atoi(n)
			if !ok || err != nil || num != len(uidls)+1 || uidl == "" || strings.ContainsAny(uidl, " \t") {
				return nil, fmt.Errorf("pop3: UIDL line %q", line)
			}
			uidls = append(uidls, uidl)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("pop3: %w", err)
	}
	return nil, errors.New("pop3: the UIDL listing ended early")
}
