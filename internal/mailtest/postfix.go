package mailtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Postfix is a private Postfix instance: its own config_directory, queue_directory and
// data_directory under a temporary directory, no network service at all (master.cf lists
// no smtpd), every non-local destination bounced, and local(8) delivering into SpoolDir
// with mailbox_delivery_lock = fcntl, dotlock. It is driven with `postfix -c` and
// `sendmail -C`, which root may point at any configuration directory, so the host's
// /etc/postfix is neither read for settings nor changed.
type Postfix struct {
	Dir      string // holds conf/, queue/, data/ and maillog
	Conf     string // config_directory
	SpoolDir string // mail_spool_directory: mailboxes are SpoolDir/USER
	running  bool
}

// PostfixQueueTimeout bounds WaitQueueEmpty.
var PostfixQueueTimeout = 60 * time.Second

// StartPostfix configures and starts a private Postfix. It is stopped when the test ends.
// Recipients must be system users (local(8) looks them up in the passwd database);
// SystemUser returns one. The daemons inherit TZ, so From_ lines carry local time in it.
func StartPostfix(t testing.TB) *Postfix {
	t.Helper()
	RequirePostfix(t)
	dir := Dir(t)
	p := &Postfix{Dir: dir, Conf: filepath.Join(dir, "conf"), SpoolDir: filepath.Join(dir, "spool")}
	for _, sub := range []string{"conf", "queue", "data", "spool"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// As /var/mail without the mail group: local(8) creates each mailbox and its
	// dotlock as the recipient.
	if err := os.Chmod(p.SpoolDir, 0o1777); err != nil {
		t.Fatal(err)
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		t.Skipf("mailtest: no postfix user: %v", err)
	}
	pfUID, _ := strconv.Atoi(pf.Uid)
	if err := os.Chown(filepath.Join(dir, "data"), pfUID, -1); err != nil {
		t.Fatal(err)
	}
	mainCf := fmt.Sprintf(`# Written by mailtest for one test; nothing here comes from /etc/postfix.
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
syslog_name = postfix-mailtest
myhostname = mailtest.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination = $myhostname, localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
default_transport = error:mailtest relays nothing
relay_transport = error:mailtest relays nothing
mail_spool_directory = %[1]s/spool
home_mailbox =
mailbox_command =
mailbox_delivery_lock = fcntl, dotlock
alias_maps =
alias_database =
biff = no
`, dir)
	// No smtpd, no smtp client, no chroot: only what pickup → cleanup → qmgr → local
	// needs, plus the bounce and logging services those call.
	masterCf := `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`
	for name, body := range map[string]string{"main.cf": mainCf, "master.cf": masterCf} {
		if err := os.WriteFile(filepath.Join(p.Conf, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := run(exec.Command("postfix", "-c", p.Conf, "start")); err != nil {
		t.Fatalf("%v\n%s", err, p.Log())
	}
	p.running = true
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Stop stops the instance and waits for its master to exit.
func (p *Postfix) Stop(t testing.TB) {
	t.Helper()
	if !p.running {
		return
	}
	p.running = false
	if _, err := run(exec.Command("postfix", "-c", p.Conf, "stop")); err != nil {
		t.Errorf("%v\n%s", err, p.Log())
	}
	pid := filepath.Join(p.Dir, "queue", "pid", "master.pid")
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(pid); os.IsNotExist(err) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log returns the instance's maillog, for failure messages.
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.Dir, "maillog"))
	return string(b)
}

// Mailbox returns the spool file of user.
func (p *Postfix) Mailbox(user string) string {
	return filepath.Join(p.SpoolDir, user)
}

// Deliver submits raw (a whole message, header and body) to user through the real
// sendmail command, with envelope sender sender@example.org. Delivery is asynchronous:
// call WaitQueueEmpty before reading the spool.
func (p *Postfix) Deliver(t testing.TB, user string, raw []byte) {
	t.Helper()
	cmd := exec.Command("sendmail", "-C", p.Conf, "-i", "-f", "sender@example.org", "--", user)
	cmd.Stdin = bytes.NewReader(raw)
	if _, err := run(cmd); err != nil {
		t.Fatal(err)
	}
}

// WaitQueueEmpty waits until every submitted message has left the queue, and fails the test
// when one was deferred (it would never reach the spool) or after PostfixQueueTimeout.
func (p *Postfix) WaitQueueEmpty(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(PostfixQueueTimeout)
	for {
		pending, deferred := 0, 0
		for _, q := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
			n := countFiles(filepath.Join(p.Dir, "queue", q))
			pending += n
			if q == "deferred" || q == "hold" {
				deferred += n
			}
		}
		if deferred > 0 {
			t.Fatalf("mailtest: postfix deferred %d messages\n%s", deferred, p.Log())
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailtest: postfix queue still holds %d messages after %v\n%s", pending, PostfixQueueTimeout, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// SystemUser returns the existing system user name (Postfix delivers only to those) as a
// User whose Home is a new directory under dir owned by it, for the Maildir and Dovecot's
// index; the passwd entry's own home is not used.
func SystemUser(t testing.TB, dir, name string) User {
	t.Helper()
	su, err := user.Lookup(name)
	if err != nil {
		t.Skipf("mailtest: no system user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(su.Uid)
	gid, _ := strconv.Atoi(su.Gid)
	u := User{Name: name, Password: "pw-" + name, UID: uid, GID: gid, Home: filepath.Join(dir, "home", strings.ReplaceAll(name, "/", "_"))}
	if err := os.MkdirAll(filepath.Dir(u.Home), 0o755); err != nil {
		t.Fatal(err)
	}
	u.Mkdir(t, u.Home)
	return u
}
