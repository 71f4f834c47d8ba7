package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// source is where one rule is shown: the INBOX (the spool) or an mbox folder, each migrated by
// the one resume routine.
type source struct {
	name string
	rel  func(user string) string // the mbox, relative to the tree
	// outcome returns the source's outcome and error in a user's result.
	outcome func(r UserResult) (string, error)
	// files lists the source's Maildir files.
	files func(tr *tree, user string) []string
}

var sources = []source{
	{
		name:    "inbox",
		rel:     func(user string) string { return "var/mail/" + user },
		outcome: func(r UserResult) (string, error) { return r.Outcome, r.Err },
		files:   func(tr *tree, user string) []string { return tr.files(user) },
	},
	{
		name: "folder",
		rel:  func(user string) string { return "home/" + user + "/mail/Archive" },
		outcome: func(r UserResult) (string, error) {
			if len(r.Folders) != 1 {
				return "", fmt.Errorf("%d folders in the result, want 1 (user outcome %q, err %v)", len(r.Folders), r.Outcome, r.Err)
			}
			return r.Folders[0].Outcome, r.Folders[0].Err
		},
		files: func(tr *tree, user string) []string {
			var out []string
			for _, sub := range []string{"new", "cur"} {
				entries, err := os.ReadDir(tr.path(filepath.Join("home", user, "Maildir", ".Archive", sub)))
				if errors.Is(err, os.ErrNotExist) {
					continue
				}
				must(tr.t, err)
				for _, e := range entries {
					out = append(out, sub+"/"+e.Name())
				}
			}
			return out
		},
	},
}

// newSourceTree makes a tree whose user has src holding content, and an empty spool when src
// is a folder.
func newSourceTree(t *testing.T, src source, user, content string) *tree {
	tr := newTree(t, user)
	if src.name == "folder" {
		tr.mkdir("home/"+user+"/mail", 0o700, user)
	}
	tr.write(src.rel(user), content, user)
	return tr
}

// A source migrated with some options is refused when a later run resumes it with others,
// for the INBOX and for a folder alike, and --force converts it again under the new ones: a
// mirror pass replaces each file whose stored bytes they change.
func TestResumeRefusesOtherOptions(t *testing.T) {
	t.Parallel()
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			t.Parallel()
			tr := newSourceTree(t, src, "ona", msgA)
			cfg := tr.config()
			_, res := run(t, cfg)
			if out, err := src.outcome(res["ona"]); out != OutcomeMigrated || err != nil {
				t.Fatalf("first run: %q, %v", out, err)
			}
			tr.appendTo(src.rel("ona"), msgB)
			cfg.Convert.KeepHeaders = true
			_, res = run(t, cfg)
			out, err := src.outcome(res["ona"])
			if out != OutcomeFailed || err == nil || !strings.Contains(err.Error(), ErrStateMismatch.Error()) || !strings.Contains(err.Error(), "--keep-headers") {
				t.Fatalf("resumed with --keep-headers: %q, %v; want the options mismatch", out, err)
			}
			if n := len(src.files(tr, "ona")); n != 1 {
				t.Fatalf("%d files after the refusal, want 1", n)
			}
			if src.name == "inbox" {
				// A dry run says so, by the same rule.
				plan, err := Plan(context.Background(), cfg)
				if err != nil || len(plan) != 1 || plan[0].Action != ActionRefuse || !strings.Contains(plan[0].Reason, "--keep-headers") {
					t.Fatalf("plan with --keep-headers: %+v, %v; want the user refused", plan, err)
				}
			}
			cfg.Force = true
			_, res = run(t, cfg)
			if out, err := src.outcome(res["ona"]); out != OutcomeMigrated || err != nil {
				t.Fatalf("with --force: %q, %v", out, err)
			}
			// The first message with its headers kept is another file than without, which
			// the pass removed.
			if n := len(src.files(tr, "ona")); n != 2 {
				t.Errorf("%d files after --force, want 2", n)
			}
		})
	}
}

