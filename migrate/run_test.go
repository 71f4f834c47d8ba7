package migrate

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/host"
	"github.com/maildirmig/maildirmig/internal/mailtest"
	"github.com/maildirmig/maildirmig/maildir"
	"golang.org/x/sys/unix"
)

// tree is a --root system (mailtest.Root) with users, spools and homes. When the test runs as
// root, every user's home and spool belong to the user's (otherwise unused) uid, so that the
// worker really runs as that uid; otherwise everything is the invoking user's, as in a demo
// tree.
type tree struct {
	*mailtest.Root
	t *testing.T
}

const (
	msgA = "From alice@example.org Mon Jan  1 10:00:00 2024\nFrom: a@example.org\nSubject: one\nStatus: RO\n\nfirst body\n\n"
	msgB = "From bob@example.org Tue Jan  2 11:00:00 2024\nFrom: b@example.org\nSubject: two\n\nsecond body\nFrom the desk of nobody (not a From_ line)\n\n"
	msgC = "From carol@example.org Wed Jan  3 12:00:00 2024\nFrom: c@example.org\nSubject: three\n\nthird body\n\n"
)

func newTree(t *testing.T, users ...string) *tree {
	t.Helper()
	tr := &tree{Root: mailtest.NewRoot(t), t: t}
	tr.AddUser("root", 0)
	for i, u := range users {
		tr.AddUser(u, 42100+i)
	}
	return tr
}

func (tr *tree) path(rel string) string { return tr.Path(rel) }

func (tr *tree) mkdir(rel string, mode os.FileMode, user string) { tr.Mkdir(rel, mode, user) }

func (tr *tree) write(rel, content, user string) { tr.WriteFile(rel, content, 0o600, user) }

// chown gives the file p, beneath the root, to user.
func (tr *tree) chown(p, user string) {
	rel, err := filepath.Rel(tr.Dir, p)
	must(tr.t, err)
	tr.Chown(rel, user)
}

func (tr *tree) appendTo(rel, content string) {
	f, err := os.OpenFile(tr.path(rel), os.O_WRONLY|os.O_APPEND, 0)
	must(tr.t, err)
	_, err = f.WriteString(content)
	must(tr.t, err)
	must(tr.t, f.Close())
}

func (tr *tree) config() Config {
	return Config{Host: host.Host{Root: tr.Dir}, MinUID: -1, NoRoot: true, Jobs: 2, LockTimeout: 2 * time.Second, AuditMessages: true,
		Convert: ConvertOptions{Maildir: maildir.Options{Host: "testhost", Fsync: maildir.FsyncNone}}}
}

