package check

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestHomeOverTheWire: a Home goes to a worker, and its problems and result come back, as
// JSON; everything the work needs and everything root needs must survive the trip.
func TestHomeOverTheWire(t *testing.T) {
	t.Parallel()
	h := Home{
		User:    User{Name: "alice", UID: 1001, GID: 1002, Groups: []int{5, 6}, Home: "/home/alice"},
		Maildir: "Maildir", Mailbox: "Mailbox", Path: "rel/Maildir", Dir: "/root", Fix: true, DryRun: true,
		Now: now, StaleTmp: 36 * time.Hour, MaxFolders: 7,
	}
	var back Home
	roundTrip(t, h, &back)
	if !reflect.DeepEqual(back, h) {
		t.Errorf("home after the trip:\n%+v\nwant\n%+v", back, h)
	}
	for _, sev := range []Severity{OK, Warning, Critical, Unknown} {
		p := Problem{Severity: sev, Kind: StaleTmp, User: "alice", Path: "/p", Detail: "d", Fixed: "f", Hint: "h"}
		var got Problem
		roundTrip(t, p, &got)
		if got != p {
			t.Errorf("problem after the trip: %+v, want %+v", got, p)
		}
	}
	res := HomeResult{Maildirs: 1, Folders: 2, Messages: 3, Bytes: 4, Files: 5, Exists: true, Usable: true, Newest: now,
		Mailbox: &FileStat{Mode: 0o100600, Size: 9, Mtime: now, Dev: 10, Ino: 11, UID: 1001, Nlink: 1}}
	var gotRes HomeResult
	roundTrip(t, res, &gotRes)
	if !reflect.DeepEqual(gotRes, res) {
		t.Errorf("result after the trip:\n%+v\nwant\n%+v", gotRes, res)
	}
	var bad Severity
	if err := json.Unmarshal([]byte(`"dire"`), &bad); err == nil {
		t.Errorf("severity %q read without an error", "dire")
	}
}

func roundTrip(t *testing.T, v, into any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

// TestInProcessRefusesOthersHomes: root doing a user's work in its own process would create
// root's files in the home and hang with it; InProcess refuses, and says the work runs as the
// user.
func TestInProcessRefusesOthersHomes(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root can be asked to work in another user's home")
	}
	home := t.TempDir()
	h := &Home{User: User{Name: "carol", UID: 12345, GID: 12345, Home: home}, Maildir: "Maildir", Now: now, StaleTmp: time.Hour, MaxFolders: 1}
	if _, err := (InProcess{}).Check(context.Background(), h); err == nil || !strings.Contains(err.Error(), "root does not work in the home of uid 12345") {
		t.Errorf("Check: %v, want a refusal", err)
	}
	if _, err := (InProcess{}).EnsureMaildir(context.Background(), h); err == nil || !strings.Contains(err.Error(), "root does not work in the home of uid 12345") {
		t.Errorf("EnsureMaildir: %v, want a refusal", err)
	}
	if _, err := os.Lstat(filepath.Join(home, "Maildir")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a Maildir was made in the home anyway: %v", err)
	}
}

// TestRootPathSwappedForUsersDirectory: root was given a path that was no user's directory
// when it looked (so the work runs as root), and by the time the walk opens it, it is a
// user's Maildir. Root must not walk or repair it: what --fix made there would be root's.
func TestRootPathSwappedForUsersDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the walk runs as root on a user's directory")
	}
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	must(t, os.Mkdir(md, 0o700))
	must(t, os.Chown(md, 4242, 4242))
	var problems []Problem
	h := &Home{Path: md, Fix: true, Now: now, StaleTmp: 36 * time.Hour, Problem: func(p Problem) { problems = append(problems, p) }}
	if _, err := (InProcess{}).Check(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].Kind != Unchecked || !strings.Contains(problems[0].Detail, "owned by uid 4242 now") {
		t.Errorf("problems %+v; want the path reported unchecked", problems)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if _, err := os.Lstat(filepath.Join(md, sub)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s made in the user's Maildir by root: %v", sub, err)
		}
	}
}
