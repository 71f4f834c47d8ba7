package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/fault"
	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// faultRun is one run of the faultinject binary with a fault armed.
type faultRun struct {
	result
	signaled bool // the run's root process died of SIGKILL
	frozen   bool // a worker stopped itself at the point and the test killed the run
}

// runWithFault runs the faultinject binary as root with spec in fault.Env. A worker that stops
// itself at its point (kill-run in a process that may not signal root) is found by polling
// /proc, and then the run's root and every process it started are killed with SIGKILL, as a
// power cut would end them.
func runWithFault(t *testing.T, spec string, args ...string) faultRun {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), fault.Env+"="+spec)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	root := cmd.Process.Pid
	done := make(chan struct{})
	frozen := make(chan bool, 1)
	go func() {
		tick := time.NewTicker(15 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				frozen <- false
				return
			case <-tick.C:
			}
			kids, stopped := runTree(root)
			if !stopped {
				continue
			}
			_ = syscall.Kill(root, syscall.SIGKILL)
			for _, pid := range kids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			// A killed worker releases its run marker's lock only as it exits: the re-run
			// must not start while one still holds it (it would take that run for a live one).
			waitGone(kids, 10*time.Second)
			frozen <- true
			return
		}
	}()
	err := cmd.Wait()
	close(done)
	r := faultRun{result: result{stdout: stdout.String(), stderr: stderr.String()}, frozen: <-frozen}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.signaled = true
		}
	case err != nil:
		t.Fatalf("run %s: %v", binary, err)
	}
	return r
}

// waitGone waits, up to limit, until none of pids is a live process (gone, or a zombie).
func waitGone(pids []int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if err != nil {
				break
			}
			if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// runTree returns the processes beneath root and whether one of them is stopped.
func runTree(root int) (pids []int, stopped bool) {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	state := map[int]byte{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[pid], state[pid] = ppid, f[0][0]
	}
	for pid := range parent {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == root {
				pids = append(pids, pid)
				stopped = stopped || state[pid] == 'T'
				break
			}
		}
	}
	return pids, stopped
}

// faultUser is an account of the fault suite and what its spool holds: the key of every
// message in mbox order (the sha256 of the file the message must become, or "id:" and the
// Message-ID of a message Postfix delivered).
type faultUser struct {
	mailtest.Account
	kind string // "plain", "loose" or "tiny"
	n    int
	want []string
}

// plainSpool is buildMbox's mailbox with the key of each message: its header without the
// Status line, the blank line, its body.
func plainSpool(owner string, n int) ([]byte, []string) {
	var keys []string
	for i := 0; i < n; i++ {
		_, header, body := testMessage(owner, i)
		keys = append(keys, contentKey([]byte(header+"\n"+body)))
	}
	return buildMbox(owner, n), keys
}

// looseSpool is a mailbox of bounces as an old MTA left them: `From MAILER-DAEMON` lines
// without a date (so the file is read in loose mode), no Date: header (so each message's date
// falls back to the spool's mtime), every tenth message the same as the one before it, and
// only some with a Message-ID.
func looseSpool(owner string, n int) ([]byte, []string) {
	var b bytes.Buffer
	var keys []string
	var prev []byte
	for i := 0; i < n; i++ {
		msg := prev
		if i%10 != 9 || prev == nil {
			var m bytes.Buffer
			fmt.Fprintf(&m, "From: Mail Delivery System <MAILER-DAEMON@mdmt.test>\nTo: %s@localhost\nSubject: Undelivered Mail Returned to Sender\n", owner)
			if i%3 == 0 {
				fmt.Fprintf(&m, "Message-ID: <bounce.%d.%s@mdmt.test>\n", i, owner)
			}
			m.WriteString("\nThis is the mail system at host mdmt.test.\n")
			for j := 0; j < 1+(i*13)%40; j++ {
				fmt.Fprintf(&m, "bounce %d line %d: <nobody%d@example.org>: host not found\n", i, j, j)
			}
			msg = m.Bytes()
		}
		prev = msg
		b.WriteString("From MAILER-DAEMON\n")
		b.Write(msg)
		b.WriteString("\n")
		keys = append(keys, contentKey(msg))
	}
	return b.Bytes(), keys
}

