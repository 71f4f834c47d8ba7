package mailtest

import (
	"errors"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Account is a real account made with useradd for one test, as maildirmig finds users:
// through NSS. (A User is one the test servers alone know.)
type Account struct {
	Name     string
	UID, GID int
	Home     string
}

// testSuffix keeps the accounts of two test binaries running at once apart.
var testSuffix = strconv.Itoa(os.Getpid() % 100000)

// AddGroup creates a system group with groupadd and removes it when the test ends; it returns
// the group's name and gid.
func AddGroup(t testing.TB, base string) (string, int) {
	t.Helper()
	name := "mdmt_" + base + testSuffix
	if out, err := exec.Command("groupadd", name).CombinedOutput(); err != nil {
		t.Fatalf("groupadd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("groupdel", name).CombinedOutput(); err != nil {
			t.Errorf("groupdel %s: %v: %s", name, err, out)
		}
	})
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return name, gid
}

// RequireUserTools skips a test that must make real accounts where it cannot: not root, or
// useradd, userdel or one of the other tools it names is not installed.
func RequireUserTools(t testing.TB, more ...string) {
	t.Helper()
	RequireRoot(t)
	for _, p := range append([]string{"useradd", "userdel"}, more...) {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s not installed: cannot make real users", p)
		}
	}
}

// AddAccount creates a system user with `useradd -m args...` and removes it, its home and its
// mail spool with `userdel -r` when the test ends (t.Cleanup runs in reverse order, so a group
// the user belongs to, made before, is removed after).
func AddAccount(t testing.TB, base string, args ...string) Account {
	t.Helper()
	name := "mdmt_" + base + testSuffix
	full := append([]string{"-m"}, args...)
	full = append(full, name)
	if out, err := exec.Command("useradd", full...).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", strings.Join(full, " "), err, out)
	}
	t.Cleanup(func() {
		// userdel -r warns (exit 12) when the user had no spool in /var/mail; that is fine.
		// It refuses (exit 8) while a process runs as the user, such as a local(8) still
		// exiting after its master was stopped: try again for a while.
		for try := 0; ; try++ {
			out, err := exec.Command("userdel", "-r", name).CombinedOutput()
			var exit *exec.ExitError
			switch {
			case err == nil || errors.As(err, &exit) && exit.ExitCode() == 12:
				return
			case errors.As(err, &exit) && exit.ExitCode() == 8 && try < 50:
				time.Sleep(200 * time.Millisecond)
				continue
			}
			t.Errorf("userdel -r %s: %v: %s", name, err, out)
			return
		}
	})
	su, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	u := Account{Name: name, Home: su.HomeDir}
	u.UID, _ = strconv.Atoi(su.Uid)
	u.GID, _ = strconv.Atoi(su.Gid)
	return u
}
