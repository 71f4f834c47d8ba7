package main

// Output policy, for every command:
//
//   - stdout carries results (summaries, plans, check reports); stderr carries diagnostics.
//   - Diagnostics start "maildirmig: error: ", "maildirmig: warning: " or "maildirmig: hint: ",
//     are lower case and have no final period. An error about one user names the user and the
//     file: "maildirmig: error: user alice: spool /var/mail/alice is a symlink".
//   - A progress bar is drawn only when stderr is a terminal (or --progress always); in cron or a
//     pipe there is at most one line per user, and -q silences that too.
//   - Errors travel up as values to run, which prints them once and picks the exit code; nothing
//     below run calls os.Exit, so deferred cleanups (locks, the audit log) always run.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// Exit codes, as documented in the manual (doc.go).
const (
	exitOK          = 0
	exitFatal       = 1
	exitUsage       = 2
	exitUsersFailed = 3
	exitTempFail    = 75 // EX_TEMPFAIL: a lock could not be taken
	exitInterrupted = 130
)

// exitError carries an exit code up to run. A nil err means the command already reported
// everything it had to say and only the code remains.
type exitError struct {
	code int
	err  error
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

// usageError is a mistake on the command line: exit 2, with a hint towards --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// ui is where a command writes. Tests and testscript drive it with buffers.
//
// stdout and stderr carry names that users chose (folders, message files, spool contents
// quoted in errors) to root's terminal, so they escape control characters: a folder named
// "\x1b]0;..." must not retitle or rewrite the administrator's screen. term is the raw stderr,
// for the progress bar and the terminal test.
type ui struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	term   io.Writer
	quiet  bool
}

func newUI(stdin io.Reader, stdout, stderr io.Writer) *ui {
	return &ui{stdin: stdin, stdout: escaper{stdout}, stderr: escaper{stderr}, term: stderr}
}

// escaper writes what it is given with C0 and C1 control characters other than newline and
// tab replaced by \xNN (or \u00NN) escapes.
type escaper struct{ w io.Writer }

func (e escaper) Write(p []byte) (int, error) {
	clean := true
	for i, c := range p {
		if isControl(p, i) || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return e.w.Write(p)
	}
	b := make([]byte, 0, len(p)+16)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == 0xc2 && i+1 < len(p) && p[i+1] >= 0x80 && p[i+1] <= 0x9f:
			b = fmt.Appendf(b, "\\u%04x", p[i+1])
			i++
		case isControl(p, i) || c == 0x7f:
			b = fmt.Appendf(b, "\\x%02x", c)
		default:
			b = append(b, c)
		}
	}
	if _, err := e.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// isControl reports whether p[i] is a C0 control other than newline and tab, or starts a
// UTF-8 encoded C1 control.
func isControl(p []byte, i int) bool {
	c := p[i]
	if c < 0x20 {
		return c != '\n' && c != '\t'
	}
	return c == 0xc2 && i+1 < len(p) && p[i+1] >= 0x80 && p[i+1] <= 0x9f
}

func (u *ui) errorf(format string, args ...any) {
	fmt.Fprintf(u.stderr, "maildirmig: error: "+format+"\n", args...)
}

// warningf prints a warning unless -q was given: cron mails whatever lands on stderr.
func (u *ui) warningf(format string, args ...any) {
	if u.quiet {
		return
	}
	fmt.Fprintf(u.stderr, "maildirmig: warning: "+format+"\n", args...)
}

func (u *ui) hintf(format string, args ...any) {
	fmt.Fprintf(u.stderr, "maildirmig: hint: "+format+"\n", args...)
}

// printf writes a result line on stdout.
func (u *ui) printf(format string, args ...any) {
	fmt.Fprintf(u.stdout, format, args...)
}

// terminal reports whether w is a terminal.
func terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// showProgress decides whether to draw a progress bar, from --progress and the terminal.
func (u *ui) showProgress(mode string) bool {
	if u.quiet {
		return false
	}
	switch mode {
	case "always":
		return true
	case "never":
		return false
	default:
		return terminal(u.term)
	}
}

