package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/maildir"
)

// durabilityMbox writes an mbox of n messages for the traced runs: most a few KB, every
// fiftieth larger than the writer's 64 KiB buffer (so its file takes several writes), one
// in three without a Status header (so it goes to new/, the others to cur/).
func durabilityMbox(t *testing.T, n int) string {
	t.Helper()
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "From sender%d@example.org Fri Mar  1 08:%02d:%02d 2019\n", i%7, i/60%60, i%60)
		fmt.Fprintf(&b, "From: <sender%d@example.org>\nTo: <me@example.com>\nSubject: message %d\n", i%7, i)
		fmt.Fprintf(&b, "Date: Fri, 01 Mar 2019 08:%02d:%02d +0000\nMessage-ID: <%d@durability.test>\n", i/60%60, i%60, i)
		if i%3 != 0 {
			b.WriteString("Status: RO\n")
		}
		b.WriteString("\n")
		lines := 20 + i%40
		if i%50 == 49 {
			lines = 2000
		}
		for j := range lines {
			fmt.Fprintf(&b, "line %d of message %d, long enough to look like text\n", j, i)
		}
		b.WriteString("\n")
	}
	src := filepath.Join(t.TempDir(), "mbox")
	if err := os.WriteFile(src, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return src
}

// requireStrace returns strace's path, or skips when it is missing or cannot trace here.
func requireStrace(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed: the order of syncs and renames is proven from its trace (apt-get install strace)")
	}
	if out, err := exec.Command(path, "-f", "-o", os.DevNull, "true").CombinedOutput(); err != nil {
		t.Skipf("strace cannot trace here (ptrace not allowed?): %v: %s", err, out)
	}
	return path
}

// tracedRun is one convert run under strace.
type tracedRun struct {
	lines   []string // the trace, one line each
	maildir string
	files   int // message files in cur/ and new/ after the run
}

// traceConvert runs `maildirmig convert --from src DIR/Maildir args...` under strace -f -y,
// behind prefix (a command such as prlimit that then runs maildirmig), and returns its trace.
// dir must not exist yet.
func traceConvert(t *testing.T, strace, src, dir string, prefix []string, args ...string) tracedRun {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	maildir := filepath.Join(dir, "Maildir")
	trace := filepath.Join(dir, "trace")
	full := []string{"-f", "-y", "-s", "256", "-o", trace}
	full = append(full, prefix...)
	full = append(full, binary, "convert", "-q", "--from", src)
	full = append(full, args...)
	full = append(full, maildir)
	r := runCommand(exec.Command(strace, full...))
	if r.code != 0 {
		t.Fatalf("strace maildirmig convert %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	return tracedRun{lines: strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"), maildir: maildir, files: len(messageFiles(t, maildir))}
}