// files lists a user's Maildir message files as "sub/name".
func (tr *tree) files(user string) []string {
	var out []string
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(tr.path(filepath.Join("home", user, "Maildir", sub)))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		must(tr.t, err)
		for _, e := range entries {
			out = append(out, sub+"/"+e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func (tr *tree) audit() []map[string]any {
	f, err := os.Open(tr.path("var/log/maildirmig/audit.jsonl"))
	must(tr.t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		must(tr.t, json.Unmarshal(sc.Bytes(), &m))
		out = append(out, m)
	}
	return out
}

func run(t *testing.T, cfg Config) (Summary, map[string]UserResult) {
	t.Helper()
	results := map[string]UserResult{}
	cfg.UserDone = func(r UserResult) { results[r.User] = r }
	sum, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return sum, results
}

func TestRunBatch(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "alice", "bob", "carol", "dave")
	tr.write("var/mail/alice", msgA+msgB, "alice")
	tr.write("var/mail/bob", msgC, "bob")
	tr.write("root/shadow", "root:$6$secret:19000::::::\n", "")
	must(t, os.Symlink(tr.path("root/shadow"), tr.path("var/mail/carol")))

	sum, res := run(t, tr.config())
	if sum.Users != 4 || sum.Migrated != 2 || sum.Failed != 1 || sum.NoMailbox != 1 || sum.Written != 3 {
		t.Fatalf("summary %+v", sum)
	}
	if r := res["carol"]; r.Outcome != OutcomeFailed || !errors.Is(r.Err, ErrUnsafeSpool) || !strings.Contains(r.Err.Error(), "symlink") {
		t.Errorf("carol: %+v", r)
	}
	if got := tr.files("alice"); len(got) != 2 || !strings.HasPrefix(got[0], "cur/") || !strings.HasSuffix(got[0], ":2,S") || !strings.HasPrefix(got[1], "new/") {
		t.Errorf("alice's Maildir: %v", got)
	}
	if got := tr.files("carol"); len(got) != 0 {
		t.Errorf("carol's Maildir: %v", got)
	}
	if _, err := os.Stat(tr.path("home/dave/Maildir")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dave without a mailbox got a Maildir: %v", err)
	}
	if os.Geteuid() == 0 {
		for _, f := range tr.files("alice") {
			var st syscall.Stat_t
			must(t, syscall.Lstat(tr.path("home/alice/Maildir/"+f), &st))
			if int(st.Uid) != tr.UID("alice") || int(st.Gid) != tr.UID("alice") || st.Mode&0o777 != 0o600 {
				t.Errorf("%s: uid %d gid %d mode %o", f, st.Uid, st.Gid, st.Mode&0o777)
			}
		}
	}
	if b, _ := os.ReadFile(tr.path("root/shadow")); !strings.Contains(string(b), "secret") {
		t.Error("the symlink target changed")
	}
	events := map[string]int{}
	for _, e := range tr.audit() {
		events[e["event"].(string)]++
		if e["event"] == EventMessage && e["user"] == "alice" && (e["sha256"] == "" || e["name"] == "") {
			t.Errorf("message line without sha256 or name: %v", e)
		}
	}
	want := map[string]int{EventRunStart: 1, EventUserStart: 4, EventUserDone: 2, EventUserFailed: 1, EventUserSkip: 1, EventMessage: 3, EventRunEnd: 1}
	for k, n := range want {
		if events[k] != n {
			t.Errorf("audit: %d %s events, want %d (all: %v)", events[k], k, n, events)
		}
	}

	// A re-run writes nothing.
	before := tr.files("alice")
	sum, _ = run(t, tr.config())
	if sum.UpToDate != 2 || sum.Written != 0 || sum.Migrated != 0 {
		t.Fatalf("re-run summary %+v", sum)
	}

	// A message the user deleted stays deleted; an appended one is migrated alone.
	must(t, os.Remove(tr.path("home/alice/Maildir/"+before[1])))
	tr.appendTo("var/mail/alice", msgC)
	sum, res = run(t, tr.config())
	if r := res["alice"]; r.Outcome != OutcomeMigrated || r.Stats.Messages != 1 || r.Stats.Written != 1 {
		t.Fatalf("append: %+v", r)
	}
	after := tr.files("alice")
	if len(after) != 2 || after[0] != before[0] {
		t.Errorf("after append and delete: %v (before %v)", after, before)
	}

	// A changed prefix is mirrored: the message that is gone is removed, the new one written.
	bobBefore := tr.files("bob")
	tr.write("var/mail/bob", strings.Replace(msgC, "third", "THIRD", 1), "bob")
	_, res = run(t, tr.config())
	if r := res["bob"]; r.Outcome != OutcomeMigrated || r.Err != nil || r.Stats.Written != 1 || r.Stats.Removed != 1 || r.Stats.Existed != 0 {
		t.Fatalf("changed prefix: %+v", r)
	}
	if got := tr.files("bob"); len(got) != 1 || len(bobBefore) != 1 || got[0] == bobBefore[0] {
		t.Fatalf("bob's Maildir after the mirror pass: %v (before %v); want the new message alone", got, bobBefore)
	}
	checkVerify(t, tr, "bob", 1)
	// A pass with nothing changed since writes nothing.
	if _, res = run(t, tr.config()); res["bob"].Outcome != OutcomeUpToDate || res["bob"].Stats.Written != 0 {
		t.Fatalf("after the mirror pass: %+v", res["bob"])
	}
}

func TestRunAfterTruncate(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "erin")
	tr.write("var/mail/erin", msgA+msgB, "erin")
	cfg := tr.config()
	cfg.After = AfterTruncate
	_, res := run(t, cfg)
	if r := res["erin"]; r.Outcome != OutcomeMigrated || r.After != "truncated" {
		t.Fatalf("erin: %+v", r)
	}
	if fi, err := os.Stat(tr.path("var/mail/erin")); err != nil || fi.Size() != 0 {
		t.Fatalf("spool after truncate: %v, %v", fi, err)
	}
	// New mail after the truncation is migrated next time, next to the first two.
	tr.appendTo("var/mail/erin", msgC)
	_, res = run(t, tr.config())
	if r := res["erin"]; r.Outcome != OutcomeMigrated || r.Stats.Written != 1 {
		t.Fatalf("after truncate: %+v", r)
	}
	if got := tr.files("erin"); len(got) != 3 {
		t.Errorf("erin's Maildir: %v", got)
	}
}

func TestRunLockTimeout(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "fred", "gina")
	tr.write("var/mail/fred", msgA, "fred")
	tr.write("var/mail/gina", msgB, "gina")
	host, _ := os.Hostname()
	tr.write("var/mail/fred.lock", fmt.Sprintf("%d:%s", os.Getpid(), host), "")
	cfg := tr.config()
	cfg.LockTimeout = 300 * time.Millisecond
	sum, res := run(t, cfg)
	if sum.LockTimeouts != 1 || sum.Failed != 1 || sum.Migrated != 1 {
		t.Fatalf("summary %+v", sum)
	}
	if r := res["fred"]; r.Outcome != OutcomeLockTimeout || !errors.Is(r.Err, ErrLockTimeout) {
		t.Errorf("fred: %+v", r)
	}
	if _, err := os.Stat(tr.path("home/fred/Maildir")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fred got a Maildir despite the lock: %v", err)
	}
}

