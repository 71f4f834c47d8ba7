package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/maildirmig/maildirmig/check"
)

// Exit codes. exitCodes below is the one place that says what they mean: --help, the manual
// and the README are checked against it by TestExitCodesDocumented.
const (
	exitOK          = 0
	exitFatal       = 1
	exitUsage       = 2
	exitUsersFailed = 3
	exitTempFail    = 75 // EX_TEMPFAIL: a lock could not be taken
	exitInterrupted = 130
)

// exitMeaning is one documented exit code.
type exitMeaning struct {
	code    int
	meaning string
}

// exitCodes are the exit codes of every command but check and preflight, in the words of the documentation.
var exitCodes = []exitMeaning{
	{exitOK, "all done"},
	{exitFatal, "fatal error: nothing usable could be done (the message says why)"},
	{exitUsage, "usage error: a mistyped command, flag, value or user name; nothing was done"},
	{exitUsersFailed, "some users failed; the others were done (\"2 of 40 users failed\")"},
	{exitTempFail, "a spool lock could not be taken in time (EX_TEMPFAIL): run again later"},
	{exitInterrupted, "interrupted: locks released, no half-written message left behind"},
}

// checkExitCodes are check's and preflight's, the Nagios plugin convention (check.Severity): a
// usage error is "could not check" too, as the plugin guidelines want, so that monitoring reads it.
var checkExitCodes = []exitMeaning{
	{int(check.OK), "healthy (check), ready (preflight)"},
	{int(check.Warning), "warnings"},
	{int(check.Critical), "critical"},
	{int(check.Unknown), "could not check (a usage error too)"},
}

// exitDiffers is compare's 1, as diff(1)'s: the recordings differ in what matters.
const exitDiffers = 1

// compareExitCodes are compare's.
var compareExitCodes = []exitMeaning{
	{exitOK, "nothing that matters differs"},
	{exitDiffers, "something that matters differs"},
	{exitUsage, "usage error"},
	{exitUsersFailed, "some users or a whole recording could not be compared"},
}

// exitStatusText renders codes for --help and the manual, one code per line.
func exitStatusText(codes []exitMeaning) string {
	var b strings.Builder
	for _, c := range codes {
		fmt.Fprintf(&b, "%-4d %s\n", c.code, c.meaning)
	}
	return b.String()
}

// exitStatusLine renders some of exitCodes on one line, for a command's --help: "0 all done,
// 1 fatal error, ..." (each meaning up to its first colon or parenthesis).
func exitStatusLine(codes ...int) string {
	var parts []string
	for _, c := range codes {
		for _, e := range exitCodes {
			if e.code == c {
				parts = append(parts, fmt.Sprintf("%d %s", c, shortMeaning(e.meaning)))
			}
		}
	}
	return strings.Join(parts, ", ")
}

// checkExitStatusLine renders checkExitCodes on one line.
func checkExitStatusLine() string { return codesLine(checkExitCodes) }

// compareExitStatusLine renders compareExitCodes on one line.
func compareExitStatusLine() string { return codesLine(compareExitCodes) }

func codesLine(codes []exitMeaning) string {
	var parts []string
	for _, e := range codes {
		parts = append(parts, fmt.Sprintf("%d %s", e.code, e.meaning))
	}
	return strings.Join(parts, ", ")
}

// shortMeaning is the part of a meaning before its explanation.
func shortMeaning(m string) string {
	if i := strings.IndexAny(m, ":(;"); i > 0 {
		m = m[:i]
	}
	return strings.TrimSpace(m)
}

// exitError carries an exit code up to run. A nil err means the command already reported
// everything it had to say and only the code remains.
type exitError struct {
	code int
	err  error
	hint string // printed after err, when set
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitCode returns an error that makes run exit with code after printing err (when not nil).
func exitCode(code int, err error) error { return &exitError{code: code, err: err} }

// usageError is a mistake on the command line: exit 2, with a hint towards the --help of the
// command it was made in (cmd; "" for the program itself).
type usageError struct {
	msg  string
	cmd  string
	hint string // a more precise hint than --help, when the mistake is recognisable
	code int    // the exit status when not exitUsage (check's is 3)
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// inCommand names cmd as the command a usage error was made in, unless one is named already.
func inCommand(cmd string, err error) error {
	var ue *usageError
	if errors.As(err, &ue) && ue.cmd == "" {
		ue.cmd = cmd
	}
	return err
}

// report prints err, the outcome of a command, once, and returns the exit code: the one
// place where an error becomes console text and an exit status.
func report(ctx context.Context, u *console, err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		u.Errorf("%s", strings.TrimSuffix(ue.msg, "."))
		if ue.hint != "" {
			u.Hintf("%s", ue.hint)
		}
		help := "maildirmig --help"
		if ue.cmd != "" {
			help = "maildirmig " + ue.cmd + " --help"
		}
		u.Hintf("see '%s'", help)
		if ue.code != 0 {
			return ue.code
		}
		return exitUsage
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			u.Errorf("%s", ee.err)
		}
		if ee.hint != "" {
			u.Hintf("%s", ee.hint)
		}
		return ee.code
	}
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		u.Errorf("interrupted")
		return exitInterrupted
	}
	u.Errorf("%s", err)
	return exitFatal
}

// run is main without the exit: it runs args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	u := newUI(stdin, stdout, stderr)
	u.args = args
	return report(ctx, u, newApp(u).RunContext(ctx, args))
}