// check parses lines and judges them for maildir.
func check(t *testing.T, lines []string, maildir string) ([]*straceCall, durabilityReport) {
	t.Helper()
	calls, err := parseStrace(strings.NewReader(strings.Join(lines, "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := checkDurability(calls, maildir)
	if err != nil {
		t.Fatal(err)
	}
	return calls, rep
}

func countCalls(calls []*straceCall, name string, match func(*straceCall) bool) int {
	n := 0
	for _, c := range calls {
		if c.name == name && c.ok() && (match == nil || match(c)) {
			n++
		}
	}
	return n
}

// TestDurableModesSyncBeforeRename proves the durability order from the system calls, which
// a kill -9 cannot (it keeps the page cache): in each durable mode, traced with strace -f -y,
// every rename of a message from tmp/ into new/ or cur/ starts after a completed sync that
// covers the file's last write, and every rename is synced before the run exits. Then it
// proves the judge can fail: --fsync none, and traces of the durable modes with one sync
// taken out or moved, must each be reported.
func TestDurableModesSyncBeforeRename(t *testing.T) {
	strace := requireStrace(t)
	n := 1100 // three batches of at most 512 files
	if testing.Short() {
		n = 600
	}
	src := durabilityMbox(t, n)
	syncfs := maildir.SyncfsReportsErrors()
	// The runs live as long as the whole test: the edits at the end judge their traces
	// again, and the judge looks at the Maildir's file system.
	work := t.TempDir()

	// A batch's syncfs covers its files; cur/ and new/ are fsynced after its renames.
	oneSyncfsABatch := func(t *testing.T, calls []*straceCall) {
		if c := countCalls(calls, "syncfs", nil); syncfs && c < (n+511)/512 {
			t.Errorf("%d syncfs calls, want one a batch of at most 512 files", c)
		}
	}
	runs := map[string]tracedRun{}
	for _, tc := range []struct {
		name   string
		prefix []string
		args   []string
		// shape checks that the mode ran as it says, so that the order is judged on the
		// calls that mode makes.
		shape func(t *testing.T, calls []*straceCall)
	}{
		// The default is syncfs.
		{name: "default", shape: oneSyncfsABatch},
		{name: "syncfs", args: []string{"--fsync", "syncfs"}, shape: oneSyncfsABatch},
		{name: "batch", args: []string{"--fsync", "batch"}, shape: func(t *testing.T, calls []*straceCall) {
			if c := countCalls(calls, "syncfs", nil); c != 0 {
				t.Errorf("--fsync batch made %d syncfs calls", c)
			}
			if c := countCalls(calls, "fsync", nil); c < n {
				t.Errorf("--fsync batch made %d fsync calls for %d messages", c, n)
			}
		}},
		// With few descriptors the batch closes most files after writing them and opens
		// them again for their fsync: the sync then goes through another descriptor.
		{name: "batch-few-descriptors", prefix: []string{"prlimit", "--nofile=160:160"}, args: []string{"--fsync", "batch"}, shape: func(t *testing.T, calls []*straceCall) {
			reopened := countCalls(calls, "openat2", func(c *straceCall) bool {
				return strings.Contains(strings.Join(c.args, ","), "O_RDONLY") && strings.Contains(c.retPath(), "/tmp/")
			})
			if reopened == 0 {
				t.Error("no tmp file was opened again for its fsync: the limit on descriptors did not bite")
			}
		}},
		{name: "always", args: []string{"--fsync", "always"}, shape: func(t *testing.T, calls []*straceCall) {
			if c := countCalls(calls, "fsync", nil); c < n {
				t.Errorf("--fsync always made %d fsync calls for %d messages", c, n)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.prefix) > 0 {
				if _, err := exec.LookPath(tc.prefix[0]); err != nil {
					t.Skipf("%s not installed (util-linux)", tc.prefix[0])
				}
			}
			run := traceConvert(t, strace, src, filepath.Join(work, tc.name), tc.prefix, tc.args...)
			if run.files != n {
				t.Fatalf("the Maildir holds %d messages, want %d", run.files, n)
			}
			calls, rep := check(t, run.lines, run.maildir)
			tc.shape(t, calls)
			if rep.renames != n {
				t.Errorf("the trace shows %d renames into new/ and cur/, want one for each of %d messages", rep.renames, n)
			}
			for i, v := range rep.violations {
				if i == 10 {
					t.Errorf("... and %d more", len(rep.violations)-i)
					break
				}
				t.Error(v)
			}
			t.Logf("%d renames judged, %d violations, %d syncs, %d trace lines", rep.renames, len(rep.violations), rep.syncs, len(run.lines))
			if len(rep.violations) == 0 {
				runs[tc.name] = run
			}
		})
	}

	t.Run("none-is-reported", func(t *testing.T) {
		run := traceConvert(t, strace, src, filepath.Join(work, "none"), nil, "--fsync", "none")
		_, rep := check(t, run.lines, run.maildir)
		if rep.renames != n {
			t.Fatalf("the trace shows %d renames, want %d", rep.renames, n)
		}
		// Each rename lacks both syncs: the one before it and the one after.
		if len(rep.violations) != 2*n {
			t.Errorf("--fsync none: %d violations reported, want %d (two for each rename)", len(rep.violations), 2*n)
		}
	})

	// The edits below take a recorded trace, change one thing, and demand that the judge
	// names the rename it broke and no other.
	edited := func(t *testing.T, mode string, edit func(t *testing.T, calls []*straceCall, lines []string) ([]string, string)) {
		t.Helper()
		run, ok := runs[mode]
		if !ok {
			t.Fatalf("no clean trace of --fsync %s to edit", mode)
		}
		calls, _ := check(t, run.lines, run.maildir)
		lines, want := edit(t, calls, slices.Clone(run.lines))
		_, rep := check(t, lines, run.maildir)
		if len(rep.violations) == 0 {
			t.Fatalf("the edited trace passed; want a violation: %s", want)
		}
		found := false
		for _, v := range rep.violations {
			found = found || strings.Contains(v, want)
		}
		if !found {
			t.Errorf("no violation mentions %q; got:\n%s", want, strings.Join(first(rep.violations, 5), "\n"))
		}
		t.Logf("%d violations, the first: %s", len(rep.violations), rep.violations[0])
	}
	// publishes tells a message's move from tmp/ into new/ or cur/ (not a control file's
	// lock, which is linked from tmp/ into the Maildir itself).
	publishes := func(c *straceCall) bool {
		if c.name != "renameat2" && c.name != "linkat" || !c.ok() || len(c.args) < 4 {
			return false
		}
		from, _ := fdPath(c.args[0])
		to, _ := fdPath(c.args[2])
		return filepath.Base(from) == "tmp" && (filepath.Base(to) == "new" || filepath.Base(to) == "cur")
	}
	firstRename := func(t *testing.T, calls []*straceCall) *straceCall {
		i := slices.IndexFunc(calls, publishes)
		if i < 0 {
			t.Fatal("no rename from tmp/ into new/ or cur/ in the trace")
		}
		return calls[i]
	}
	lastRename := func(t *testing.T, calls []*straceCall) *straceCall {
		var last *straceCall
		for _, c := range calls {
			if publishes(c) {
				last = c
			}
		}
		if last == nil {
			t.Fatal("no rename from tmp/ into new/ or cur/ in the trace")
		}
		return last
	}
	// moved names a rename as the judge does: "tmp/NAME to cur/NAME".
	moved := func(c *straceCall) string {
		from, _ := stringArg(c.args[1])
		to, _ := stringArg(c.args[3])
		dir, _ := fdPath(c.args[2])
		return "tmp/" + from + " to " + filepath.Base(dir) + "/" + to
	}
	unsynced := func(c *straceCall) string { return moved(c) + ": no sync of the file" }
	unsyncedDir := func(c *straceCall) string {
		dir, _ := fdPath(c.args[2])
		return moved(c) + ": no sync of " + filepath.Base(dir) + "/ started after the rename"
	}
	tmpFile := func(c *straceCall) string {
		dir, _ := fdPath(c.args[0])
		name, _ := stringArg(c.args[1])
		return dir + "/" + name
	}
	if syncfs {
		t.Run("syncfs-before-batch-removed", func(t *testing.T) {
			edited(t, "syncfs", func(t *testing.T, calls []*straceCall, lines []string) ([]string, string) {
				r := firstRename(t, calls)
				s := lastBefore(calls, "syncfs", r.start)
				if s == nil {
					t.Fatal("no syncfs before the first rename")
				}
				return removeCall(lines, s), unsynced(r)
			})
		})
		t.Run("syncfs-completes-after-rename-starts", func(t *testing.T) {
			edited(t, "syncfs", func(t *testing.T, calls []*straceCall, lines []string) ([]string, string) {
				r := firstRename(t, calls)
				s := lastBefore(calls, "syncfs", r.start)
				if s == nil {
					t.Fatal("no syncfs before the first rename")
				}
				return completeAfter(lines, s, r.start), unsynced(r)
			})
		})
	}
	t.Run("one-file-fsync-removed", func(t *testing.T) {
		edited(t, "batch-few-descriptors", func(t *testing.T, calls []*straceCall, lines []string) ([]string, string) {
			r := firstRename(t, calls)
			file := tmpFile(r)
			for _, c := range calls {
				if p, ok := fdPath(firstArg(c)); c.name == "fsync" && ok && p == file {
					return removeCall(lines, c), unsynced(r)
				}
			}
			t.Fatalf("no fsync of %s", file)
			return nil, ""
		})
	})
	removeDirSync := func(t *testing.T, calls []*straceCall, lines []string) ([]string, string) {
		r := lastRename(t, calls)
		dir, _ := fdPath(r.args[2])
		for _, c := range calls {
			if p, ok := fdPath(firstArg(c)); c.name == "fsync" && ok && p == dir && c.start > r.end {
				return removeCall(lines, c), unsyncedDir(r)
			}
		}
		t.Fatalf("no fsync of %s after the last rename", dir)
		return nil, ""
	}
	t.Run("directory-fsync-removed", func(t *testing.T) { edited(t, "batch", removeDirSync) })
	if syncfs {
		t.Run("directory-fsync-after-last-batch-removed", func(t *testing.T) { edited(t, "syncfs", removeDirSync) })
	}
	t.Run("fsync-before-last-write", func(t *testing.T) {
		edited(t, "always", func(t *testing.T, calls []*straceCall, lines []string) ([]string, string) {
			r := firstRename(t, calls)
			file := tmpFile(r)
			var utime, fsync *straceCall
			for _, c := range calls {
				p, _ := fdPath(firstArg(c))
				switch {
				case p == file && c.name == "utimensat" && utime == nil:
					utime = c
				case p == file && c.name == "fsync" && fsync == nil:
					fsync = c
				}
			}
			if utime == nil || fsync == nil || utime.end > fsync.start {
				t.Fatalf("want a utimensat then an fsync of %s", file)
			}
			// The mtime is set after the fsync: the sync no longer covers the file.
			return moveCallAfter(lines, utime, fsync.end), unsynced(r)
		})
	})
}

func firstArg(c *straceCall) string {
	if len(c.args) == 0 {
		return ""
	}
	return c.args[0]
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// lastBefore returns the last successful call named name that completed before line.
func lastBefore(calls []*straceCall, name string, line int) *straceCall {
	var found *straceCall
	for _, c := range calls {
		if c.name == name && c.ok() && c.end < line {
			found = c
		}
	}
	return found
}

// firstAfter returns the first successful call named name that started after line.
func firstAfter(calls []*straceCall, name string, line int) *straceCall {
	for _, c := range calls {
		if c.name == name && c.ok() && c.start > line {
			return c
		}
	}
	return nil
}

// removeCall drops c's lines from lines.
func removeCall(lines []string, c *straceCall) []string {
	var out []string
	for i, l := range lines {
		if i+1 != c.start && i+1 != c.end {
			out = append(out, l)
		}
	}
	return out
}

// completeAfter rewrites c as a call made by another thread, unfinished at its start and
// resumed just after line: a sync that ran beside the rename instead of before it.
func completeAfter(lines []string, c *straceCall, line int) []string {
	const other = "999999 "
	call := strings.TrimPrefix(lines[c.start-1], fmt.Sprint(c.pid)+" ")
	if c.start == c.end {
		// "NAME(ARGS) = RET" on one line: split it the way strace does.
		i := strings.LastIndex(call, ") = ")
		lines[c.start-1] = other + call[:i] + " <unfinished ...>"
		return slices.Insert(lines, line, other+"<... "+c.name+" resumed>"+call[i:])
	}
	lines[c.start-1] = other + call
	resumed := other + strings.TrimPrefix(lines[c.end-1], fmt.Sprint(c.pid)+" ")
	lines = slices.Delete(lines, c.end-1, c.end)
	return slices.Insert(lines, line-1, resumed)
}

// moveCallAfter moves c (one line, or its two) to just after line.
func moveCallAfter(lines []string, c *straceCall, line int) []string {
	var moved, out []string
	for i, l := range lines {
		if i+1 == c.start || i+1 == c.end {
			// As made by a thread of its own: c's thread may be inside another call at line
			// (a goroutine moves between threads), and a thread makes one call at a time.
			moved = append(moved, "999999 "+strings.TrimPrefix(l, fmt.Sprint(c.pid)+" "))
			continue
		}
		out = append(out, l)
		if i+1 == line {
			out = append(out, moved...)
		}
	}
	return out
}

// TestDurabilityJudge runs the trace judge on short traces written by hand: the ways strace
// prints threads that interleave (unfinished and resumed calls, both pid prefixes, signals,
// exits, a restarted call), escaped paths, and each way a sync can fail to cover a rename.
// It needs no strace.
func TestDurabilityJudge(t *testing.T) {
	t.Parallel()
	// A root whose name needs strace's escapes, with a comma that is no argument separator.
	root := filepath.Join(t.TempDir(), "we<ir>d,Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	esc := strings.NewReplacer("<", `\74`, ">", `\76`).Replace(root)
	// Each trace writes tmp/a and moves it to cur/a,S=3:2,S; D is the root as -y prints it.
	const (
		create  = `100 openat2(3<D/tmp>, "a", {flags=O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, mode=0600, resolve=RESOLVE_NO_SYMLINKS}, 24) = 5<D/tmp/a>`
		write   = `100 write(5<D/tmp/a>, "a, b"..., 3) = 3`
		utime   = `100 utimensat(5<D/tmp/a>, NULL, [{tv_sec=1551427200, tv_nsec=0} /* 2019-03-01T08:00:00+0000 */, {tv_sec=1551427200, tv_nsec=0}], 0) = 0`
		fsync   = `101 fsync(5<D/tmp/a>) = 0`
		rename  = `100 renameat2(3<D/tmp>, "a", 4<D/cur>, "a,S=3:2,S", RENAME_NOREPLACE) = 0`
		dirSync = `100 fsync(4<D/cur>) = 0`
	)
	for _, tc := range []struct {
		name  string
		trace []string
		want  string // a violation's text; "" for none
	}{
		{"in order", []string{create, write, utime, fsync, rename, dirSync}, ""},
		{"fsync on another thread, resumed before the rename", []string{
			create, write, utime,
			`101 fsync(5<D/tmp/a> <unfinished ...>`,
			`100 --- SIGURG {si_signo=SIGURG, si_code=SI_TKILL, si_pid=100, si_uid=0} ---`,
			`102 futex(0xc000100148, FUTEX_WAKE_PRIVATE, 1) = 1`,
			`101 <... fsync resumed>) = 0`,
			rename, dirSync,
			`101 +++ exited with 0 +++`,
		}, ""},
		{"[pid N] prefixes", []string{
			"[pid   100] " + strings.TrimPrefix(create, "100 "), "[pid 100] " + strings.TrimPrefix(write, "100 "),
			"[pid 100] " + strings.TrimPrefix(utime, "100 "), "[pid 101] " + strings.TrimPrefix(fsync, "101 "),
			"[pid 100] " + strings.TrimPrefix(rename, "100 "), "[pid 100] " + strings.TrimPrefix(dirSync, "100 "),
		}, ""},
		{"syncfs of the file system before and after", []string{create, write, utime,
			`100 syncfs(3<D/tmp>) = 0`, rename, `100 syncfs(3<D/tmp>) = 0`}, ""},
		{"a restarted sync", []string{create, write, utime,
			`100 syncfs(3<D/tmp> <unfinished ...>`,
			`100 <... syncfs resumed>) = ? ERESTART_RESTARTBLOCK (Interrupted by signal)`,
			`100 --- SIGURG {si_signo=SIGURG, si_code=SI_TKILL, si_pid=100, si_uid=0} ---`,
			`100 restart_syscall(<... resuming interrupted syncfs ...>) = 0`,
			rename, dirSync}, ""},
		{"rename starts while the fsync is running", []string{
			create, write, utime,
			`101 fsync(5<D/tmp/a> <unfinished ...>`,
			rename,
			`101 <... fsync resumed>) = 0`,
			dirSync,
		}, "renameat2 tmp/a to cur/a,S=3:2,S: no sync of the file"},
		{"rename starts while a write is running", []string{
			create, `102 write(5<D/tmp/a>, "a, b"..., 3 <unfinished ...>`, utime, fsync, rename,
			`102 <... write resumed>) = 3`, dirSync,
		}, "in flight"},
		{"no sync", []string{create, write, utime, rename, dirSync}, "no sync of the file"},
		{"a failed fsync", []string{create, write, utime,
			`101 fsync(5<D/tmp/a>) = -1 EIO (Input/output error)`, rename, dirSync}, "no sync of the file"},
		{"fdatasync leaves the mtime", []string{create, write, utime,
			`101 fdatasync(5<D/tmp/a>) = 0`, rename, dirSync}, "no sync of the file"},
		{"fsync of another file", []string{create, write, utime,
			`101 fsync(6<D/tmp/b>) = 0`, rename, dirSync}, "no sync of the file"},
		{"mtime set after the fsync", []string{create, write, fsync, utime, rename, dirSync}, "no sync of the file"},
		{"syncfs of another file system", []string{create, write, utime,
			`100 syncfs(7</proc>) = 0`, rename, dirSync}, "no sync of the file"},
		{"no directory sync after", []string{create, write, utime, fsync, dirSync, rename}, "no sync of cur/ started after the rename"},
		{"the wrong directory synced", []string{create, write, utime, fsync, rename,
			`100 fsync(4<D/new>) = 0`}, "no sync of cur/"},
		{"a directory sync that never completed", []string{create, write, utime, fsync, rename,
			`100 fsync(4<D/cur> <unfinished ...>`, `100 +++ killed by SIGKILL +++`}, "no sync of cur/"},
		{"written in place in new/", []string{
			`100 openat2(3<D/new>, "b", {flags=O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, mode=0600}, 24) = 5<D/new/b>`,
			`100 write(5<D/new/b>, "abc", 3) = 3`, `100 fsync(5<D/new/b>) = 0`,
		}, "new/b opened for writing directly in new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trace := strings.ReplaceAll(strings.Join(tc.trace, "\n"), "<D", "<"+esc) + "\n"
			calls, err := parseStrace(strings.NewReader(trace))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := checkDurability(calls, root)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if rep.renames != 1 || len(rep.violations) > 0 {
					t.Errorf("%d renames, violations %q; want 1 rename and none", rep.renames, rep.violations)
				}
				return
			}
			if len(rep.violations) == 0 || !strings.Contains(strings.Join(rep.violations, "\n"), tc.want) {
				t.Errorf("violations %q, want one with %q", rep.violations, tc.want)
			}
		})
	}
}

// TestParseStraceRefuses proves that a line the parser cannot read is an error, not a call
// silently skipped, and that names strace cut short (-s too small) stop the judge.
func TestParseStraceRefuses(t *testing.T) {
	t.Parallel()
	for _, trace := range []string{
		"100 this is not strace output\n",
		"100 <... fsync resumed>) = 0\n",                            // resumes nothing
		"100 fsync(3</x> <unfinished ...>\n100 close(4) = 0\n",      // a thread runs two calls at once
		"100 fsync(3</x>\n",                                         // no result
		"100 renameat2(3</x/tmp>, \"a\", 4</x/cur>, \"b\", 0 = 0\n", // unbalanced
	} {
		if _, err := parseStrace(strings.NewReader(trace)); err == nil {
			t.Errorf("parseStrace(%q) gave no error", trace)
		}
	}
	root := t.TempDir()
	calls, err := parseStrace(strings.NewReader(`100 renameat2(3<` + root + `/tmp>, "1551427200.M0Q0X5e57"..., 4<` + root + `/cur>, "1551427200.M0Q0X5e57"..., RENAME_NOREPLACE) = 0` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkDurability(calls, root); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("checkDurability of cut names: %v, want an error that says they are cut short", err)
	}
}

// TestParseStraceUnnamedCall: strace prints "???" for a call it cannot decode, as a thread
// exits under load; such a call is no sync and no rename, and the parse goes on.
func TestParseStraceUnnamedCall(t *testing.T) {
	t.Parallel()
	calls, err := parseStrace(strings.NewReader("100 ???( <unfinished ...>\n101 fsync(3</x>) = 0\n100 +++ exited with 0 +++\n102 ???() = ?\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0].name != "fsync" {
		t.Errorf("calls %v, want the fsync alone", calls)
	}
}
