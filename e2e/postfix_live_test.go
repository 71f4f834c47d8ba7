package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// Messages delivered while the migration runs: by Postfix, and by the slow deliverer.
const (
	liveMessages = 200
	liveSlow     = 20
)

// slowDeliver appends raw to the mbox spool as one message, the way local(8) does with
// mailbox_delivery_lock = fcntl, dotlock (the dotlock SPOOL.lock first, then a classic fcntl
// write lock), but writes it in two halves with a pause between.
func slowDeliver(spool string, raw []byte) error {
	lock := spool + ".lock"
	deadline := time.Now().Add(60 * time.Second)
	for {
		fd, err := unix.Open(lock, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			unix.Close(fd)
			break
		}
		if !errors.Is(err, unix.EEXIST) || time.Now().After(deadline) {
			return fmt.Errorf("dotlock %s: %w", lock, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer os.Remove(lock)
	f, err := os.OpenFile(spool, os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLKW, &lk); err != nil {
		return fmt.Errorf("fcntl lock %s: %w", spool, err)
	}
	msg := append([]byte("From slow@example.org "+time.Now().Format("Mon Jan _2 15:04:05 2006")+"\n"), raw...)
	msg = append(msg, '\n')
	half := len(msg) / 2
	if _, err := f.Write(msg[:half]); err != nil {
		return err
	}
	time.Sleep(150 * time.Millisecond)
	if _, err := f.Write(msg[half:]); err != nil {
		return err
	}
	return f.Sync()
}

// sendmail submits raw to user through the instance's sendmail. Unlike mailtest's Deliver it
// returns the error instead of failing the test, so that a goroutine may call it.
func sendmail(p *mailtest.Postfix, user string, raw []byte) error {
	cmd := exec.Command("sendmail", "-C", p.Conf, "-i", "-f", "sender@example.org", "--", user)
	cmd.Stdin = bytes.NewReader(raw)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sendmail: %w: %s", err, out)
	}
	return nil
}

// waitDelivered waits until Postfix's queue is empty. Unlike mailtest's WaitQueueEmpty it
// accepts deferred messages: local(8) defers a delivery whose mailbox stayed locked, which is
// how a live migration must look to it, and those are retried at once. It returns how many
// deferrals the log shows.
func waitDelivered(t *testing.T, p *mailtest.Postfix) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pending, deferred := 0, 0
		for _, q := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
			filepath.WalkDir(filepath.Join(p.Dir, "queue", q), func(_ string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					pending++
					if q == "deferred" {
						deferred++
					}
				}
				return nil
			})
		}
		if pending == 0 {
			return strings.Count(p.Log(), "status=deferred")
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix queue still holds %d messages\n%s", pending, p.Log())
		}
		if deferred > 0 {
			if out, err := exec.Command("postqueue", "-c", p.Conf, "-f").CombinedOutput(); err != nil {
				t.Fatalf("postqueue -f: %v: %s", err, out)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var writtenRe = regexp.MustCompile(`: \d+ messages, (\d+) written, `)

// TestPostfixLiveDelivery has the real Postfix local(8) (mailbox_delivery_lock = fcntl,
// dotlock) deliver into a real user's spool while `maildirmig mbox` runs again and again, two
// runs at a time, and then once more after the queue is empty. Every delivered message must
// then be in the Maildir exactly once with the body that was sent (a run that read a half
// delivered message, or a delivery that slipped between two runs' reads, would show), and
// verify must prove the lot from the spool.
func TestPostfixLiveDelivery(t *testing.T) {
	mailtest.RequirePostfix(t)
	mailtest.RequireUserTools(t)
	u := mailtest.AddAccount(t, "live", "-s", "/usr/sbin/nologin")
	p := mailtest.StartPostfix(t)
	state := filepath.Join(t.TempDir(), "state")
	audit := filepath.Join(t.TempDir(), "log", "audit.jsonl")
	args := []string{"mbox", "--spool-dir", p.SpoolDir, "--state-dir", state, "--audit-log", audit, "--user", u.Name}

	sent := make(map[string]string, liveMessages) // Message-ID → body
	raws := make([][]byte, liveMessages)
	for i := range raws {
		id, header, body := testMessage(u.Name, i)
		if i%8 == 0 {
			// Some big messages: local(8) appends them in many writes, which widens the window
			// in which a migration that did not wait for its lock would read half of one.
			body = strings.Repeat(body, 1+(256<<10)/len(body))
		}
		sent[id] = body
		raws[i] = []byte(header + "\n" + body)
	}

	// Beside Postfix, a slow deliverer appends messages in two halves a moment apart, holding
	// the same locks local(8) takes: it makes the window in which an unlocked reader would see
	// half a message wide enough to be hit.
	slow := make([][]byte, liveSlow)
	for i := range slow {
		id, header, body := testMessage("slow-"+u.Name, i)
		sent[id] = body
		slow[i] = []byte(header + "\n" + body)
	}

	delivered := make(chan error, 2)
	go func() {
		for _, raw := range raws {
			if err := sendmail(p, u.Name, raw); err != nil {
				delivered <- err
				return
			}
		}
		delivered <- nil
	}()
	go func() {
		for i, raw := range slow {
			// Postfix makes the spool; wait for it rather than create it as root.
			for i == 0 {
				if _, err := os.Stat(p.Mailbox(u.Name)); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := slowDeliver(p.Mailbox(u.Name), raw); err != nil {
				delivered <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		delivered <- nil
	}()

	// Two loops of migrations race each other and the deliveries until every message is
	// delivered; each loop runs at least three times.
	var mu sync.Mutex
	var runs, writtenLive int
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				if n >= 3 {
					select {
					case <-stop:
						return
					default:
					}
				}
				r := runBinaryErr(args...)
				mu.Lock()
				runs++
				if r.code != 0 || r.stderr != "" {
					failures = append(failures, fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr))
				}
				if m := writtenRe.FindStringSubmatch(r.stdout); m != nil {
					w, _ := strconv.Atoi(m[1])
					writtenLive += w
				}
				mu.Unlock()
				// local(8) retries a held dotlock only once a second: back-to-back runs
				// would starve it (it then defers the message, which waitDelivered
				// retries), and an administrator does not run the migration in a loop.
				time.Sleep(300 * time.Millisecond)
			}
		}()
	}
	for range 2 {
		if err := <-delivered; err != nil {
			close(stop)
			wg.Wait()
			t.Fatal(err)
		}
	}
	// sendmail only queued the messages: the runs go on until local(8) has delivered them all.
	deferrals := waitDelivered(t, p)
	close(stop)
	wg.Wait()
	for _, f := range failures {
		t.Errorf("a migration during delivery failed: %s", f)
	}

	final := runBinary(t, args...)
	if final.code != 0 || final.stderr != "" {
		t.Fatalf("final run: exit %d, stdout %q, stderr %q", final.code, final.stdout, final.stderr)
	}
	writtenFinal := 0
	if m := writtenRe.FindStringSubmatch(final.stdout); m != nil {
		writtenFinal, _ = strconv.Atoi(m[1])
	}
	t.Logf("%d messages delivered (%d by Postfix, %d deferrals on a held lock); %d migration runs during delivery wrote %d, the final run %d",
		len(sent), liveMessages, deferrals, runs, writtenLive, writtenFinal)
	if writtenLive+writtenFinal != len(sent) {
		t.Errorf("the runs wrote %d messages in all, want %d", writtenLive+writtenFinal, len(sent))
	}
	spool, err := os.ReadFile(p.Mailbox(u.Name))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(spool, []byte("\nFrom sender@example.org ")) + bytes.Count(spool, []byte("\nFrom slow@example.org ")) + 1; n != len(sent) {
		t.Errorf("the spool holds %d From_ lines, want %d", n, len(sent))
	}

	maildir := filepath.Join(u.Home, "Maildir")
	files := checkTree(t, maildir, u.UID, u.GID)
	seen := make(map[string]int)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(maildir, f))
		if err != nil {
			t.Fatal(err)
		}
		m := messageIDRe.FindSubmatch(b)
		if m == nil {
			t.Errorf("%s: no Message-ID (%d bytes)", f, len(b))
			continue
		}
		id := string(m[1])
		seen[id]++
		want, ok := sent[id]
		if !ok {
			t.Errorf("%s: Message-ID %s was never sent", f, id)
			continue
		}
		_, body, found := strings.Cut(string(b), "\n\n")
		if !found || body != want {
			t.Errorf("%s (%s): body of %d bytes differs from the %d bytes sent", f, id, len(body), len(want))
		}
	}
	lost, dups := 0, 0
	for id := range sent {
		switch n := seen[id]; {
		case n == 0:
			lost++
			t.Errorf("%s was delivered but is not in the Maildir", id)
		case n > 1:
			dups += n - 1
			t.Errorf("%s is in the Maildir %d times", id, n)
		}
	}
	t.Logf("Maildir: %d files, %d distinct messages, %d lost, %d duplicates", len(files), len(seen), lost, dups)

	v := runBinary(t, "verify", "--spool-dir", p.SpoolDir, "--state-dir", state, "--audit-log", audit, "--user", u.Name)
	if want := fmt.Sprintf("%s: %d of %d messages verified", u.Name, len(sent), len(sent)); v.code != 0 || !strings.Contains(v.stdout, want) {
		t.Errorf("verify: exit %d, stdout %q (want %q), stderr %q", v.code, v.stdout, want, v.stderr)
	}
}