func TestRunCancelled(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "hank")
	tr.write("var/mail/hank", msgA, "hank")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, tr.config())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run on a cancelled context = %v", err)
	}
	if _, err := os.Stat(tr.path("var/mail/hank.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dotlock left behind: %v", err)
	}
}

// The review's scenario: a migration kept the source, the Maildir changed behind its back, and
// a later run with --after truncate found the state up to date. It must prove the Maildir
// holds what the state says before it empties the spool, and refuse when it does not. A
// Maildir removed altogether is written again first (a pass notices it is gone), then proved.
func TestRunAfterProvesTheMaildir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(tr *tree, cfg *Config)
		want   string // in the refusal
	}{
		{"uidlist removed", func(tr *tree, cfg *Config) { must(t, os.Remove(tr.path("home/ivy/Maildir/dovecot-uidlist"))) }, "dovecot-uidlist"},
		{"uidlist of another UIDVALIDITY", func(tr *tree, cfg *Config) {
			tr.write("home/ivy/Maildir/dovecot-uidlist", "3 V7 N1 G0123456789abcdef0123456789abcdef\n", "ivy")
		}, "UIDVALIDITY 7"},
		{"message removed", func(tr *tree, cfg *Config) {
			must(t, os.Remove(tr.path("home/ivy/Maildir/"+tr.files("ivy")[0])))
		}, "1 missing"},
		{"message altered", func(tr *tree, cfg *Config) {
			tr.write("home/ivy/Maildir/"+tr.files("ivy")[1], "Subject: other\n\nbody\n", "ivy")
		}, "wrong content"},
		{"another maildir", func(tr *tree, cfg *Config) { cfg.Maildir = "Maildir2" }, "not "},
		{"other options", func(tr *tree, cfg *Config) { cfg.Convert.KeepHeaders = true }, "keep-headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := newTree(t, "ivy")
			tr.write("var/mail/ivy", msgA+msgB, "ivy")
			if _, res := run(t, tr.config()); res["ivy"].Outcome != OutcomeMigrated {
				t.Fatalf("first run: %+v", res["ivy"])
			}
			cfg := tr.config()
			cfg.After = AfterTruncate
			tt.change(tr, &cfg)
			_, res := run(t, cfg)
			r := res["ivy"]
			if r.Outcome != OutcomeFailed || r.After != "" || r.Err == nil || !strings.Contains(r.Err.Error(), tt.want) {
				t.Fatalf("--after truncate: outcome %s, after %q, err %v; want a refusal mentioning %q", r.Outcome, r.After, r.Err, tt.want)
			}
			if b, err := os.ReadFile(tr.path("var/mail/ivy")); err != nil || string(b) != msgA+msgB {
				t.Fatalf("spool after the refusal: %q, %v", b, err)
			}
		})
	}
	// The Maildir removed: written again, proved, and then the spool is truncated.
	tr := newTree(t, "ida")
	tr.write("var/mail/ida", msgA+msgB, "ida")
	run(t, tr.config())
	must(t, os.RemoveAll(tr.path("home/ida/Maildir")))
	cfg := tr.config()
	cfg.After = AfterTruncate
	_, res := run(t, cfg)
	if r := res["ida"]; r.Err != nil || r.Stats.Written != 2 || r.After != "truncated" || len(tr.files("ida")) != 2 {
		t.Fatalf("--after truncate with the Maildir removed: %+v, files %v; want it written again, then the spool truncated", r, tr.files("ida"))
	}
	// Untouched, the same run proves the Maildir and truncates.
	tr = newTree(t, "jack")
	tr.write("var/mail/jack", msgA+msgB, "jack")
	run(t, tr.config())
	cfg = tr.config()
	cfg.After = AfterTruncate
	_, res = run(t, cfg)
	if r := res["jack"]; r.Outcome != OutcomeUpToDate || r.After != "truncated" {
		t.Fatalf("proved --after truncate: %+v", r)
	}
	if fi, err := os.Stat(tr.path("var/mail/jack")); err != nil || fi.Size() != 0 {
		t.Fatalf("spool after a proved truncate: %v, %v", fi, err)
	}
}

