package maildir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	doveadmPath = "/usr/bin/doveadm"
	mailUID     = 65534 // the mail user doveadm runs as, and its group
)

// requireDoveadm skips a test that needs doveadm, and root to run it as the
// mail user.
func requireDoveadm(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(doveadmPath); err != nil {
		t.Skipf("skipping: %s not installed", doveadmPath)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to run doveadm as an unprivileged mail user")
	}
}

// mailUserDir returns a temporary directory the mail user can reach:
// t.TempDir's own parent is 0700.
func mailUserDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.Chmod(filepath.Dir(dir), 0o755))
	must(t, os.Chmod(dir, 0o755))
	return dir
}

// doveadm runs doveadm as the unprivileged user owning dir/Maildir, with a
// throwaway configuration, and decodes its JSON output. Running it as the
// user (not -u, which needs a running auth service) mirrors how the mail
// user's own processes see the Maildir.
func doveadm(t *testing.T, dir string, uid int, args ...string) []map[string]string {
	t.Helper()
	recs, _ := doveadmLog(t, dir, uid, args...)
	return recs
}

// doveadmLog is doveadm that also returns what doveadm logged: it logs a
// broken file as an error on stderr and carries on.
func doveadmLog(t *testing.T, dir string, uid int, args ...string) ([]map[string]string, string) {
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
	return recs, stderr.String()
}

// TestDovecotReadsWhatWeWrite has Dovecot 2.3 judge a Maildir written by the
// Writer: UIDs, UIDVALIDITY, flags, keywords, received dates, sizes taken from
// S= and W=, and the bytes of every message.
func TestDovecotReadsWhatWeWrite(t *testing.T) {
	requireDoveadm(t)
	dir := mailUserDir(t)
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
		// No date of its own: named with the time 0, received at the given mtime.
		{Message{MTime: time.Date(2019, 7, 8, 9, 10, 11, 0, time.UTC), Flags: "S",
			Content: strings.NewReader("Subject: undated\n\nbounce\n")},
			want{"\\Seen", time.Date(2019, 7, 8, 9, 10, 11, 0, time.UTC), "Subject: undated\n\nbounce\n", 43}},
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
	chownTree(t, md, mailUID)

	status := doveadm(t, dir, mailUID, "mailbox", "status", "uidvalidity uidnext messages", "INBOX")
	if len(status) != 1 || status[0]["uidvalidity"] != "1234567" || status[0]["uidnext"] != "45" || status[0]["messages"] != "6" {
		t.Errorf("mailbox status %v", status)
	}
	recs, log := doveadmLog(t, dir, mailUID, "fetch", "uid flags date.received.unixtime size.physical size.virtual text", "mailbox", "INBOX", "all")
	if len(recs) != len(inputs)+1 {
		t.Fatalf("doveadm sees %d messages, want %d: %v", len(recs), len(inputs), recs)
	}
	if liar := recs[len(inputs)]; liar["uid"] != "44" || liar["size.virtual"] != "999" || liar["size.physical"] != "4" {
		t.Errorf("control file: %v, want uid 44 with the sizes of its name", liar)
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
	// doveadm logs to stderr, not to log_path.
	if log != "" {
		t.Errorf("doveadm logged:\n%s", log)
	}
}

// TestDovecotJudgesUIDLists has Dovecot read each file of uidlistCases beside
// the messages a, b and c, and holds the parser to Dovecot's verdict. Where the
// parser accepts a file, Dovecot keeps its UIDVALIDITY and every UID the parser
// read, and numbers the other messages from the parser's next UID on. Where the
// parser calls a file broken, Dovecot logs it as broken at the same line, or,
// for a header it cannot read at all, silently starts a new UIDVALIDITY (every
// such case claims UIDVALIDITY 1).
func TestDovecotJudgesUIDLists(t *testing.T) {
	requireDoveadm(t)
	for _, tt := range uidlistCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := mailUserDir(t)
			md := filepath.Join(dir, "Maildir")
			mkdirs(t, md+"/cur", md+"/new", md+"/tmp")
			for _, name := range []string{"a", "b", "c"} {
				must(t, os.WriteFile(filepath.Join(md, "cur", name), []byte("Subject: "+name+"\n\n"+name+"\n"), 0o600))
			}
			must(t, os.WriteFile(filepath.Join(md, uidlistName), []byte(tt.in), 0o600))
			chownTree(t, md, mailUID)
			u, err := parseUIDList(strings.NewReader(tt.in))

			recs, log := doveadmLog(t, dir, mailUID, "fetch", "uid guid", "mailbox", "INBOX", "all")
			status := doveadm(t, dir, mailUID, "mailbox", "status", "uidvalidity", "INBOX")
			if len(recs) != 3 || len(status) != 1 {
				t.Fatalf("doveadm sees %v, status %v", recs, status)
			}
			got := map[string]string{}
			for _, r := range recs {
				got[r["guid"]] = r["uid"]
			}
			broken := strings.Contains(log, "Broken file "+md+"/"+uidlistName+" line ")
			switch {
			case tt.stricter:
				if broken || got["a"] != "1" {
					t.Errorf("Dovecot no longer reads what only the parser refuses: UIDs %v\n%s", got, log)
				}
			case err == nil:
				if status[0]["uidvalidity"] != fmt.Sprint(u.validity) {
					t.Errorf("Dovecot's UIDVALIDITY %s, the parser read %d\n%s", status[0]["uidvalidity"], u.validity, log)
				}
				for _, name := range []string{"a", "b", "c"} {
					want, listed := u.byBase[name]
					var n uint32
					fmt.Sscan(got[name], &n)
					if listed && n != want || !listed && n < u.next {
						t.Errorf("Dovecot gave %s UID %d; the parser read UID %d (listed %v), next %d\n%s", name, n, want, listed, u.next, log)
					}
				}
			default:
				atLine := strings.Contains(log, fmt.Sprintf("Broken file %s/%s line %d: ", md, uidlistName, tt.badLine))
				renewed := tt.badLine == 1 && status[0]["uidvalidity"] != "1"
				if !atLine && !renewed {
					t.Errorf("the parser says %v; Dovecot keeps UIDVALIDITY %s and UIDs %v\n%s", err, status[0]["uidvalidity"], got, log)
				}
			}
		})
	}
}

