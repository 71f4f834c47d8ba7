package mailtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fataler is what a Root reports a failed step to: a *testing.T, or a testscript script.
type Fataler interface {
	Fatalf(format string, args ...any)
}

// Root is a system for maildirmig's --root, built by a test: etc/passwd and etc/group, root's
// home, the spool directory var/mail and the users' homes. The users are in passwd only; when
// the test runs as root their files are theirs (their uid), so that maildirmig acts as each of
// them as it would on a real server; otherwise everything is the invoker's, as in a demo tree,
// which maildirmig then expects.
type Root struct {
	Dir   string
	f     Fataler
	uids  map[string]int
	names []string // the users added, in order
}

// NewRoot builds an empty system in a new directory of the test: etc/passwd and etc/group
// naming no one yet, root/ (0700) and var/mail/ (0755). The directory and its parent are opened (0755) to the users,
// whose workers must reach their homes through them.
func NewRoot(t testing.TB) *Root {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return NewRootAt(t, dir)
}

// NewRootAt builds NewRoot's system in dir, which exists or is made, reporting to f.
func NewRootAt(f Fataler, dir string) *Root {
	r := &Root{Dir: dir, f: f, uids: map[string]int{}}
	r.Mkdir("etc", 0o755, "")
	r.Mkdir("root", 0o700, "")
	r.Mkdir("var/mail", 0o755, "")
	r.writePasswd()
	return r
}

// AddUser adds name with uid (and a group of the same number) to passwd and group, and makes
// their home, home/NAME, mode 0755 and theirs. It returns the home's path. Root, added as
// AddUser("root", 0), has root/ for home.
func (r *Root) AddUser(name string, uid int) string {
	if _, ok := r.uids[name]; !ok {
		r.names = append(r.names, name)
	}
	r.uids[name] = uid
	r.writePasswd()
	if name == "root" {
		return r.Path("root")
	}
	home := "home/" + name
	r.Mkdir("home", 0o755, "")
	r.Mkdir(home, 0o755, name)
	return r.Path(home)
}

// UID returns the uid of a user added.
func (r *Root) UID(name string) int { return r.uids[name] }

// writePasswd writes etc/passwd and etc/group for the users so far.
func (r *Root) writePasswd() {
	var passwd, group strings.Builder
	for _, name := range r.names {
		uid, home := r.uids[name], "/home/"+name
		if name == "root" {
			home = "/root"
		}
		fmt.Fprintf(&passwd, "%s:x:%d:%d::%s:/bin/sh\n", name, uid, uid, home)
		fmt.Fprintf(&group, "%s:x:%d:\n", name, uid)
	}
	r.WriteFile("etc/passwd", passwd.String(), 0o644, "")
	r.WriteFile("etc/group", group.String(), 0o644, "")
}

// Path returns the path of rel under the root.
func (r *Root) Path(rel string) string { return filepath.Join(r.Dir, rel) }

// Chown gives rel to user, when the test runs as root; "" leaves it the invoker's.
func (r *Root) Chown(rel, user string) {
	if os.Geteuid() != 0 || user == "" || user == "root" {
		return
	}
	uid, ok := r.uids[user]
	if !ok {
		r.f.Fatalf("mailtest: no user %s in the root", user)
	}
	if err := os.Lchown(r.Path(rel), uid, uid); err != nil {
		r.f.Fatalf("mailtest: %v", err)
	}
}

// Mkdir makes rel and its missing parents, with mode, and gives rel to user.
func (r *Root) Mkdir(rel string, mode os.FileMode, user string) {
	p := r.Path(rel)
	if err := os.MkdirAll(p, mode&os.ModePerm); err != nil {
		r.f.Fatalf("mailtest: %v", err)
	}
	if err := os.Chmod(p, mode); err != nil {
		r.f.Fatalf("mailtest: %v", err)
	}
	r.Chown(rel, user)
}

// WriteFile writes content to rel, with mode, and gives it to user.
func (r *Root) WriteFile(rel, content string, mode os.FileMode, user string) {
	p := r.Path(rel)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		r.f.Fatalf("mailtest: %v", err)
	}
	if err := os.Chmod(p, mode); err != nil {
		r.f.Fatalf("mailtest: %v", err)
	}
	r.Chown(rel, user)
}