// The spool and ~/Mailbox of one user are two sources: migrating one leaves the other's
// state alone, and each re-run is up to date.
func TestRunSpoolThenMailbox(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "kim")
	tr.write("var/mail/kim", msgA, "kim")
	tr.write("home/kim/Mailbox", msgB+msgC, "kim")
	mboxCfg := tr.config()
	mailboxCfg := tr.config()
	mailboxCfg.Source = SourceMailbox
	for i, c := range []struct {
		cfg     Config
		outcome string
		written int64
	}{{mboxCfg, OutcomeMigrated, 1}, {mailboxCfg, OutcomeMigrated, 2}, {mboxCfg, OutcomeUpToDate, 0}, {mailboxCfg, OutcomeUpToDate, 0}} {
		_, res := run(t, c.cfg)
		if r := res["kim"]; r.Outcome != c.outcome || r.Stats.Written != c.written || r.Err != nil {
			t.Fatalf("run %d: %+v, want %s with %d written", i, r, c.outcome, c.written)
		}
	}
	if got := tr.files("kim"); len(got) != 3 {
		t.Errorf("kim's Maildir: %v", got)
	}
	// verify proves what both migrated, whichever command it is given the options of.
	var got []UserVerify
	must(t, Verify(context.Background(), mboxCfg, func(v UserVerify) { got = append(got, v) }))
	if len(got) != 1 || got[0].Err != nil || !got[0].State || got[0].Result.Messages != 3 || got[0].Result.Found != 3 {
		t.Errorf("verify: %+v", got)
	}
	must(t, os.Remove(tr.path("home/kim/Maildir/"+tr.files("kim")[0])))
	got = nil
	must(t, Verify(context.Background(), mboxCfg, func(v UserVerify) { got = append(got, v) }))
	if len(got) != 1 || got[0].Result.Found != 2 || len(got[0].Result.Missing) != 1 {
		t.Errorf("verify after a deletion: %+v", got)
	}
}