// chownTree gives everything under dir to the mail user uid, whose group has
// the same number, as the mail user's own processes would have made it.
func chownTree(t *testing.T, dir string, uid int) {
	t.Helper()
	must(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	}))
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

// TestDovecotMeanwhile has Dovecot read the Maildir while a Writer is still
// adding to it: it must see the UIDs the Writer gives in the lines the Writer
// appended (the header not yet raised), and when it numbers a message that
// arrived meanwhile (Postfix delivering into new/), the Writer's next UIDs go
// above it, and Dovecot keeps every UID.
func TestDovecotMeanwhile(t *testing.T) {
	requireDoveadm(t)
	dir := mailUserDir(t)
	md := filepath.Join(dir, "Maildir")
	want := map[string]uint32{} // subject → UID, as the Writer reports it durable
	durable := 0                // Durable reports in Add order: message m<durable> is next
	_, w := newTestWriter(t, md, Options{BatchFiles: 2, Durable: func(r Result) {
		want[fmt.Sprintf("m%d", durable)] = r.UID
		durable++
	}})
	w.SetUIDBase(777, 0)
	addSubject := func(i int, uid uint32) {
		m := msg(int64(i), fmt.Sprintf("Subject: m%d\n\nbody %d\n", i, i))
		m.UID = uid
		add(t, w, m)
	}
	check := func(stage string) {
		t.Helper()
		chownTree(t, md, mailUID)
		recs, log := doveadmLog(t, dir, mailUID, "fetch", "uid hdr.subject", "mailbox", "INBOX", "all")
		got := map[string]uint32{}
		for _, r := range recs {
			var n uint32
			fmt.Sscan(r["uid"], &n)
			got[strings.TrimSpace(r["hdr.subject"])] = n
		}
		for subj, uid := range want {
			if got[subj] != uid {
				t.Errorf("%s: Dovecot gives %s UID %d, the Writer gave %d (all: %v)\n%s", stage, subj, got[subj], uid, got, log)
			}
		}
		if log != "" {
			t.Errorf("%s: doveadm logged:\n%s", stage, log)
		}
	}
	// UIDs 5 and 9 from the mbox, then 10: created with a header, then appended.
	addSubject(0, 5)
	addSubject(1, 9)
	must(t, w.Flush())
	addSubject(2, 0)
	must(t, w.Flush())
	ul := readFile(t, filepath.Join(md, uidlistName))
	if !strings.HasPrefix(ul, "3 V777 N10 G") {
		t.Fatalf("uidlist header %q, want N10 (the append raises it)", strings.SplitN(ul, "\n", 2)[0])
	}
	check("after Flush")

	// Postfix delivers; Dovecot numbers the message next.
	must(t, os.WriteFile(filepath.Join(md, "new", "1700000000.delivered.host"), []byte("Subject: delivered\n\nhi\n"), 0o600))
	chownTree(t, md, mailUID)
	recs := doveadm(t, dir, mailUID, "fetch", "uid", "mailbox", "INBOX", "header", "subject", "delivered")
	if len(recs) != 1 || recs[0]["uid"] != "11" {
		t.Fatalf("Dovecot numbered the delivered message %v, want UID 11", recs)
	}
	want["delivered"] = 11
	addSubject(3, 0)
	addSubject(4, 0)
	must(t, w.Commit())
	if want["m3"] != 12 || want["m4"] != 13 || !w.Renumbered() {
		t.Errorf("UIDs after Dovecot's: %d, %d (renumbered %v), want 12, 13", want["m3"], want["m4"], w.Renumbered())
	}
	check("after Commit")
	status := doveadm(t, dir, mailUID, "mailbox", "status", "uidvalidity uidnext messages", "INBOX")
	if len(status) != 1 || status[0]["uidvalidity"] != "777" || status[0]["uidnext"] != "14" || status[0]["messages"] != "6" {
		t.Errorf("mailbox status %v", status)
	}
}

