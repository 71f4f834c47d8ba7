package mailtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// RequireRoot skips the test unless it runs as root, which the servers and the
// switches to other users need.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mailtest: needs root to run Dovecot/Postfix and act as test users")
	}
}

// RequireDovecot skips the test unless it runs as root and Dovecot's dovecot and doveadm
// binaries, with the imap and pop3 services, are installed.
func RequireDovecot(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	for _, p := range []string{"dovecot", "doveadm"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("mailtest: %s not installed (apt-get install dovecot-imapd dovecot-pop3d)", p)
		}
	}
	for _, p := range []string{"/usr/lib/dovecot/imap", "/usr/lib/dovecot/pop3"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("mailtest: %s missing (apt-get install dovecot-imapd dovecot-pop3d)", p)
		}
	}
}

// RequirePostfix skips the test unless it runs as root and Postfix is installed.
func RequirePostfix(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	for _, p := range []string{"postfix", "postconf", "sendmail"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("mailtest: %s not installed (apt-get install postfix)", p)
		}
	}
	if _, err := os.Stat("/usr/lib/postfix/sbin/local"); err != nil {
		t.Skip("mailtest: postfix daemons not found in /usr/lib/postfix/sbin")
	}
}

// Dir returns a new empty directory that every user may traverse (0755), so that servers
// and test users running under their own uids can reach the homes inside it. It is removed
// when the test ends. t.TempDir is not used because its parent is 0700.
func Dir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "mailtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// User is a mail user known to the test servers. Its uid and gid need no entry in
// /etc/passwd: Dovecot learns them from its own passwd-file, and the test runs programs
// with these credentials directly.
type User struct {
	Name     string
	Password string
	UID, GID int
	Home     string
	// MailLocation overrides Dovecot's mail_location for this user ("" = the server's).
	MailLocation string
	// TZ, when set, is the time zone of every program run as this user (doveadm included):
	// From_ dates without a zone are read in it.
	TZ string
}

var (
	uidMu   sync.Mutex
	nextUID = 61000 + os.Getpid()%1000*4
)

// NewUser makes a user with a fresh uid and gid (61000 and up, chosen so that parallel test
// binaries rarely collide) and a home directory under dir owned by that uid, mode 0700.
func NewUser(t testing.TB, dir, name string) User {
	t.Helper()
	RequireRoot(t) // the home must be handed to the new uid
	uidMu.Lock()
	nextUID++
	id := nextUID
	uidMu.Unlock()
	u := User{Name: name, Password: "pw-" + name, UID: id, GID: id, Home: filepath.Join(dir, "home", name)}
	if err := os.MkdirAll(filepath.Dir(u.Home), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(u.Home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(u.Home, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	return u
}

// Credential returns the process credential that runs a program as u.
func (u User) Credential() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}
}

// Env returns the environment a program run as u sees: HOME, USER and LOGNAME set, PATH
// inherited, and TZ from u.TZ or else inherited.
func (u User) Env() []string {
	env := []string{"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name, "PATH=" + os.Getenv("PATH")}
	if u.TZ != "" {
		env = append(env, "TZ="+u.TZ)
	} else if tz, ok := os.LookupEnv("TZ"); ok {
		env = append(env, "TZ="+tz)
	}
	return env
}

// CopyFile copies src to dst (created or truncated) owned by u with mode 0600, the way a
// spool file or a user's Mailbox is stored.
func (u User) CopyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	u.WriteFile(t, dst, b)
}

// WriteFile writes b to dst owned by u with mode 0600.
func (u User) WriteFile(t testing.TB, dst string, b []byte) {
	t.Helper()
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dst, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
}

// Mkdir creates dir (and missing parents) owned by u, mode 0700.
func (u User) Mkdir(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
}

// Command returns cmd prepared to run as u, with u's environment (plus extra).
func (u User) Command(name string, args []string, extra ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(u.Env(), extra...)
	cmd.Dir = u.Home
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Credential()}
	return cmd
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// run runs cmd and returns its stdout, and an error that carries stderr.
func run(cmd *exec.Cmd) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("mailtest: %s: %w: %s", cmd.Args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

func itoa(i int) string { return strconv.Itoa(i) }