func TestCheckResumePoint(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "mbox")
	must(t, os.WriteFile(p, []byte(msgA+msgB), 0o600))
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	size := int64(len(msgA + msgB))
	for _, tt := range []struct {
		from, end int64
		ok        bool
	}{
		{0, int64(len(msgA)), true},
		{0, size, true},
		{0, 0, true},
		{0, int64(len(msgA)) - 1, false},
		{0, 5, false},
		{0, size + 1, false},
		{int64(len(msgA)) + 1, int64(len(msgA)), false},
	} {
		if err := checkResumePoint(f, p, size, tt.from, tt.end); (err == nil) != tt.ok {
			t.Errorf("checkResumePoint(from %d, end %d) = %v, want ok %v", tt.from, tt.end, err, tt.ok)
		}
	}
}

// An interrupted run leaves the state at a point every message before which is durable and
// listed, so that the next run neither writes them again nor misses one.
func TestRunInterruptedSavesState(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "lee")
	const n = interruptible
	src, at := bigMailbox(n)
	tr.write("var/mail/lee", src, "lee")
	runInterrupted(t, tr.config())
	st, err := StateStore{Dir: tr.path("var/lib/maildirmig")}.Load("lee", KindSpool, tr.path("var/mail/lee"))
	if err != nil || st == nil || st.Offset == int64(len(src)) || at[st.Offset] != st.Messages {
		t.Fatalf("state after the interruption: %+v, %v; want one at a message boundary before the end", st, err)
	}
	before := len(tr.files("lee"))
	_, res := run(t, tr.config())
	r := res["lee"]
	if r.Outcome != OutcomeMigrated || r.Stats.Messages != n-st.Messages || len(tr.files("lee")) != n || r.Stats.Written != int64(n-before) {
		t.Fatalf("re-run after the interruption at %d (%d files): %+v, %d files", st.Offset, before, r, len(tr.files("lee")))
	}
	b, err := os.ReadFile(tr.path("home/lee/Maildir/dovecot-uidlist"))
	must(t, err)
	if got := strings.Count(string(b), "\n") - 1; got != n {
		t.Errorf("uidlist lists %d messages, want %d", got, n)
	}
}

// A source whose first From_ line has no date is read in loose mode. A later run resumes
// after the migrated part at a dated From_ line, and --after's proof and verify read from
// offset 0: all must split the rest as loose mode does, or a one-word "From " line after an
// empty line in a body makes them count messages differently.
func TestRunLooseSource(t *testing.T) {
	t.Parallel()
	const (
		takeout = "From 1844@xxx\nSubject: takeout\n\nfirst\n\n"
		dated   = "From bob@example.org Tue Jan  2 11:00:00 2024\nSubject: dated\n\nsecond\n\nFrom 999@xxx\nSubject: third\n\nthird\n\n"
	)
	tr := newTree(t, "lou")
	tr.write("var/mail/lou", takeout, "lou")
	if _, res := run(t, tr.config()); res["lou"].Outcome != OutcomeMigrated {
		t.Fatalf("first run: %+v", res["lou"])
	}
	st, err := StateStore{Dir: tr.path("var/lib/maildirmig")}.Load("lou", KindSpool, tr.path("var/mail/lou"))
	if err != nil || st == nil || !st.Loose || string(st.LooseFrom) != "From 1844@xxx" {
		t.Fatalf("state after the first run: %+v, %v; want loose mode keyed on the first line", st, err)
	}
	tr.appendTo("var/mail/lou", dated)
	if _, res := run(t, tr.config()); res["lou"].Stats.Messages != 2 || len(tr.files("lou")) != 3 {
		t.Fatalf("resumed run: %+v, files %v; want the appended text read as 2 messages", res["lou"], tr.files("lou"))
	}
	checkVerify(t, tr, "lou", 3)
	cfg := tr.config()
	cfg.After = AfterTruncate
	if _, res := run(t, cfg); res["lou"].After != "truncated" {
		t.Fatalf("--after truncate: %+v", res["lou"])
	}
}

