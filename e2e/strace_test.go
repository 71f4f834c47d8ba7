package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// This file reads what `strace -f -y -s 256 -o FILE` writes and judges from it whether a
// Maildir writer made every message durable before it showed it: the only place where a
// missing sync can be seen, since a kill -9 keeps the page cache and a crash test passes
// without any sync at all.

// straceCall is one system call of a trace: its name, its top-level arguments and its
// result as strace printed them, and the trace lines where it started and where it
// completed. The two differ when strace printed it `<unfinished ...>` and later
// `<... NAME resumed>` because another thread's calls came in between.
//
// The trace's line order is the order of events: strace prints a call's completion when
// the thread stops on its way back from the kernel, and the start of another call when that
// thread stops on its way in, before the kernel did anything. A sync whose completion is
// printed before a rename's start was over before the rename began.
type straceCall struct {
	pid        int
	name       string
	args       []string // with their -y annotations: 14</path/to/file>
	ret        string   // what follows " = "; "" while the call never completed
	start, end int      // 1-based line numbers; end is 0 while the call never completed
}

// ok says whether the call completed and returned no error.
func (c *straceCall) ok() bool {
	if c.end == 0 || c.ret == "" {
		return false
	}
	return c.ret[0] >= '0' && c.ret[0] <= '9'
}

// retPath is the path strace -y gave the returned descriptor (openat's result), or "".
func (c *straceCall) retPath() string {
	p, _ := fdPath(strings.Fields(c.ret + " ")[0])
	return p
}

// parseStrace reads an strace -f -y trace. Lines it does not recognise are an error, so that
// a format it misreads cannot pass unnoticed as a trace without syncs or renames.
func parseStrace(r io.Reader) ([]*straceCall, error) {
	var (
		calls       []*straceCall
		pending     = map[int]*straceCall{} // unfinished, by thread
		pendingText = map[int]string{}
		interrupted = map[int]*straceCall{} // ended with ERESTART*, by thread, for restart_syscall
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		pid, rest := splitPID(line)
		switch {
		case rest == "":
			continue
		case strings.HasPrefix(rest, "---"):
			continue // a signal
		case strings.HasPrefix(rest, "+++"):
			// The thread is gone: a call it left unfinished never completes.
			delete(pending, pid)
			delete(pendingText, pid)
			continue
		}
		text := rest
		if strings.HasPrefix(rest, "<... ") {
			name, tail, ok := strings.Cut(rest[len("<... "):], " resumed>")
			c := pending[pid]
			if !ok || c == nil || c.name != name {
				return nil, fmt.Errorf("line %d: %q resumes no call of thread %d", n, rest, pid)
			}
			text = pendingText[pid] + tail
			delete(pending, pid)
			delete(pendingText, pid)
			if err := finish(c, text, n); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			noteInterrupted(c, interrupted)
			continue
		}
		open := strings.IndexByte(text, '(')
		if open <= 0 || !isName(text[:open]) {
			return nil, fmt.Errorf("line %d: not a system call: %q", n, line)
		}
		c := &straceCall{pid: pid, name: text[:open], start: n}
		calls = append(calls, c)
		if pending[pid] != nil {
			return nil, fmt.Errorf("line %d: thread %d starts %s with %s unfinished", n, pid, c.name, pending[pid].name)
		}
		if body, ok := strings.CutSuffix(text, " <unfinished ...>"); ok {
			pending[pid], pendingText[pid] = c, body
			continue
		}
		if err := finish(c, text, n); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if c.name == "restart_syscall" {
			// The kernel resumed a call a signal interrupted: it is that call.
			if prev := interrupted[pid]; prev != nil && strings.Contains(text, "interrupted "+prev.name+" ") {
				prev.ret, prev.end = c.ret, c.end
				delete(interrupted, pid)
			}
			continue
		}
		noteInterrupted(c, interrupted)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return calls, nil
}

func noteInterrupted(c *straceCall, interrupted map[int]*straceCall) {
	if strings.HasPrefix(c.ret, "? ERESTART") {
		interrupted[c.pid] = c
		c.end = 0
	}
}

// splitPID splits the thread id strace -f puts first ("123 " or "[pid 123] ").
func splitPID(line string) (int, string) {
	s := line
	if rest, ok := strings.CutPrefix(s, "[pid "); ok {
		s = strings.Replace(strings.TrimLeft(rest, " "), "]", "", 1)
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i == len(s) || s[i] != ' ' {
		return 0, strings.TrimSpace(line)
	}
	pid, _ := strconv.Atoi(s[:i])
	return pid, strings.TrimSpace(s[i:])
}

func isName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// finish reads "NAME(ARGS) = RET" into c, completed at line n.
func finish(c *straceCall, text string, n int) error {
	open := strings.IndexByte(text, '(')
	if open < 0 {
		return fmt.Errorf("no argument list in %q", text)
	}
	close := scanTo(text, open+1, ')')
	if close < 0 {
		return fmt.Errorf("unbalanced argument list in %q", text)
	}
	after := strings.TrimLeft(text[close+1:], " ")
	ret, ok := strings.CutPrefix(after, "= ")
	if !ok {
		return fmt.Errorf("no result in %q", text)
	}
	c.args = splitArgs(text[open+1 : close])
	c.ret, c.end = ret, n
	return nil
}

// scanTo returns the index of the first stop byte at nesting depth 0 from i on, skipping
// quoted strings, -y annotations (<...> after a descriptor) and nested brackets; -1 if none.
func scanTo(s string, i int, stop byte) int {
	depth := 0
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case c == '<' && i > 0 && (s[i-1] >= '0' && s[i-1] <= '9' || s[i-1] == 'D'):
			// strace escapes '<' and '>' inside the path, so the first '>' ends it.
			for i++; i < len(s) && s[i] != '>'; i++ {
			}
		case c == stop && depth == 0:
			return i
		case c == '(' || c == '{' || c == '[':
			depth++
		case c == ')' || c == '}' || c == ']':
			depth--
		}
	}
	return -1
}