// tinySpool is a mailbox of n messages of a few lines each.
func tinySpool(owner string, n int) ([]byte, []string) {
	var b bytes.Buffer
	var keys []string
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("From: a@example.org\nSubject: tiny %d\nMessage-ID: <tiny.%d.%s@mdmt.test>\n\nhi %d\n", i, i, owner, i)
		fmt.Fprintf(&b, "From a@example.org Mon Jan  1 10:%02d:%02d 2024\n%s\n", (i/60)%60, i%60, msg)
		keys = append(keys, contentKey([]byte(msg)))
	}
	return b.Bytes(), keys
}

func contentKey(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// faultRig is the accounts, spool, state and audit log the fault suite runs maildirmig on,
// with a real Postfix delivering into the spool.
type faultRig struct {
	pf                  *mailtest.Postfix
	spool, state, audit string
	users               []*faultUser
}

func (g *faultRig) args(cmd string, extra ...string) []string {
	a := []string{cmd, "-j", "2", "--spool-dir", g.spool, "--state-dir", g.state, "--audit-log", g.audit}
	for _, u := range g.users {
		a = append(a, "--user", u.Name)
	}
	return append(a, extra...)
}

// newFaultRig makes the accounts (with useradd) and starts Postfix. sizes gives each
// account's kind and message count.
func newFaultRig(t *testing.T, prefix string, sizes ...faultUser) *faultRig {
	t.Helper()
	mailtest.RequireUserTools(t)
	g := &faultRig{pf: mailtest.StartPostfix(t)}
	for _, c := range [][]string{{"postconf", "-c", g.pf.Conf, "-e", "stale_lock_time=1s"}, {"postfix", "-c", g.pf.Conf, "reload"}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	g.spool = g.pf.SpoolDir
	g.state = filepath.Join(t.TempDir(), "state")
	g.audit = filepath.Join(t.TempDir(), "log", "audit.jsonl")
	for i, s := range sizes {
		u := s
		u.Account = mailtest.AddAccount(t, fmt.Sprintf("%s%d", prefix, i), "-s", "/usr/sbin/nologin")
		g.users = append(g.users, &u)
	}
	return g
}

// reset gives every account a fresh spool and no Maildir, and forgets the state and the log.
func (g *faultRig) reset(t *testing.T) {
	t.Helper()
	for _, p := range []string{g.state, filepath.Dir(g.audit)} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range g.users {
		if err := os.RemoveAll(filepath.Join(u.Home, "Maildir")); err != nil {
			t.Fatal(err)
		}
		var b []byte
		switch u.kind {
		case "loose":
			b, u.want = looseSpool(u.Name, u.n)
		case "tiny":
			b, u.want = tinySpool(u.Name, u.n)
		default:
			b, u.want = plainSpool(u.Name, u.n)
		}
		p := filepath.Join(g.spool, u.Name)
		_ = os.Remove(p + ".lock")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, int64(len(b))); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
		// An hour ago: a delivery then visibly changes the mtime the dateless messages
		// fall back to.
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// deliver has Postfix append one message to every account's spool, and expects it.
// A run killed while it held a spool's dotlock leaves it, and local(8) defers mail for that
// spool until the lock is stale (stale_lock_time after its ctime); the rig's Postfix counts it
// stale after a second, so that the minutes a server would wait pass here in one.
func (g *faultRig) deliver(t *testing.T, tag string) (stale int) {
	t.Helper()
	for _, u := range g.users {
		if _, err := os.Lstat(filepath.Join(g.spool, u.Name+".lock")); err == nil {
			stale++
		}
	}
	if stale > 0 {
		time.Sleep(2 * time.Second)
	}
	for _, u := range g.users {
		id := fmt.Sprintf("<delivered.%s.%s@mdmt.test>", tag, u.Name)
		g.pf.Deliver(t, u.Name, []byte(fmt.Sprintf("From: late@example.org\nTo: %s@localhost\nSubject: delivered between kill and re-run (%s)\nMessage-ID: %s\n\nlate mail for %s\n", u.Name, tag, id, u.Name)))
		u.want = append(u.want, "id:"+id)
	}
	g.pf.WaitQueueEmpty(t)
	return stale
}

// spoolSums returns the sha256 of every account's spool.
func (g *faultRig) spoolSums(t *testing.T) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, u := range g.users {
		b, err := os.ReadFile(filepath.Join(g.spool, u.Name))
		if err != nil {
			t.Fatal(err)
		}
		sums[u.Name] = contentKey(b)
	}
	return sums
}

// checkExact asserts what a finished migration must leave: every message of the spool in the
// Maildir exactly once, listed once in dovecot-uidlist with UIDs ascending in mbox order,
// nothing in tmp/, no lock (spool dotlock, control file dotlocks) and no state temp file left,
// and verify agreeing.
func (g *faultRig) checkExact(t *testing.T, label string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(label+": "+format, args...)
	}
	for _, u := range g.users {
		if _, err := os.Lstat(filepath.Join(g.spool, u.Name+".lock")); err == nil {
			fail("%s: the spool's dotlock %s.lock left behind", u.Name, u.Name)
		}
		checkMaildirExact(t, fail, filepath.Join(u.Home, "Maildir"), u.Name, u.kind, u.want)
	}
	if ents, err := os.ReadDir(g.state); err == nil {
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".tmp") {
				fail("state temp file %s left behind", e.Name())
			}
		}
	}
	v := runBinary(t, g.args("verify")...)
	if v.code != 0 {
		fail("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	for _, u := range g.users {
		if w := fmt.Sprintf("%s: %d of %d messages verified", u.Name, len(u.want), len(u.want)); !strings.Contains(v.stdout, w) {
			fail("verify stdout lacks %q:\n%s", w, v.stdout)
		}
	}
}