// A loose source interrupted after a resume point whose From_ line has a date resumes in
// loose mode.
func TestRunLooseResumeMidFile(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "lyn")
	const n = interruptible + 1 // the Takeout message, then pairs of a dated one and a one-word one
	src := "From 1844@xxx\nSubject: takeout\n\nfirst\n\n"
	for i := 1; i < n; i += 2 {
		src += fmt.Sprintf("From x@example.org Mon Jan  1 10:%02d:%02d 2024\nSubject: %d\n\nbody %d\n\nFrom 999@xxx\nSubject: %d\n\nx\n\n", i/60, i%60, i, i, i+1)
	}
	tr.write("var/mail/lyn", src, "lyn")
	runInterrupted(t, tr.config())
	st, err := StateStore{Dir: tr.path("var/lib/maildirmig")}.Load("lyn", KindSpool, tr.path("var/mail/lyn"))
	if err != nil || st == nil || st.Offset == 0 || st.Offset == int64(len(src)) || !st.Loose {
		t.Fatalf("state after the interruption: %+v, %v; want a loose resume point inside the file", st, err)
	}
	if _, res := run(t, tr.config()); res["lyn"].Stats.Messages != n-st.Messages || len(tr.files("lyn")) != n {
		t.Fatalf("resumed at %d: %+v, %d files; want %d in all", st.Offset, res["lyn"], len(tr.files("lyn")), n)
	}
	checkVerify(t, tr, "lyn", n)
}

// checkVerify runs Verify for user and fails unless all want messages are found.
func checkVerify(t *testing.T, tr *tree, user string, want int64) {
	t.Helper()
	var got []UserVerify
	cfg := tr.config()
	cfg.Users = []string{user}
	if err := Verify(context.Background(), cfg, func(v UserVerify) { got = append(got, v) }); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(got) != 1 || got[0].Err != nil || got[0].Result.Messages != want || got[0].Result.Found != want {
		t.Fatalf("verify %s: %+v; want %d of %d found", user, got, want, want)
	}
}

// A pass after a message was removed from the start of the source (a POP3 expunge) finds the
// messages already in the Maildir wherever they moved, writes none again, and removes the
// file of the message that is gone.
func TestRunMirrorsExpunge(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "max")
	tr.write("var/mail/max", msgA+msgB+msgC, "max")
	run(t, tr.config())
	before := tr.files("max")
	tr.write("var/mail/max", msgB+msgC, "max")
	_, res := run(t, tr.config())
	if r := res["max"]; r.Outcome != OutcomeMigrated || r.Err != nil || r.Stats.Written != 0 || r.Stats.Existed != 2 || r.Stats.Removed != 1 {
		t.Fatalf("pass after the expunge: %+v; want both remaining messages found, none written, one removed", r)
	}
	if got := tr.files("max"); len(got) != 2 || !slices.Contains(before, got[0]) || !slices.Contains(before, got[1]) {
		t.Fatalf("Maildir after the pass: %v (before %v); want the 2 remaining files", got, before)
	}
	checkVerify(t, tr, "max", 2)
}