// splitArgs splits an argument list at its top-level commas.
func splitArgs(s string) []string {
	var args []string
	for {
		i := scanTo(s, 0, ',')
		if i < 0 {
			if t := strings.TrimSpace(s); t != "" {
				args = append(args, t)
			}
			return args
		}
		args = append(args, strings.TrimSpace(s[:i]))
		s = s[i+1:]
	}
}

// fdPath returns the path -y gave a descriptor argument ("14</a/b>", "AT_FDCWD</a>").
func fdPath(arg string) (string, bool) {
	i := strings.IndexByte(arg, '<')
	if i <= 0 || !strings.HasSuffix(arg, ">") {
		return "", false
	}
	p := unescape(arg[i+1 : len(arg)-1])
	return strings.TrimSuffix(p, " (deleted)"), true
}

// stringArg returns a quoted string argument, unescaped; ok is false when it is not one or
// strace cut it short (-s).
func stringArg(arg string) (string, bool) {
	if len(arg) < 2 || arg[0] != '"' || arg[len(arg)-1] != '"' {
		return "", false
	}
	return unescape(arg[1 : len(arg)-1]), true
}

// unescape undoes strace's C-style escapes (\n, \", \\, \NNN octal, \xNN).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; {
		case c == 'n':
			b.WriteByte('\n')
		case c == 't':
			b.WriteByte('\t')
		case c == 'r':
			b.WriteByte('\r')
		case c == 'x' && i+2 < len(s):
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
		case c >= '0' && c <= '7':
			j := i
			for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			v, _ := strconv.ParseUint(s[i:j], 8, 8)
			b.WriteByte(byte(v))
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// atPath resolves a (dirfd, path) pair of arguments: an absolute path as it is, a relative
// one beneath the descriptor's -y path.
func atPath(dirfd, path string) (string, bool) {
	p, ok := stringArg(path)
	if !ok {
		return "", false
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p), true
	}
	d, ok := fdPath(dirfd)
	if !ok {
		return "", false
	}
	return filepath.Join(d, p), true
}

// modifiedPath says which file a successful call changed (its data, size, mode, owner or
// times, or by creating it), or "" for a call that changes no file.
func modifiedPath(c *straceCall) string {
	arg := func(i int) string {
		if i < len(c.args) {
			return c.args[i]
		}
		return ""
	}
	fd := func(i int) string { p, _ := fdPath(arg(i)); return p }
	switch c.name {
	case "write", "writev", "pwrite64", "pwritev", "pwritev2", "ftruncate", "fallocate",
		"fchmod", "fchown", "fsetxattr", "fremovexattr", "sendfile":
		return fd(0)
	case "copy_file_range", "splice":
		return fd(2)
	case "utimensat", "futimesat", "fchmodat", "fchmodat2", "fchownat", "setxattrat":
		if arg(1) == "NULL" {
			return fd(0)
		}
		p, _ := atPath(arg(0), arg(1))
		return p
	case "open", "creat", "openat", "openat2":
		// Any open for writing counts: creating the file is a change of its own, and a
		// file opened to write may be written through a mapping strace does not show.
		if strings.Contains(c.ret, "<") && (c.name == "creat" || strings.Contains(strings.Join(c.args, ","), "O_CREAT") ||
			strings.Contains(strings.Join(c.args, ","), "O_WRONLY") || strings.Contains(strings.Join(c.args, ","), "O_RDWR")) {
			return c.retPath()
		}
	case "truncate", "chmod", "chown", "lchown":
		p, _ := stringArg(arg(0))
		return p
	}
	return ""
}

// syncRange is a completed sync: of one file (path), or of a whole file system (path "").
type syncRange struct {
	path       string
	start, end int
}

// durabilityReport is what checkDurability found.
type durabilityReport struct {
	renames    int      // renames from tmp/ into new/ or cur/
	syncs      int      // successful syncs that cover something (fsync, syncfs, sync)
	violations []string // one sentence each
}

