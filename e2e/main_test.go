// Package e2e runs the real maildirmig binary against the real Dovecot and Postfix: Dovecot
// serves a copy of each mbox and then the Maildir that maildirmig made from it, and the two
// views must agree message for message.
package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// binary is the maildirmig built once by TestMain, in a directory every test user can read,
// with -tags faultinject: without MAILDIRMIG_FAULT in its environment it does what a normal
// build does (each fault point only counts its passes), and with it the fault tests arm a
// point (runWithFault). One build serves both.
var binary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	binary = filepath.Join(dir, "maildirmig")
	build := exec.Command("go", "build", "-tags", "faultinject", "-o", binary, "./cmd/maildirmig")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build -tags faultinject ./cmd/maildirmig: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// result is one maildirmig run.
type result struct {
	code           int
	stdout, stderr string
}

// convert runs `maildirmig convert --from src maildir args...` as u (u.TZ applies).
func convert(t *testing.T, u mailtest.User, src, maildir string, args ...string) result {
	t.Helper()
	full := append([]string{"convert", "--from", src}, args...)
	full = append(full, maildir)
	r := runCommand(u.Command(binary, full))
	if r.code < 0 {
		t.Fatalf("run maildirmig: %s", r.stderr)
	}
	return r
}

// runCommand runs cmd and collects its output and exit code; a command that could not be
// started gives code -1 and the reason in stderr. It is safe to call from any goroutine.
func runCommand(cmd *exec.Cmd) result {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		r.code, r.stderr = -1, err.Error()
	}
	return r
}

// messageFiles returns the names of the message files in maildir's cur/ and new/.
func messageFiles(t *testing.T, maildir string) []string {
	t.Helper()
	var names []string
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(maildir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			names = append(names, sub+"/"+e.Name())
		}
	}
	return names
}

// compareRecords asserts that Dovecot reports the same messages for the Maildir as for the
// mbox it came from: count and order, UID, flags and keywords, received date, virtual size,
// header and body.
func compareRecords(t *testing.T, fromMbox, fromMaildir []mailtest.Record) {
	t.Helper()
	if len(fromMaildir) != len(fromMbox) {
		t.Errorf("Maildir has %d messages, the mbox %d", len(fromMaildir), len(fromMbox))
	}
	for i := 0; i < len(fromMbox) && i < len(fromMaildir); i++ {
		m, d := fromMbox[i], fromMaildir[i]
		where := fmt.Sprintf("message %d (mbox uid %d, subject %q)", i+1, m.UID, m.HeaderValue("Subject"))
		if d.UID != m.UID {
			t.Errorf("%s: uid %d, want %d", where, d.UID, m.UID)
		}
		// \Recent is session state: both are fresh, but it is not what was migrated.
		if got, want := strings.Join(d.FlagsWithout(`\Recent`), " "), strings.Join(m.FlagsWithout(`\Recent`), " "); got != want {
			t.Errorf("%s: flags %q, want %q", where, got, want)
		}
		if !d.Received.Equal(m.Received) {
			t.Errorf("%s: received %v, want %v", where, d.Received, m.Received)
		}
		// Dovecot hands out an mbox header with bare LFs even when the file has CRLF
		// (its header filter rewrites the lines); IMAP clients get CRLF either way, as
		// the equal virtual sizes show, so line ends are not compared in the header.
		if crlf.Replace(d.Header) != crlf.Replace(m.Header) {
			t.Errorf("%s: header differs:\n got %q\nwant %q", where, clip(d.Header), clip(m.Header))
		}
		if d.Body != m.Body {
			t.Errorf("%s: body differs (sha256 %s, want %s, %d bytes, want %d):\n got %q\nwant %q",
				where, d.BodySHA256()[:12], m.BodySHA256()[:12], len(d.Body), len(m.Body), clip(d.Body), clip(m.Body))
		}
		if d.VSize != m.VSize {
			t.Errorf("%s: virtual size %d, want %d", where, d.VSize, m.VSize)
		}
	}
}

var crlf = strings.NewReplacer("\r\n", "\n")

func clip(s string) string {
	if len(s) > 300 {
		return s[:150] + " ... " + s[len(s)-150:]
	}
	return s
}
