package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// scriptCmds are the commands the scripts need beyond testscript's built-ins.
var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"maildir-ls":   cmdMaildirLs,
	"maildir-cat":  cmdMaildirCat,
	"uidlist":      cmdUidlist,
	"chop-newline": cmdChopNewline,
	"crlf":         cmdCRLF,
	"settime":      cmdSettime,
	"exits":        cmdExits,
}

// exits N PROG ARGS...: runs PROG like exec and asserts its exit status is exactly N; stdout
// and stderr are then checked as after exec.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// hostPart matches the host part of a Maildir name, which differs between machines.
var hostPart = regexp.MustCompile(`^([0-9]+\.[^.]+)\.[^,:]*`)

// normName replaces the host part of a Maildir file name by HOST.
func normName(name string) string {
	return hostPart.ReplaceAllString(name, "${1}.HOST")
}

// maildir-ls DIR: one line per message file of DIR (new/ and cur/, then tmp/), with the host
// part of the name replaced by HOST, the file mode, and the mtime in UTC.
func cmdMaildirLs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: maildir-ls DIR")
	}
	dir := ts.MkAbs(args[0])
	var lines []string
	for _, sub := range []string{"new", "cur", "tmp"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		ts.Check(err)
		for _, e := range ents {
			fi, err := os.Lstat(filepath.Join(dir, sub, e.Name()))
			ts.Check(err)
			lines = append(lines, fmt.Sprintf("%s/%s %04o %s", sub, normName(e.Name()), fi.Mode().Perm(), fi.ModTime().UTC().Format(time.RFC3339)))
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return subRank(lines[i]) < subRank(lines[j]) })
	for _, l := range lines {
		ts.Logf("%s", l)
		fmt.Fprintln(ts.Stdout(), l)
	}
}

func subRank(line string) int {
	return strings.Index("new cur tmp", line[:3])
}

// maildir-cat DIR POS: prints the message written for mbox position POS (the Q<pos> part of
// its name).
func cmdMaildirCat(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: maildir-cat DIR POS")
	}
	dir := ts.MkAbs(args[0])
	want := regexp.MustCompile(`^[0-9]+\.M[0-9]+Q` + regexp.QuoteMeta(args[1]) + `X`)
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		ts.Check(err)
		for _, e := range ents {
			if want.MatchString(e.Name()) {
				b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
				ts.Check(err)
				ts.Stdout().Write(b)
				return
			}
		}
	}
	ts.Fatalf("no message at position %s in %s", args[1], dir)
}

// uidlist DIR: prints DIR/dovecot-uidlist with host parts replaced, and the UIDVALIDITY and
// mailbox GUID replaced when they were freshly made (they depend on the clock).
func cmdUidlist(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: uidlist DIR [fresh]")
	}
	b, err := os.ReadFile(filepath.Join(ts.MkAbs(args[0]), "dovecot-uidlist"))
	ts.Check(err)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range lines {
		if i == 0 {
			f := strings.Fields(l)
			var keep []string
			for _, x := range f {
				switch {
				case strings.HasPrefix(x, "G"):
					continue
				case strings.HasPrefix(x, "V") && len(args) == 2:
					x = "V(fresh)"
				}
				keep = append(keep, x)
			}
			l = strings.Join(keep, " ")
		} else if k := strings.Index(l, ":"); k >= 0 {
			l = l[:k+1] + normName(l[k+1:])
		}
		fmt.Fprintln(ts.Stdout(), l)
	}
}

// chop-newline FILE: removes FILE's final newline (txtar cannot hold a file without one).
func cmdChopNewline(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: chop-newline FILE")
	}
	p := ts.MkAbs(args[0])
	b, err := os.ReadFile(p)
	ts.Check(err)
	ts.Check(os.WriteFile(p, bytes.TrimSuffix(b, []byte("\n")), 0o644))
}

// crlf FILE: turns every LF of FILE into CRLF.
func cmdCRLF(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: crlf FILE")
	}
	p := ts.MkAbs(args[0])
	b, err := os.ReadFile(p)
	ts.Check(err)
	ts.Check(os.WriteFile(p, bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")), 0o644))
}

// settime FILE RFC3339: sets FILE's mtime.
func cmdSettime(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: settime FILE 2006-01-02T15:04:05Z")
	}
	t, err := time.Parse(time.RFC3339, args[1])
	ts.Check(err)
	ts.Check(os.Chtimes(ts.MkAbs(args[0]), t, t))
}
