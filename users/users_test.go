package users

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/host"
)

func names(us []User) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Name)
	}
	return out
}

func TestList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    Options
		want    []string
		wantErr string
	}{
		{name: "login.defs bounds", opts: Options{Host: host.Host{Root: "testdata/root"}, MinUID: -1}, want: []string{"root", "alice", "bob"}},
		{name: "no root", opts: Options{Host: host.Host{Root: "testdata/root"}, MinUID: -1, NoRoot: true}, want: []string{"alice", "bob"}},
		{name: "explicit min uid", opts: Options{Host: host.Host{Root: "testdata/root"}, MinUID: 1000}, want: []string{"root", "alice", "bob", "carol"}},
		{name: "defaults without login.defs", opts: Options{Host: host.Host{Root: "testdata/bare"}, MinUID: -1}, want: []string{"root", "erin"}},
		{name: "passwd file overrides root", opts: Options{Host: host.Host{Root: "testdata/root", Passwd: "testdata/bare/etc/passwd"}, MinUID: -1}, want: []string{"root"}},
		{name: "names in given order", opts: Options{Host: host.Host{Root: "testdata/root"}, MinUID: -1, Names: []string{"daemon", "alice", "daemon"}}, want: []string{"daemon", "alice"}},
		{name: "names ignore no root", opts: Options{Host: host.Host{Root: "testdata/root"}, NoRoot: true, Names: []string{"root"}}, want: []string{"root"}},
		{name: "unknown names", opts: Options{Host: host.Host{Root: "testdata/root"}, Names: []string{"alice", "zed", "yan"}}, wantErr: "users: no such user: zed, yan"},
		{name: "bad field count", opts: Options{Host: host.Host{Root: "testdata/root", Passwd: "testdata/badfields.passwd"}}, wantErr: "passwd line 2: 4 fields"},
		{name: "bad uid", opts: Options{Host: host.Host{Root: "testdata/root", Passwd: "testdata/baduid.passwd"}}, wantErr: `user broken: bad uid "abc"`},
		{name: "missing passwd", opts: Options{Host: host.Host{Root: "testdata/nowhere"}}, wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := List(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("List() error = %v, want one containing %q", err, tt.wantErr)
				}
				if unknown := len(tt.opts.Names) > 0; errors.Is(err, ErrNoSuchUser) != unknown {
					t.Errorf("errors.Is(%v, ErrNoSuchUser) = %v, want %v", err, !unknown, unknown)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(names(got), tt.want) {
				t.Errorf("List() = %v, want %v", names(got), tt.want)
			}
		})
	}
}

func TestListFields(t *testing.T) {
	t.Parallel()
	got, err := List(Options{Host: host.Host{Root: "testdata/root"}, MinUID: -1, Names: []string{"alice", "bob", "carol", "root"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []User{
		// The first alice wins over the later duplicate; a repeated member counts once.
		{Name: "alice", UID: 1500, GID: 1500, Home: "/home/alice", Shell: "/bin/bash", Groups: []int{8, 1600}},
		// bob's primary group is "users", not a group named bob.
		{Name: "bob", UID: 1501, GID: 100, Home: "/srv/users/bob", Shell: "/usr/sbin/nologin", Groups: []int{8, 50}},
		{Name: "carol", UID: 1200, GID: 1200, Home: "/home/carol", Shell: "/bin/sh", Groups: []int{50}},
		{Name: "root", UID: 0, GID: 0, Home: "/root", Shell: "/bin/bash"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestListSystem(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("getent"); err != nil {
		t.Skip("getent not installed")
	}
	got, err := List(Options{MinUID: -1, Names: []string{"root"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].UID != 0 || got[0].Home == "" {
		t.Errorf("List(root) = %+v, want uid 0 with a home", got)
	}
}

func TestLoginDefs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path     string
		min, max int
	}{
		{"testdata/root/etc/login.defs", 1300, 1600},
		{"testdata/bare/etc/login.defs", 1000, 60000},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			min, max := loginDefs(tt.path)
			if min != tt.min || max != tt.max {
				t.Errorf("loginDefs = %d, %d, want %d, %d", min, max, tt.min, tt.max)
			}
		})
	}
}

// TestLookupUIDThroughNSS: a user only NSS knows (an LDAP or SSSD account, played here by a
// getent on PATH that answers for uid 70001 alone, as SSSD does without enumeration) is found
// with the groups initgroups gives.
func TestLookupUIDThroughNSS(t *testing.T) {
	bin := t.TempDir()
	script := `#!/bin/sh
case "$1 $2" in
"passwd 70001") echo 'ldapuser:*:70001:70002:LDAP user:/home/ldapuser:/bin/sh' ;;
"initgroups ldapuser") echo 'ldapuser              70002 70010 70011' ;;
"passwd 70004") echo 'other:*:70005:70002::/home/other:/bin/sh' ;;
"passwd 70006") echo 'short:*:70006:70002' ;;
*) exit 2 ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "getent"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	u, err := LookupUID(70001, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := User{Name: "ldapuser", UID: 70001, GID: 70002, Home: "/home/ldapuser", Shell: "/bin/sh", Groups: []int{70002, 70010, 70011}}
	if !reflect.DeepEqual(u, want) {
		t.Errorf("LookupUID(70001) = %+v, want %+v", u, want)
	}
	if _, err := LookupUID(70003, Options{}); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("LookupUID(70003): err = %v, want ErrNoSuchUser", err)
	}
	// An answer for another uid, or not a passwd line, is an error, not that user.
	for _, uid := range []int{70004, 70006} {
		if u, err := LookupUID(uid, Options{}); err == nil || errors.Is(err, ErrNoSuchUser) {
			t.Errorf("LookupUID(%d) = %+v, %v; want an error about getent's answer", uid, u, err)
		}
	}
}

func TestLookupUIDFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nalias:x:1000:1000::/home/alias:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte("alice:x:1000:\nmail:x:8:alice\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := LookupUID(1000, Options{Host: host.Host{Root: root}})
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "alice" || u.GID != 1000 || !reflect.DeepEqual(u.Groups, []int{8}) {
		t.Errorf("LookupUID(1000) = %+v, want the first entry, alice, in group 8", u)
	}
	if _, err := LookupUID(1001, Options{Host: host.Host{Root: root}}); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("LookupUID(1001): err = %v, want ErrNoSuchUser", err)
	}
}