// A resumed source reads From_ dates without a zone in the zone its first run used, for the
// INBOX and for a folder alike, so that its names do not depend on who runs it next.
func TestResumeKeepsTheZone(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("skipping: no zone data: %v", err)
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			t.Parallel()
			tr := newSourceTree(t, src, "max", msgA)
			cfg := tr.config()
			cfg.Convert.Location = ny
			run(t, cfg)
			tr.appendTo(src.rel("max"), msgB)
			cfg.Convert.Location = time.UTC
			_, res := run(t, cfg)
			if out, err := src.outcome(res["max"]); out != OutcomeMigrated || err != nil {
				t.Fatalf("resumed run: %q, %v", out, err)
			}
			want := fmt.Sprintf("/%d.", time.Date(2024, 1, 2, 11, 0, 0, 0, ny).Unix())
			files := src.files(tr, "max")
			found := false
			for _, f := range files {
				found = found || strings.Contains(f, want)
			}
			if len(files) != 2 || !found {
				t.Errorf("files %v, want the second named from %s (New York time)", files, want)
			}
			kept := false
			for _, e := range tr.audit() {
				kept = kept || e["kind"] == EventZoneKept && (src.name == "inbox") == (e["folder"] == nil)
			}
			if !kept {
				t.Error("no zone-kept notice for the source in the audit log")
			}
		})
	}
}

// Every resume point a conversion reports is checked before the state records it, by the
// routine the INBOX (in root) and each folder (in the worker) go through: it must lie in the
// part not yet hashed and start a From_ line, or be the end of the source.
func TestResumeAdvanceChecksThePoint(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "mbox")
	must(t, os.WriteFile(p, []byte(msgA+msgB+msgC), 0o600))
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	var st unix.Stat_t
	must(t, unix.Fstat(int(f.Fd()), &st))
	a, ab := int64(len(msgA)), int64(len(msgA+msgB))
	for _, tt := range []struct {
		ends []int64
		ok   bool
	}{
		{[]int64{a, ab, st.Size}, true},
		{[]int64{a, a}, true},
		{[]int64{a + 1}, false},       // inside the second message
		{[]int64{ab, a}, false},       // back into what is hashed already
		{[]int64{st.Size + 1}, false}, // beyond the source
	} {
		rs, _, err := startResume(f, "~/mbox", st, nil, &State{}, false)
		must(t, err)
		var last error
		for i, end := range tt.ends {
			if last = rs.advance(end, Stats{Messages: int64(i + 1)}); last != nil {
				break
			}
		}
		if (last == nil) != tt.ok {
			t.Errorf("advance through %v: %v, want ok %v", tt.ends, last, tt.ok)
		}
		if last != nil && !strings.Contains(last.Error(), "~/mbox") {
			t.Errorf("error %q does not name the source", last)
		}
	}
}

// Every state file, the INBOX's and the folders', is read without following a symlink: a
// state directory someone planted a link in is refused, not read through.
func TestStateFilesFollowNoSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	decoy := filepath.Join(t.TempDir(), "decoy.json")
	must(t, os.WriteFile(decoy, []byte(`{"user":"eve","source":"/var/mail/eve","offset":1}`), 0o600))
	store := StateStore{Dir: dir}
	inbox, err := store.keyPath("eve", KindSpool, "/var/mail/eve")
	must(t, err)
	folders := folderStates{Dir: filepath.Join(dir, "folders")}
	must(t, os.MkdirAll(folders.Dir, 0o700))
	folder, err := folders.path("eve")
	must(t, err)
	skipped, err := folders.skippedPath("eve")
	must(t, err)
	for _, tt := range []struct {
		name string
		path string
		load func() error
	}{
		{"inbox", inbox, func() error { _, err := store.Load("eve", KindSpool, "/var/mail/eve"); return err }},
		{"folder", folder, func() error { _, err := folders.Load("eve"); return err }},
		{"skipped", skipped, func() error { _, _, err := folders.LoadSkipped("eve"); return err }},
	} {
		must(t, os.Symlink(decoy, tt.path))
		if err := tt.load(); !errors.Is(err, unix.ELOOP) {
			t.Errorf("%s: loading a state that is a symlink: %v, want ELOOP", tt.name, err)
		}
	}
}