// checkMaildirExact asserts that the Maildir md (of name, whose spool is of kind) holds the
// messages want, each once, listed once in dovecot-uidlist in that order, and nothing in tmp/
// or a control file's dotlock.
func checkMaildirExact(t *testing.T, fail func(string, ...any), md, name, kind string, want []string) {
	t.Helper()
	if ents, err := os.ReadDir(filepath.Join(md, "tmp")); err != nil || len(ents) > 0 {
		fail("%s: tmp/ holds %d files (%v), want none", name, len(ents), err)
	}
	for _, lock := range []string{"dovecot-uidlist.lock", "dovecot-keywords.lock"} {
		if _, err := os.Lstat(filepath.Join(md, lock)); err == nil {
			fail("%s: %s/%s left behind", name, md, lock)
		}
	}
	keys := map[string]string{} // base name → key
	count := map[string]int{}
	for _, f := range messageFiles(t, md) {
		b, err := os.ReadFile(filepath.Join(md, f))
		if err != nil {
			t.Fatal(err)
		}
		key := contentKey(b)
		if !slices.Contains(want, key) {
			if m := messageIDRe.FindSubmatch(b); m != nil {
				key = "id:" + string(m[1])
			} else {
				key = "unknown " + f
			}
		}
		base := filepath.Base(f)
		if i := strings.IndexByte(base, ':'); i >= 0 {
			base = base[:i]
		}
		keys[base] = key
		count[key]++
	}
	wantN := map[string]int{}
	for _, k := range want {
		wantN[k]++
	}
	var wrong []string
	for k, n := range count {
		if n != wantN[k] {
			wrong = append(wrong, fmt.Sprintf("%s %d times, want %d", k, n, wantN[k]))
		}
	}
	for k, n := range wantN {
		if count[k] == 0 {
			wrong = append(wrong, fmt.Sprintf("%s missing, want %d", k, n))
		}
	}
	if len(wrong) > 0 {
		sort.Strings(wrong)
		fail("%s (%s): %d message files for %d messages, %d wrong: %s", name, kind, len(keys), len(want), len(wrong), strings.Join(firstN(wrong, 3), "; "))
	}
	// dovecot-uidlist: every file once, nothing else, UIDs ascending, in mbox order.
	// The header's next UID may lag behind lines appended after it (a run killed before its
	// Commit): Dovecot gives the next message a UID above both, as it does after its own
	// appends, so only the lines are held to account.
	lines, err := readUIDList(filepath.Join(md, "dovecot-uidlist"))
	if err != nil {
		fail("%s: %v", name, err)
		return
	}
	listed := map[string]int{}
	var order []string
	var last uint64
	descending := 0
	for _, l := range lines {
		listed[l.base]++
		if l.uid <= last && descending == 0 {
			fail("%s: dovecot-uidlist: uid %d after %d", name, l.uid, last)
		}
		if l.uid <= last {
			descending++
		}
		last = l.uid
		if k, ok := keys[l.base]; ok {
			order = append(order, k)
		}
	}
	var badList []string
	for base := range keys {
		if listed[base] != 1 {
			badList = append(badList, fmt.Sprintf("%s listed %d times", base, listed[base]))
		}
	}
	for base := range listed {
		if _, ok := keys[base]; !ok {
			badList = append(badList, fmt.Sprintf("%s listed but not in cur/ or new/", base))
		}
	}
	if len(badList) > 0 {
		sort.Strings(badList)
		fail("%s: dovecot-uidlist: %d of %d files not listed exactly once: %s", name, len(badList), len(keys), strings.Join(firstN(badList, 2), "; "))
	}
	if len(wrong) == 0 && strings.Join(order, " ") != strings.Join(want, " ") {
		fail("%s: the uidlist does not give the messages in mbox order", name)
	}
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

type uidListLine struct {
	uid  uint64
	base string
}

// readUIDList reads the lines of a version 3 dovecot-uidlist.
func readUIDList(p string) ([]uidListLine, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("%s: empty", p)
	}
	if head := strings.Fields(sc.Text()); len(head) == 0 || head[0] != "3" {
		return nil, fmt.Errorf("%s: header %q is not version 3", p, sc.Text())
	}
	var lines []uidListLine
	for sc.Scan() {
		l := sc.Text()
		i := strings.Index(l, " :")
		if i < 0 {
			return nil, fmt.Errorf("%s: line %q has no file name", p, l)
		}
		uid, err := strconv.ParseUint(strings.Fields(l[:i])[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s: line %q: %v", p, l, err)
		}
		lines = append(lines, uidListLine{uid: uid, base: l[i+2:]})
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%s: the last line is cut short", p)
	}
	return lines, nil
}

// killPoint is one place of a run killed with SIGKILL: a fault spec, whether Postfix
// delivers to every account between the kill and the re-run, and options of the killed run.
type killPoint struct {
	spec    string
	deliver bool
	flags   []string
}

// killPoints spread over every phase: reading the spool, writing tmp/, syncing, moving in,
// the uidlist dotlock, append and rewrite (workers), and the state and audit writes (root).
// kill-run kills the whole run; kill only the worker(s) passing the point.
var killPoints = []killPoint{
	{"read:1:kill-run", false, nil},
	{"read:150:kill-run", true, nil},
	{"read:40:kill", false, nil},
	{"write:1:kill-run", false, nil},
	{"write:260:kill-run", true, nil},
	{"write:90:kill", true, nil},
	{"fsync:1:kill-run", false, nil}, // the default's syncfs before a batch moves in
	{"fsync:2:kill", true, nil},      // and after it moved in
	{"fsync:200:kill-run", true, []string{"--fsync", "batch"}},
	{"close:10:kill-run", true, nil},
	{"close:530:kill", false, nil},
	{"locked:1:kill-run", false, nil},
	{"locked:2:kill", true, nil},
	{"move:1:kill-run", true, nil},
	{"move:300:kill-run", false, nil},
	{"move:515:kill", true, nil},
	{"batch-moved:1:kill-run", true, nil},
	{"batch-moved:1:kill", false, nil},
	{"uidlist-rewrite:1:kill-run", false, nil},
	{"uidlist-append:1:kill-run", true, nil},
	{"uidlist-append:1:kill", false, nil},
	{"state:1:kill-run", true, nil},
	{"state:2:kill-run", false, nil},
	{"state-saved:1:kill-run", true, nil},
	{"audit:2:kill-run", false, nil},
	{"audit:5:kill-run", true, nil},
	{"audit:9:kill-run", false, nil},
}

// TestKillAndRerun kills `maildirmig mbox` with SIGKILL at every killPoint, the whole run or
// one worker, over three real accounts (a loose-mode spool of dateless bounces among them),
// lets Postfix deliver on some points, and then demands that ONE ordinary re-run finishes the
// job exactly: exit 0, every message once, tmp/ empty, no lock left, the uidlist consistent
// and in mbox order, verify agreeing.
func TestKillAndRerun(t *testing.T) {
	sizes := []faultUser{{kind: "plain", n: 620}, {kind: "loose", n: 160}, {kind: "plain", n: 35}}
	points := killPoints
	if testing.Short() {
		sizes[0].n = 560
		points = nil
		for i, p := range killPoints {
			if i%2 == 0 {
				points = append(points, p)
			}
		}
	}
	g := newFaultRig(t, "fk", sizes...)
	ran, delivered, failed := 0, 0, 0
	for i, kp := range points {
		name := kp.spec
		if len(kp.flags) > 0 {
			name += strings.Join(kp.flags, "")
		}
		if kp.deliver {
			name += "+deliver"
		}
		if !t.Run(name, func(t *testing.T) {
			ran++
			if kp.deliver {
				delivered++
			}
			killAndRerun(t, g, kp, strconv.Itoa(i))
		}) {
			failed++
		}
	}
	t.Logf("kill points run: %d (%d with a Postfix delivery between kill and re-run), %d failed", ran, delivered, failed)
}

// killAndRerun runs the kill point kp on the rig's accounts, then one plain re-run, and checks
// the result is exact.
func killAndRerun(t *testing.T, g *faultRig, kp killPoint, tag string) {
	label := fmt.Sprintf("kill point %s %v (deliver %v)", kp.spec, kp.flags, kp.deliver)
	g.reset(t)
	r := runWithFault(t, kp.spec, g.args("mbox", kp.flags...)...)
	wholeRun := strings.HasSuffix(kp.spec, ":kill-run")
	switch {
	case wholeRun && !r.signaled:
		t.Errorf("%s: the run was not killed (exit %d, frozen %v): the point was not reached\n%s%s", label, r.code, r.frozen, r.stdout, r.stderr)
	case !wholeRun && (r.code != 3 || !strings.Contains(r.stderr, "killed")):
		t.Errorf("%s: exit %d, want 3 with a worker killed: the point was not reached\n%s%s", label, r.code, r.stdout, r.stderr)
	}
	if kp.deliver {
		if n := g.deliver(t, tag); n > 0 {
			t.Logf("%s: %d spool dotlocks of the killed run held Postfix back until stale", label, n)
		}
	}
	again := runBinary(t, g.args("mbox")...)
	if again.code != 0 {
		t.Errorf("%s: re-run: exit %d, want 0\n%s%s", label, again.code, again.stdout, again.stderr)
	}
	g.checkExact(t, label)
}

// errnoPoints are the points that take an injected errno, each with the pass it fails
// from; state and audit are root's, the others a worker's. The default mode syncs once a
// batch: fsync:1 is the first batch's sync, running while the second is written, and
// fsync:2 the last one's, at the end.
var errnoPoints = []string{"write:5", "fsync:1", "fsync:2", "close:7", "move:4", "uidlist-rewrite:1", "uidlist-append:1", "state:1", "audit:3"}

// TestInjectedErrors injects EIO, ENOSPC and EDQUOT at every point that writes. Each must give
// a clear error naming the user and the file, exit 3 (some users failed), leave nothing half
// written in cur/ or new/ and the spools untouched; an ordinary re-run once the fault is gone
// must then be exact.
func TestInjectedErrors(t *testing.T) {
	sizes := []faultUser{{kind: "plain", n: 530}, {kind: "loose", n: 60}}
	errnos := []string{"eio", "enospc", "edquot"}
	if testing.Short() {
		sizes[0].n = 520
	}
	g := newFaultRig(t, "fe", sizes...)
	runs, failed := 0, 0
	for i, point := range errnoPoints {
		for j, e := range errnos {
			if testing.Short() && (i+j)%3 != 0 {
				continue
			}
			spec := point + ":" + e
			if !t.Run(spec, func(t *testing.T) {
				runs++
				injectAndRerun(t, g, spec)
			}) {
				failed++
			}
			// The default syncs the file system as a whole; --fsync batch syncs each file,
			// and a failure there names the file.
			if strings.HasPrefix(point, "fsync:") && !t.Run(spec+"/batch", func(t *testing.T) {
				runs++
				injectAndRerun(t, g, spec, "--fsync", "batch")
			}) {
				failed++
			}
		}
	}
	t.Logf("injected faults run: %d (%d points x %d errnos, fsync also with --fsync batch), %d failed", runs, len(errnoPoints), len(errnos), failed)
}

var errnoTexts = map[string]string{"eio": "input/output error", "enospc": "no space left on device", "edquot": "disk quota exceeded"}

// injectAndRerun runs with the errno fault spec (POINT:N:ERRNO) on the rig's accounts, checks
// what the failed run said and left, then has one plain re-run finish the job exactly.
func injectAndRerun(t *testing.T, g *faultRig, spec string, extra ...string) {
	point := spec[:strings.LastIndexByte(spec, ':')]
	errno := spec[len(point)+1:]
	label := "fault " + spec
	g.reset(t)
	before := g.spoolSums(t)
	r := runWithFault(t, spec, g.args("mbox", extra...)...)
	wantCode := 3
	if strings.HasPrefix(point, "audit:") {
		// A failed write to the audit log stops the run.
		wantCode = 1
	}
	if r.code != wantCode {
		t.Errorf("%s: exit %d, want %d\n%s%s", label, r.code, wantCode, r.stdout, r.stderr)
	}
	if strings.HasPrefix(point, "fsync:") && len(extra) == 0 {
		point = "syncfs:" // names the Maildir whose file system failed to sync
	}
	checkFaultMessage(t, label, r.stderr, errnoTexts[errno], g, point)
	if after := g.spoolSums(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("%s: a spool changed", label)
	}
	for _, u := range g.users {
		checkWhole(t, label, u)
	}
	again := runBinary(t, g.args("mbox")...)
	if again.code != 0 {
		t.Errorf("%s: re-run: exit %d, want 0\n%s%s", label, again.code, again.stdout, again.stderr)
	}
	g.checkExact(t, label)
}

// checkFaultMessage asserts the console names the failed user and the file the failed call was
// on, with the errno's text, in the house style.
func checkFaultMessage(t *testing.T, label, stderr, errText string, g *faultRig, point string) {
	t.Helper()
	var line string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, errText) {
			line = l
			break
		}
	}
	if line == "" {
		t.Errorf("%s: no line says %q:\n%s", label, errText, stderr)
		return
	}
	if !strings.HasPrefix(line, "maildirmig: error: ") {
		t.Errorf("%s: %q is not a `maildirmig: error:` line", label, line)
	}
	var file string
	switch {
	case strings.HasPrefix(point, "state:"):
		file = g.state + "/"
	case strings.HasPrefix(point, "audit:"):
		file = g.audit
	case strings.HasPrefix(point, "uidlist-"):
		file = "/Maildir/dovecot-uidlist"
	case strings.HasPrefix(point, "syncfs:"):
		file = "/Maildir: "
	default:
		file = "/Maildir/"
	}
	if !strings.Contains(line, file) {
		t.Errorf("%s: %q does not name the file (%s...)", label, line, file)
	}
	if strings.HasPrefix(point, "audit:") {
		return // the run stops: no user is to blame
	}
	named := false
	for _, u := range g.users {
		named = named || regexp.MustCompile(`\b`+u.Name+`\b`).MatchString(line)
	}
	if !named {
		t.Errorf("%s: %q names no user", label, line)
	}
	seen := map[string]bool{}
	for _, w := range strings.Fields(line) {
		w = strings.TrimSuffix(w, ":")
		if strings.HasPrefix(w, "/") && seen[w] {
			t.Errorf("%s: %q names %s twice", label, line, w)
		}
		seen[w] = true
	}
}

