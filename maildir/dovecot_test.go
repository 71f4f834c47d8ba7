package maildir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const doveadmPath = "/usr/bin/doveadm"

// doveadm runs doveadm as the unprivileged user owning dir/Maildir, with a
// throwaway configuration, and decodes its JSON output. Running it as the
// user (not -u, which needs a running auth service) mirrors how the mail
// user's own processes see the Maildir.
func doveadm(t *testing.T, dir string, uid int, args ...string) []map[string]string {
	t.Helper()
	conf := filepath.Join(dir, "dovecot.conf")
	if _, err := os.Stat(conf); err != nil {
		for _, sub := range []string{"run", "state"} {
			must(t, os.Mkdir(filepath.Join(dir, sub), 0o755))
		}
		must(t, os.WriteFile(conf, []byte(fmt.Sprintf(
			"base_dir = %[1]s/run\nstate_dir = %[1]s/state\nlog_path = %[1]s/dovecot.log\nmail_location = maildir:%[1]s/Maildir\n", dir)), 0o644))
	}
	cmd := exec.Command(doveadmPath, append([]string{"-c", conf, "-f", "json"}, args...)...)
	cmd.Env = []string{"HOME=" + dir, "USER=mailtest", "PATH=/usr/bin:/bin", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("doveadm %s: %v: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var recs []map[string]string
	if err := json.Unmarshal(out, &recs); err != nil {
		t.Fatalf("doveadm output %q: %v", out, err)
	}
	return recs
}

// TestDovecotReadsWhatWeWrite has Dovecot 2.3 judge a Maildir written by the
// Writer: UIDs, UIDVALIDITY, flags, keywords, received dates, sizes taken from
// S= and W=, and the bytes of every message.
func TestDovecotReadsWhatWeWrite(t *testing.T) {
	if _, err := os.Stat(doveadmPath); err != nil {
		t.Skipf("skipping: %s not installed", doveadmPath)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to run doveadm as an unprivileged mail user")
	}
	const uid = 65534
	dir := t.TempDir()
	// The mail user must reach the Maildir: t.TempDir's own parent is 0700.
	must(t, os.Chmod(filepath.Dir(dir), 0o755))
	must(t, os.Chmod(dir, 0o755))
	md := filepath.Join(dir, "Maildir")
	_, w := newTestWriter(t, md, Options{Host: "mx/1:2"})
	w.SetUIDBase(1234567, 40)

	type want struct {
		flags string // as doveadm prints them, sorted
		date  time.Time
		text  string
		uid   uint32
	}
	inputs := []struct {
		m    Message
		want want
	}{
		{Message{Date: time.Date(2003, 5, 6, 7, 8, 9, 0, time.UTC), New: true, UID: 10,
			Content: strings.NewReader("Subject: plain\n\nbody\n")},
			want{"", time.Date(2003, 5, 6, 7, 8, 9, 0, time.UTC), "Subject: plain\n\nbody\n", 10}},
		{Message{Date: time.Date(2010, 1, 1, 0, 0, 0, 0, time.FixedZone("", 3600)), Flags: "S", Keywords: []string{"$Forwarded", "Junk"}, UID: 12,
			Content: strings.NewReader("Subject: crlf\r\n\r\nline\r\n")},
			want{"$Forwarded Junk \\Seen", time.Date(2009, 12, 31, 23, 0, 0, 0, time.UTC), "Subject: crlf\r\n\r\nline\r\n", 12}},
		{Message{Date: time.Date(2015, 2, 3, 4, 5, 6, 0, time.UTC), Flags: "TDFR", UID: 0,
			Content: strings.NewReader("Subject: mixed\n\nno final newline\r\nend")},
			want{"\\Answered \\Deleted \\Draft \\Flagged", time.Date(2015, 2, 3, 4, 5, 6, 0, time.UTC), "Subject: mixed\n\nno final newline\r\nend", 41}},
		{Message{Date: time.Date(2016, 2, 3, 4, 5, 6, 0, time.UTC), UID: 11, Keywords: []string{"Junk"},
			Content: strings.NewReader("Subject: renumbered\n\n\n")},
			want{"Junk", time.Date(2016, 2, 3, 4, 5, 6, 0, time.UTC), "Subject: renumbered\n\n\n", 42}},
	}
	for i := range inputs {
		inputs[i].m.Position = int64(i)
		add(t, w, &inputs[i].m)
	}
	must(t, w.Commit())
	// A control: a file whose W= lies. Dovecot reporting the lie proves it
	// takes sizes from names, so the sizes above are checked for real.
	must(t, os.WriteFile(filepath.Join(md, "cur", "1500000000.M0Q9Xff.liar,S=4,W=999:2,S"), []byte("x\n\n\n"), 0o600))
	if !w.Renumbered() {
		t.Error("Renumbered() = false after X-UID 11 followed 41")
	}
	must(t, filepath.Walk(md, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	}))

	status := doveadm(t, dir, uid, "mailbox", "status", "uidvalidity uidnext messages", "INBOX")
	if len(status) != 1 || status[0]["uidvalidity"] != "1234567" || status[0]["uidnext"] != "44" || status[0]["messages"] != "5" {
		t.Errorf("mailbox status %v", status)
	}
	recs := doveadm(t, dir, uid, "fetch", "uid flags date.received.unixtime size.physical size.virtual text", "mailbox", "INBOX", "all")
	if len(recs) != len(inputs)+1 {
		t.Fatalf("doveadm sees %d messages, want %d: %v", len(recs), len(inputs), recs)
	}
	if liar := recs[len(inputs)]; liar["uid"] != "43" || liar["size.virtual"] != "999" || liar["size.physical"] != "4" {
		t.Errorf("control file: %v, want uid 43 with the sizes of its name", liar)
	}
	for i, r := range recs[:len(inputs)] {
		wt := inputs[i].want
		vsize := len(wt.text) + strings.Count(wt.text, "\n") - strings.Count(wt.text, "\r\n")
		got := fmt.Sprintf("uid=%s flags=%q date=%s size=%s vsize=%s", r["uid"], sortFlags(r["flags"]), r["date.received.unixtime"], r["size.physical"], r["size.virtual"])
		exp := fmt.Sprintf("uid=%d flags=%q date=%d size=%d vsize=%d", wt.uid, wt.flags, wt.date.Unix(), len(wt.text), vsize)
		if got != exp {
			t.Errorf("message %d:\n got %s\nwant %s", i, got, exp)
		}
		if r["text"] != wt.text {
			t.Errorf("message %d: text %q, want %q", i, r["text"], wt.text)
		}
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log")); len(log) > 0 {
		t.Errorf("dovecot.log:\n%s", log)
	}
}

func sortFlags(s string) string {
	f := strings.Fields(s)
	for i := range f {
		for j := i + 1; j < len(f); j++ {
			if f[j] < f[i] {
				f[i], f[j] = f[j], f[i]
			}
		}
	}
	return strings.Join(f, " ")
}