// A message the user deleted through Dovecot after the migration (its file gone and its UID
// no longer in dovecot-uidlist) lets --after go ahead, and verify reports it deleted rather
// than missing; a missing message that dovecot-uidlist cannot account for still blocks.
func TestRunAfterDeletedByUser(t *testing.T) {
	t.Parallel()
	// expunge removes the file of message i (0: msgA, UID 1; 1: msgB, UID 2) and its uidlist
	// line, as Dovecot does; with next set, it also rewrites the header's next UID.
	expunge := func(tr *tree, user string, i int, next string) {
		name := tr.files(user)[i]
		must(t, os.Remove(tr.path("home/"+user+"/Maildir/"+name)))
		base, _, _ := strings.Cut(filepath.Base(name), ":")
		p := tr.path("home/" + user + "/Maildir/dovecot-uidlist")
		b, err := os.ReadFile(p)
		must(t, err)
		lines := strings.SplitAfter(string(b), "\n")
		var out strings.Builder
		for i, l := range lines {
			switch {
			case i == 0 && next != "":
				f := strings.Fields(l)
				for j := range f {
					if strings.HasPrefix(f[j], "N") {
						f[j] = "N" + next
					}
				}
				out.WriteString(strings.Join(f, " ") + "\n")
			case !strings.Contains(l, base):
				out.WriteString(l)
			}
		}
		tr.write("home/"+user+"/Maildir/dovecot-uidlist", out.String(), user)
	}
	tests := []struct {
		name    string
		change  func(tr *tree)
		deleted bool // else refused
		rebuilt bool // the records are lost: the pass rebuilds them, writing the message again
	}{
		{"expunged through Dovecot", func(tr *tree) { expunge(tr, "nia", 0, "") }, true, false},
		{"file removed, still listed", func(tr *tree) {
			must(t, os.Remove(tr.path("home/nia/Maildir/"+tr.files("nia")[0])))
		}, false, false},
		{"expunged, next UID not above it", func(tr *tree) { expunge(tr, "nia", 1, "2") }, false, false},
		{"expunged, no UID records", func(tr *tree) {
			expunge(tr, "nia", 0, "")
			store := StateStore{Dir: tr.path("var/lib/maildirmig")}
			st, err := store.Load("nia", KindSpool, tr.path("var/mail/nia"))
			must(t, err)
			p, err := store.recordsPath("nia", KindSpool, tr.path("var/mail/nia"), st.Gen)
			must(t, err)
			must(t, os.Remove(p))
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := newTree(t, "nia")
			tr.write("var/mail/nia", msgA+msgB, "nia")
			run(t, tr.config())
			tt.change(tr)
			var v []UserVerify
			must(t, Verify(context.Background(), tr.config(), func(u UserVerify) { v = append(v, u) }))
			if len(v) != 1 || v[0].Err != nil {
				t.Fatalf("verify: %+v", v)
			}
			r := v[0].Result
			if tt.deleted && (r.Found != 1 || len(r.Deleted) != 1 || len(r.Missing) != 0) ||
				!tt.deleted && (r.Found != 1 || len(r.Deleted) != 0 || len(r.Missing) != 1) {
				t.Fatalf("verify: %+v; deleted by the user: %v", r, tt.deleted)
			}
			cfg := tr.config()
			cfg.After = AfterTruncate
			_, res := run(t, cfg)
			got := res["nia"]
			if tt.rebuilt {
				// Without records nothing tells a deletion from a loss: the source, which
				// nobody else reads yet, is the truth, and the message is there again.
				if got.After != "truncated" || got.Stats.Written != 1 || len(tr.files("nia")) != 2 {
					t.Fatalf("--after truncate with the records lost: %+v, files %v; want the message written again, then the source truncated", got, tr.files("nia"))
				}
				return
			}
			if tt.deleted && got.After != "truncated" || !tt.deleted && (got.After != "" || got.Err == nil || !strings.Contains(got.Err.Error(), "1 missing")) {
				t.Fatalf("--after truncate: after %q, err %v; deleted by the user: %v", got.After, got.Err, tt.deleted)
			}
		})
	}
}

// bigBody is a message body long enough that reading one message reports progress.
var bigBody = strings.Repeat("a line of a long message body, to pass a progress report\n", 12000)

// interruptible is how many messages a mailbox runInterrupted stops in the middle of holds:
// enough that a worker's answers about them fill the pipe to root many times over.
const interruptible = 600

// bigMailbox returns an mbox of n messages, and for each message boundary the number of
// messages before it.
func bigMailbox(n int) (string, map[int64]int64) {
	var src strings.Builder
	at := map[int64]int64{}
	for i := range n {
		fmt.Fprintf(&src, "From x@example.org Mon Jan  1 10:%02d:%02d 2024\nSubject: %d\n\nbody of message %d\n\n", i/60, i%60, i, i)
		at[int64(src.Len())] = int64(i + 1)
	}
	return src.String(), at
}

// runInterrupted runs cfg with a resume point after every message and cancels it as soon as
// the worker reports the first messages read, as Ctrl-C in the middle of a mailbox does. Root
// stops reading
// the worker's answers while it cancels, so a worker is held by the full pipe long before it
// could finish a mailbox of interruptible messages: the run stops inside it, however fast the
// worker is and however slow root.
func runInterrupted(t *testing.T, cfg Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.Convert.FlushEvery = 1
	cfg.Message = func(string, int64) { cancel() }
	if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Run: %v", err)
	}
}