// Flags shared by every command that touches system files.
var (
	rootFlag     = &cli.StringFlag{Name: "root", Usage: "resolve /etc/passwd, the spool, homes, /etc/skel, the audit log and the state directory under `DIR`"}
	passwdFlag   = &cli.StringFlag{Name: "passwd", Usage: "read users from passwd `FILE` instead of the system database"}
	spoolDirFlag = &cli.StringFlag{Name: "spool-dir", Usage: "mail spool `DIR` (default /var/spool/mail, or /var/mail where that is the real one)"}
	auditLogFlag = &cli.StringFlag{Name: "audit-log", Value: "/var/log/maildirmig/audit.jsonl", Usage: "append the JSON Lines audit log to `FILE`"}
	stateDirFlag = &cli.StringFlag{Name: "state-dir", Value: "/var/lib/maildirmig", Usage: "keep per-user migration state in `DIR`"}
	userFlag     = &cli.StringSliceFlag{Name: "user", Usage: "only this user `NAME` (repeatable)"}
	dryRunFlag   = &cli.BoolFlag{Name: "dry-run", Usage: "print the plan, change nothing"}
	jobsFlag     = &cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: defaultJobs(), DefaultText: "the number of CPUs, 2 to 8", Usage: "work on `N` users at a time"}
	progressFlag = &cli.StringFlag{Name: "progress", Value: "auto", Usage: "progress bar: `auto|always|never` (auto: only when stderr is a terminal)"}
	quietFlag    = &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"}
)

func defaultJobs() int {
	n := runtime.GOMAXPROCS(0)
	if n < 2 {
		n = 2
	}
	if n > 8 {
		n = 8
	}
	return n
}

// systemFlags returns the flags every command that touches system files takes, followed by
// extra, the command's own.
func systemFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		rootFlag, passwdFlag, spoolDirFlag, auditLogFlag, stateDirFlag, userFlag,
		dryRunFlag, jobsFlag, progressFlag, quietFlag,
	}, extra...)
}

// newApp builds the command-line interface. Commands reach the console only through u.
func newApp(u *ui) *cli.App {
	app := &cli.App{
		Name:                 "maildirmig",
		Usage:                "migrate mbox spools to Maildir and keep Maildirs healthy",
		Version:              version(),
		Writer:               u.stdout,
		ErrWriter:            u.stderr,
		Reader:               u.stdin,
		EnableBashCompletion: false,
		HideHelpCommand:      true,
		Suggest:              true,
		// Errors are printed once, by run; the library must not exit or print them itself.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			convertCommand(u),
		},
	}
	app.Commands = append(app.Commands, extraCommands(u)...)
	sort.SliceStable(app.Commands, func(i, j int) bool {
		return commandRank(app.Commands[i].Name) < commandRank(app.Commands[j].Name)
	})
	onUsage := func(_ *cli.Context, err error, _ bool) error { return &usageError{msg: err.Error()} }
	app.OnUsageError = onUsage
	for _, c := range app.Commands {
		c.OnUsageError = onUsage
		before := c.Before
		c.Before = func(c *cli.Context) error {
			u.quiet = c.Bool("quiet")
			if before != nil {
				return before(c)
			}
			return nil
		}
	}
	return app
}

// commandOrder is the order of the commands in --help: the night of the switch first, then the
// single-file converter, then the days after.
var commandOrder = []string{"preflight", "users", "mbox", "Mailbox", "convert", "verify", "skel", "check"}

func commandRank(name string) int {
	for i, n := range commandOrder {
		if n == name {
			return i
		}
	}
	return len(commandOrder)
}

// extraCommands collects the commands registered by the other cmd_*.go files, so each file
// stays self-contained.
func extraCommands(u *ui) []*cli.Command {
	var cmds []*cli.Command
	for _, f := range commandFactories {
		cmds = append(cmds, f(u))
	}
	return cmds
}

// commandFactories is filled by init functions in cmd_*.go.
var commandFactories []func(*ui) *cli.Command

// run is main without the exit: it runs args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	u := newUI(stdin, stdout, stderr)
	app := newApp(u)
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		u.errorf("%s", strings.TrimSuffix(ue.msg, "."))
		u.hintf("see 'maildirmig --help'")
		return exitUsage
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			u.errorf("%s", ee.err)
		}
		return ee.code
	}
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		u.errorf("interrupted")
		return exitInterrupted
	}
	u.errorf("%s", err)
	return exitFatal
}
