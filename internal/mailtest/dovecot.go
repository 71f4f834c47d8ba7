package mailtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// DovecotConfig is what a test chooses about its Dovecot.
type DovecotConfig struct {
	// MailLocation is the default mail_location, for instance "mbox:~/mail:INBOX=~/inbox" or
	// "maildir:~/Maildir". Users may override it (User.MailLocation).
	MailLocation string
	// Users are written to the passwd-file that serves as passdb and userdb.
	Users []User
	// Extra is appended to dovecot.conf verbatim.
	Extra string
}

// Dovecot is one Dovecot configuration under a temporary directory. Without Start it is
// used through doveadm on local storage only ("doveadm only" mode); after Start a daemon
// serves IMAP and POP3 on 127.0.0.1.
type Dovecot struct {
	Dir      string // holds dovecot.conf, passwd, base_dir (run/), state_dir and dovecot.log
	Conf     string // path of dovecot.conf
	IMAPAddr string // "127.0.0.1:port", set by Start
	POP3Addr string // "127.0.0.1:port", set by Start

	mu      sync.Mutex
	cfg     DovecotConfig
	running bool
}

// NewDovecot writes a configuration for cfg in a new directory and returns it in
// doveadm-only mode. It skips the test when root or Dovecot is missing.
func NewDovecot(t testing.TB, cfg DovecotConfig) *Dovecot {
	t.Helper()
	RequireDovecot(t)
	d := &Dovecot{Dir: Dir(t), cfg: cfg}
	d.Conf = filepath.Join(d.Dir, "dovecot.conf")
	for _, sub := range []string{"run", "state"} {
		if err := os.Mkdir(filepath.Join(d.Dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.IMAPAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d.POP3Addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	if err := d.write(); err != nil {
		t.Fatal(err)
	}
	return d
}

// StartDovecot is NewDovecot followed by Start.
func StartDovecot(t testing.TB, cfg DovecotConfig) *Dovecot {
	t.Helper()
	d := NewDovecot(t, cfg)
	d.Start(t)
	return d
}

func (d *Dovecot) write() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var pw strings.Builder
	for _, u := range d.cfg.Users {
		extra := ""
		if u.MailLocation != "" {
			extra = "userdb_mail=" + u.MailLocation
		}
		fmt.Fprintf(&pw, "%s:{PLAIN}%s:%d:%d::%s::%s\n", u.Name, u.Password, u.UID, u.GID, u.Home, extra)
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "passwd"), []byte(pw.String()), 0o644); err != nil {
		return fmt.Errorf("mailtest: %w", err)
	}
	_, imapPort, _ := net.SplitHostPort(d.IMAPAddr)
	_, pop3Port, _ := net.SplitHostPort(d.POP3Addr)
	conf := fmt.Sprintf(`# Written by mailtest for one test; nothing here comes from /etc/dovecot.
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
info_log_path = %[1]s/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = %[2]s
first_valid_uid = 1
first_valid_gid = 1
mbox_write_locks = fcntl dotlock
pop3_uidl_format = %%08Xu%%08Xv
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%%u %[1]s/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[3]s
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %[4]s
  }
  inet_listener pop3s {
    port = 0
  }
}
%[5]s
`, d.Dir, d.cfg.MailLocation, imapPort, pop3Port, d.cfg.Extra)
	if err := os.WriteFile(d.Conf, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("mailtest: %w", err)
	}
	return nil
}

// AddUser adds u to the passwd-file (Dovecot rereads it when it changes).
func (d *Dovecot) AddUser(t testing.TB, u User) {
	t.Helper()
	d.mu.Lock()
	d.cfg.Users = append(d.cfg.Users, u)
	d.mu.Unlock()
	if err := d.write(); err != nil {
		t.Fatal(err)
	}
}

// User returns the user named name, as configured.
func (d *Dovecot) User(t testing.TB, name string) User {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.cfg.Users {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("mailtest: dovecot has no user %q", name)
	return User{}
}

// MailLocation returns the mail_location in effect for user.
func (d *Dovecot) MailLocation(t testing.TB, user string) string {
	t.Helper()
	u := d.User(t, user)
	if u.MailLocation != "" {
		return u.MailLocation
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.MailLocation
}

// Start starts the Dovecot daemon and waits until IMAP and POP3 accept connections. It is
// stopped when the test ends.
func (d *Dovecot) Start(t testing.TB) {
	t.Helper()
	// The master daemonizes and its children inherit stdout and stderr: with pipes there,
	// Run would wait for them until Dovecot stops. A file does not hold Run up.
	out, err := os.OpenFile(filepath.Join(d.Dir, "dovecot.out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("dovecot", "-c", d.Conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("mailtest: dovecot: %v: %s\n%s", err, b, d.Log())
	}
	d.mu.Lock()
	d.running = true
	d.mu.Unlock()
	t.Cleanup(func() { d.Stop(t) })
	for _, addr := range []string{d.IMAPAddr, d.POP3Addr} {
		if err := waitListening(addr, 10*time.Second); err != nil {
			t.Fatalf("mailtest: dovecot: %v\n%s", err, d.Log())
		}
	}
}

// Stop stops the daemon if it runs.
func (d *Dovecot) Stop(t testing.TB) {
	t.Helper()
	d.mu.Lock()
	running := d.running
	d.running = false
	d.mu.Unlock()
	if !running {
		return
	}
	if _, err := run(exec.Command("doveadm", "-c", d.Conf, "stop")); err != nil {
		t.Errorf("%v\n%s", err, d.Log())
	}
	// The master exits after its children; wait so that the next start or the removal
	// of the directory does not race it.
	pidFile := filepath.Join(d.Dir, "run", "master.pid")
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(pidFile); os.IsNotExist(err) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SwitchMailLocation changes the default mail_location and, when the daemon runs, reloads
// it so that new sessions use loc.
func (d *Dovecot) SwitchMailLocation(t testing.TB, loc string) {
	t.Helper()
	d.change(t, func(c *DovecotConfig) { c.MailLocation = loc })
}

// Reconfigure replaces the text appended to dovecot.conf (DovecotConfig.Extra) and, when the
// daemon runs, restarts it so that new sessions use the new configuration.
func (d *Dovecot) Reconfigure(t testing.TB, extra string) {
	t.Helper()
	d.change(t, func(c *DovecotConfig) { c.Extra = extra })
}

// change applies edit to the configuration, writes it, and when the daemon runs restarts it.
// A restart, not a reload: a reload lets old processes linger with the old configuration,
// and the next login could land on one of them.
func (d *Dovecot) change(t testing.TB, edit func(*DovecotConfig)) {
	t.Helper()
	d.mu.Lock()
	edit(&d.cfg)
	running := d.running
	d.mu.Unlock()
	if err := d.write(); err != nil {
		t.Fatal(err)
	}
	if running {
		d.Stop(t)
		d.Start(t)
	}
}

// Log returns the contents of dovecot.log, for failure messages.
func (d *Dovecot) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "dovecot.log"))
	return string(b)
}

// Doveadm runs `doveadm -c CONF -o mail_location=LOC args...` as user, without the daemon
// (doveadm works on local storage directly), and returns its stdout.
func (d *Dovecot) Doveadm(t testing.TB, user string, args ...string) ([]byte, error) {
	t.Helper()
	u := d.User(t, user)
	full := append([]string{"-c", d.Conf, "-o", "mail_location=" + d.MailLocation(t, user)}, args...)
	return run(u.Command("doveadm", full))
}

func waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