// checkDurability judges a trace of a writer into the Maildir at root: every rename (or
// link) of a file from tmp/ into new/ or cur/ must start after a sync that covers the file
// completed, having started after the file's last change (an fsync of the file, a syncfs
// of root's file system or a sync); and after the rename completed, a sync of the
// destination directory (its fsync, a syncfs or a sync) must start and complete before the
// trace ends. fdatasync does not count: it may leave the file's mtime behind, and the
// mtime is the message's received date. A file created directly in new/ or cur/ is a
// violation too.
func checkDurability(calls []*straceCall, root string) (durabilityReport, error) {
	var rep durabilityReport
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return rep, err
	}
	rootDev, err := device(root)
	if err != nil {
		return rep, err
	}
	tmp := filepath.Join(root, "tmp")
	visible := map[string]bool{filepath.Join(root, "new"): true, filepath.Join(root, "cur"): true}
	devs := map[string]uint64{}
	sameFS := func(p string) bool {
		d, ok := devs[p]
		if !ok {
			// A path that is gone (a deleted file's descriptor) proves nothing.
			d, _ = device(p)
			devs[p] = d
		}
		return d != 0 && d == rootDev
	}

	mods := map[string][]*straceCall{}
	direct := map[string]bool{} // files opened for writing in new/ or cur/, reported once
	var syncs []syncRange
	for _, c := range calls {
		if !c.ok() {
			continue
		}
		if p := modifiedPath(c); p != "" {
			mods[p] = append(mods[p], c)
			if visible[filepath.Dir(p)] && strings.HasPrefix(c.name, "open") && !direct[p] {
				direct[p] = true
				rep.violations = append(rep.violations, fmt.Sprintf("line %d: %s opened for writing directly in %s", c.start, rel(root, p), filepath.Base(filepath.Dir(p))))
			}
		}
		switch c.name {
		case "fsync":
			if p, ok := fdPath(c.args[0]); ok {
				syncs = append(syncs, syncRange{p, c.start, c.end})
			}
		case "syncfs":
			if p, ok := fdPath(c.args[0]); ok && sameFS(p) {
				syncs = append(syncs, syncRange{"", c.start, c.end})
			}
		case "sync":
			syncs = append(syncs, syncRange{"", c.start, c.end})
		}
	}
	rep.syncs = len(syncs)
	covers := func(s syncRange, p string) bool { return s.path == "" || s.path == p }

	for _, c := range calls {
		var from, to string
		var ok1, ok2 bool
		switch c.name {
		case "renameat2", "renameat", "linkat":
			if len(c.args) < 4 {
				continue
			}
			from, ok1 = atPath(c.args[0], c.args[1])
			to, ok2 = atPath(c.args[2], c.args[3])
		case "rename", "link":
			if len(c.args) < 2 {
				continue
			}
			from, ok1 = atPath("", c.args[0])
			to, ok2 = atPath("", c.args[1])
		default:
			continue
		}
		if !ok1 || !ok2 {
			if slices.ContainsFunc(c.args, func(a string) bool { return strings.HasSuffix(a, `"...`) }) {
				return rep, fmt.Errorf("line %d: %s's names are cut short: trace with a larger -s", c.start, c.name)
			}
			continue
		}
		if !c.ok() || filepath.Dir(from) != tmp || !visible[filepath.Dir(to)] {
			continue
		}
		rep.renames++
		what := fmt.Sprintf("line %d: %s %s to %s", c.start, c.name, rel(root, from), rel(root, to))

		// The file's last change that started before the rename.
		last := 0
		for _, m := range mods[from] {
			if m.start < c.start && m.end > last {
				last = m.end
			}
		}
		switch {
		case last == 0:
			rep.violations = append(rep.violations, what+": the trace never shows the file written")
			continue
		case last > c.start:
			rep.violations = append(rep.violations, fmt.Sprintf("%s: starts while a change of the file (ending line %d) is in flight", what, last))
			continue
		}
		synced := false
		for _, s := range syncs {
			if covers(s, from) && s.start > last && s.end < c.start {
				synced = true
				break
			}
		}
		if !synced {
			rep.violations = append(rep.violations, fmt.Sprintf("%s: no sync of the file started after its last change (line %d) and completed before the rename", what, last))
		}
		dir := filepath.Dir(to)
		durable := false
		for _, s := range syncs {
			if covers(s, dir) && s.start > c.end {
				durable = true
				break
			}
		}
		if !durable {
			rep.violations = append(rep.violations, fmt.Sprintf("%s: no sync of %s started after the rename completed (line %d)", what, filepath.Base(dir)+"/", c.end))
		}
	}
	return rep, nil
}

func rel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}

// device returns the device number of the file system that holds p.
func device(p string) (uint64, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return uint64(fi.Sys().(*syscall.Stat_t).Dev), nil
}