// TestDovecotAfterLineCutShort has Dovecot read a uidlist that had a line
// cut short before the Writer appended: Dovecot must keep every UID the
// Writer gave, without calling the file broken.
func TestDovecotAfterLineCutShort(t *testing.T) {
	requireDoveadm(t)
	dir := mailUserDir(t)
	md := filepath.Join(dir, "Maildir")
	want := map[string]uint32{}
	write := func(n int) {
		_, w := newTestWriter(t, md, Options{})
		for i := range n {
			subj := fmt.Sprintf("m%d", i)
			r := add(t, w, msg(int64(i), fmt.Sprintf("Subject: %s\n\nbody %d\n", subj, i)))
			want[subj] = r.UID
		}
		must(t, w.Commit())
	}
	write(3)
	f, err := os.OpenFile(filepath.Join(md, uidlistName), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.WriteString("4")
	must(t, err)
	must(t, f.Close())
	write(6)
	chownTree(t, md, mailUID)
	recs, log := doveadmLog(t, dir, mailUID, "fetch", "uid hdr.subject", "mailbox", "INBOX", "all")
	got := map[string]uint32{}
	for _, r := range recs {
		var n uint32
		fmt.Sscan(r["uid"], &n)
		got[strings.TrimSpace(r["hdr.subject"])] = n
	}
	if len(got) != 6 || !reflect.DeepEqual(got, want) || log != "" {
		t.Errorf("Dovecot gives UIDs %v, the Writer gave %v\n%s", got, want, log)
	}
}