// checkWhole asserts that every file in cur/ and new/ is a whole message of the user's spool.
func checkWhole(t *testing.T, label string, u *faultUser) {
	t.Helper()
	checkWholeIn(t, label+": "+u.Name, filepath.Join(u.Home, "Maildir"), u.want)
}

// checkWholeIn asserts that every file in md's cur/ and new/ is one of the messages want.
func checkWholeIn(t *testing.T, label, md string, want []string) {
	t.Helper()
	for _, f := range messageFiles(t, md) {
		b, err := os.ReadFile(filepath.Join(md, f))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(want, contentKey(b)) {
			t.Errorf("%s: %s is not a whole message of the spool (%d bytes)", label, f, len(b))
		}
	}
}

// TestFaultSpecRefused shows that a faultinject binary given a malformed fault stops before
// it does anything, and says why.
func TestFaultSpecRefused(t *testing.T) {
	r := runWithFault(t, "write:0:eio", "mbox", "--dry-run", "--user", "nobody-at-all")
	if r.code != 1 || !strings.Contains(r.stderr, `maildirmig: error: MAILDIRMIG_FAULT="write:0:eio": count "0" is not a positive number`) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestConvertFaults injects an errno at each writing point of `maildirmig convert --from F`
// on a loose-mode spool of dateless bounces: exit 1 with the file named, nothing half written,
// F untouched. F's mtime then changes (a touch), and one plain re-run, which has no state to
// go by, must bring the Maildir to every message exactly once.
func TestConvertFaults(t *testing.T) {
	mailtest.RequireRoot(t)
	points := []string{"write:3:eio", "fsync:2:enospc", "close:4:edquot", "move:3:eio", "uidlist-rewrite:1:enospc", "uidlist-append:1:edquot"}
	for _, spec := range points {
		t.Run(spec, func(t *testing.T) {
			dir := t.TempDir()
			src, md := filepath.Join(dir, "mbox"), filepath.Join(dir, "Maildir")
			b, want := looseSpool("convert", 560)
			if err := os.WriteFile(src, b, 0o600); err != nil {
				t.Fatal(err)
			}
			old := time.Now().Add(-time.Hour)
			if err := os.Chtimes(src, old, old); err != nil {
				t.Fatal(err)
			}
			r := runWithFault(t, spec, "convert", "--from", src, md)
			label := "convert with " + spec
			if r.code != 1 {
				t.Errorf("%s: exit %d, want 1\n%s%s", label, r.code, r.stdout, r.stderr)
			}
			errno := spec[strings.LastIndexByte(spec, ':')+1:]
			if !regexp.MustCompile(`(?m)^maildirmig: error: .*` + regexp.QuoteMeta(md) + `.*` + errnoTexts[errno] + `$`).MatchString(r.stderr) {
				t.Errorf("%s: no error line naming %s and saying %q:\n%s", label, md, errnoTexts[errno], r.stderr)
			}
			if after, err := os.ReadFile(src); err != nil || !bytes.Equal(after, b) {
				t.Errorf("%s: the source changed", label)
			}
			checkWholeIn(t, label, md, want)
			// A touch, a restore, a delivery: anything may change the source's mtime between runs.
			if err := os.Chtimes(src, time.Now(), time.Now()); err != nil {
				t.Fatal(err)
			}
			again := runBinary(t, "convert", "--from", src, md)
			if again.code != 0 {
				t.Errorf("%s: re-run: exit %d\n%s%s", label, again.code, again.stdout, again.stderr)
			}
			checkMaildirExact(t, func(format string, args ...any) {
				t.Helper()
				t.Errorf(label+": "+format, args...)
			}, md, "convert", "loose", want)
		})
	}
	t.Logf("convert faults run: %d", len(points))
}