// TestRunSweepsStateTemps: a run removes the temporary state files of a run that died (its pid
// is gone), in the state directory and its folders/, and says so in the audit log.
func TestRunSweepsStateTemps(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "alice")
	tr.write("var/mail/alice", msgA, "alice")
	dead := exec.Command("true")
	must(t, dead.Run())
	if unix.Kill(dead.Process.Pid, 0) != unix.ESRCH {
		t.Skip("the pid of an ended process is in use again")
	}
	left := []string{
		fmt.Sprintf("var/lib/maildirmig/.alice.spool-0123456789ab.json.P%d.42.tmp", dead.Process.Pid),
		fmt.Sprintf("var/lib/maildirmig/folders/.alice.json.P%d.43.tmp", dead.Process.Pid),
	}
	tr.mkdir("var/lib/maildirmig/folders", 0o700, "")
	for _, p := range left {
		tr.write(p, "{", "")
	}
	run(t, tr.config())
	for _, p := range left {
		if _, err := os.Lstat(tr.path(p)); err == nil {
			t.Errorf("%s left", p)
		}
	}
	recovered := 0
	for _, e := range tr.audit() {
		if e["event"] == EventNotice && e["kind"] == EventRecovered {
			recovered++
		}
	}
	if recovered != 2 {
		t.Errorf("%d recovered notices in the audit log, want one per directory", recovered)
	}
}

// TestRunRefusesSharedStateDir: --state-dir /tmp by mistake. Root must not take over a
// directory every user can write in, nor change its mode: the run stops before any user, with
// an error that names the directory and its mode, and /tmp stays 1777.
func TestRunRefusesSharedStateDir(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "alice")
	tr.write("var/mail/alice", msgA, "alice")
	tr.mkdir("tmp", 0o700, "")
	must(t, unix.Chmod(tr.path("tmp"), 0o1777))
	cfg := tr.config()
	cfg.StateDir = "/tmp"
	_, err := Run(context.Background(), cfg)
	if want := "migrate: state directory: " + tr.path("tmp") + " has mode 1777: its group or others can write in it"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run with --state-dir /tmp: %v, want %q", err, want)
	}
	var st unix.Stat_t
	must(t, unix.Stat(tr.path("tmp"), &st))
	if st.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp has mode %04o after the run, want 1777", st.Mode&0o7777)
	}
	if files := tr.files("alice"); len(files) != 0 {
		t.Errorf("alice was migrated without a state: %v", files)
	}
}

// TestRunRelativePaths migrates with the passwd file, spool, state and audit log given as paths
// relative to the working directory, as an administrator may type them, then verifies and
// passes again from another directory with the same paths made absolute: the state a pass keys
// on its source's path must be found either way.
func TestRunRelativePaths(t *testing.T) {
	tr := newTree(t, "rel")
	tr.write("var/mail/rel", msgA+msgB, "rel")
	tr.write("pw", fmt.Sprintf("rel:x:%d:%d::%s:/bin/sh\n", tr.UID("rel"), tr.UID("rel"), tr.path("home/rel")), "")
	relative := host.Host{Passwd: "pw", SpoolDir: "var/mail", StateDir: "state", AuditLog: "audit.jsonl"}
	cfg := tr.config()
	cfg.Host = relative
	t.Chdir(tr.Dir)
	if _, res := run(t, cfg); res["rel"].Err != nil || res["rel"].Stats.Written != 2 {
		t.Fatalf("the pass with relative paths: %+v", res["rel"])
	}
	t.Chdir("/")
	cfg.Host = host.Host{Passwd: tr.path("pw"), SpoolDir: tr.path("var/mail"), StateDir: tr.path("state"), AuditLog: tr.path("audit.jsonl")}
	var got []UserVerify
	must(t, Verify(context.Background(), cfg, func(v UserVerify) { got = append(got, v) }))
	if len(got) != 1 || got[0].Err != nil || got[0].Result.Found != 2 {
		t.Errorf("verify with absolute paths: %+v; want 2 of 2 found", got)
	}
	if _, res := run(t, cfg); res["rel"].Err != nil || res["rel"].Outcome != OutcomeUpToDate {
		t.Errorf("a pass with absolute paths after one with relative paths: %+v; want up to date", res["rel"])
	}
}
