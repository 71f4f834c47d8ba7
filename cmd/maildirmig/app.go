package main

// Output policy, for every command:
//
//   - stdout carries results (summaries, plans, check reports); stderr carries diagnostics.
//   - Diagnostics start "maildirmig: error: ", "maildirmig: warning: " or "maildirmig: hint: ",
//     are lower case and have no final period. An error about one user names the user and the
//     file: "maildirmig: error: user alice: spool /var/mail/alice is a symlink".
//   - A progress line is drawn only when stderr is a terminal (or --progress always), below the
//     lines printed, which all go through it (ui.emit) so that none is lost or overdrawn; in cron
//     or a pipe there is at most one line per user and the summary, and -q silences those too.
//   - Errors travel up as values to run, which prints them once and picks the exit code; nothing
//     below run calls os.Exit, so deferred cleanups (locks, the audit log) always run.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/maildirmig/maildirmig/internal/escape"
	"github.com/maildirmig/maildirmig/migrate"
	"github.com/maildirmig/maildirmig/users"
)

// ui is where a command writes. Tests and testscript drive it with buffers.
//
// stdout and stderr carry names that users chose (folders, message files, spool contents
// quoted in errors) to root's terminal, so they escape control characters (package escape):
// a folder named "\x1b]0;..." must not retitle or rewrite the administrator's screen. A field
// a user chose is escaped whole where it is formatted (escape.Line, which escapes newlines
// too); the streams are the net beneath. term is the raw stderr, for the progress bar and the
// terminal test.
type ui struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	term   io.Writer
	quiet  bool
	args   []string // the command line, as run got it
	meter  *meter   // while a progress line is shown, every line goes through it
}

func newUI(stdin io.Reader, stdout, stderr io.Writer) *ui {
	return &ui{stdin: stdin, stdout: escape.Writer(stdout), stderr: escape.Writer(stderr), term: stderr}
}

func (u *ui) errorf(format string, args ...any) {
	u.emit(u.stderr, "maildirmig: error: %s\n", oneLine(format, args))
}

// warningf prints a warning unless -q was given: cron mails whatever lands on stderr.
func (u *ui) warningf(format string, args ...any) {
	if u.quiet {
		return
	}
	u.emit(u.stderr, "maildirmig: warning: %s\n", oneLine(format, args))
}

func (u *ui) hintf(format string, args ...any) {
	u.emit(u.stderr, "maildirmig: hint: %s\n", oneLine(format, args))
}

// oneLine formats a diagnostic as one line: a newline or other control inside it (from a file
// name a user chose, say) is escaped, so that no user can add a line of their own to root's
// console.
func oneLine(format string, args []any) string {
	return escape.Line(fmt.Sprintf(format, args...))
}

// printf writes a result line on stdout.
func (u *ui) printf(format string, args ...any) {
	u.emit(u.stdout, format, args...)
}

// emit writes to w, above the progress line when one is shown.
func (u *ui) emit(w io.Writer, format string, args ...any) {
	if m := u.meter; m != nil {
		m.Print(w, fmt.Sprintf(format, args...))
		return
	}
	fmt.Fprintf(w, format, args...)
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

// flags are the flag objects of one App. urfave/cli v2 flags keep state while an App runs (a
// parsed value, whether it was set), so every App gets its own: tests run Apps in parallel.
type flags struct {
	// Every command that touches system files takes these.
	root, passwd, spoolDir, auditLog, stateDir *cli.StringFlag
	user                                       *cli.StringSliceFlag
	dryRun, quiet                              *cli.BoolFlag
	jobs                                       *cli.IntFlag
	progress                                   *cli.StringFlag

	// The commands that write messages.
	maildirName, unescape, fsync *cli.StringFlag
	keepHeaders                  *cli.BoolFlag

	// The batch commands.
	after, folders                          *cli.StringFlag
	force, auditMessages, noRoot, noFolders *cli.BoolFlag
	stallTimeout, lockTimeout               *cli.DurationFlag
	minUID                                  *cli.IntFlag

	// check and preflight.
	checkFormat, preflightFormat, postfixConfig, dovecotConfig *cli.StringFlag

	// record and compare.
	hash, replace, all *cli.BoolFlag

	// enums lists the values of each enumerated flag; checkArgs refuses any other.
	enums map[*cli.StringFlag][]string
}

// Values of the enumerated flags that are needed outside an App: for usage errors read before
// parsing (see usageHooks), and where a value is parsed.
var (
	checkFormats     = []string{"text", "json", "prometheus"}
	preflightFormats = []string{"text", "json"}
	fsyncModes       = []string{"syncfs", "batch", "always", "none"}
)

// newFlags makes the flag objects of one App.
func newFlags() *flags {
	f := &flags{enums: map[*cli.StringFlag][]string{}}
	f.root = &cli.StringFlag{Name: "root", Usage: "resolve /etc/passwd, the spool, homes, /etc/skel, the audit log and the state directory under `DIR`"}
	f.passwd = &cli.StringFlag{Name: "passwd", Usage: "read users from passwd `FILE` instead of the system database"}
	f.spoolDir = &cli.StringFlag{Name: "spool-dir", Usage: "mail spool `DIR` (default /var/spool/mail, or /var/mail where that is the real one)"}
	f.auditLog = &cli.StringFlag{Name: "audit-log", Value: "/var/log/maildirmig/audit.jsonl", Usage: "append the JSON Lines audit log to `FILE`"}
	f.stateDir = &cli.StringFlag{Name: "state-dir", Value: "/var/lib/maildirmig", Usage: "keep per-user migration state in `DIR`"}
	f.user = &cli.StringSliceFlag{Name: "user", Usage: "only this user `NAME` (repeatable; the same as naming users as arguments)"}
	f.dryRun = &cli.BoolFlag{Name: "dry-run", Usage: "print the plan, change nothing"}
	f.jobs = &cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: defaultJobs(), DefaultText: "the number of CPUs, 2 to 8", Usage: "work on `N` users at a time"}
	f.progress = f.enum(&cli.StringFlag{Name: "progress", Value: "auto", Usage: "progress bar: `auto|always|never` (auto: only when stderr is a terminal)"}, "auto", "always", "never")
	f.quiet = &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"}

	f.maildirName = &cli.StringFlag{Name: "maildir", Value: "Maildir", Usage: "the Maildir beneath each home (and in the skel directory) is `NAME`"}
	f.keepHeaders = &cli.BoolFlag{Name: "keep-headers", Usage: "keep the mbox-internal headers (Status, X-Status, X-Keywords, X-UID, X-IMAP, X-IMAPbase, Content-Length): messages byte for byte"}
	f.unescape = f.enum(&cli.StringFlag{Name: "unescape", Value: "none", Usage: "undo >From quoting: `none|mboxrd|mboxo` (none shows messages as Dovecot showed them)"}, "none", "mboxrd", "mboxo")
	f.fsync = f.enum(&cli.StringFlag{Name: "fsync", Value: "syncfs", Usage: "durability: `syncfs|batch|always|none`; syncfs and batch show nothing in new/ or cur/ before it is on disk: syncfs syncs the Maildir's whole file system (syncfs) once a batch, so it also waits for other programs' unwritten data there; batch syncs only the Maildir's files, for a server whose disk is busy with other writes"}, fsyncModes...)

	f.after = f.enum(&cli.StringFlag{Name: "after", Value: "keep", Usage: "then, under the lock, `keep|rename|truncate` each source whose messages are all verified in the Maildir"}, migrate.AfterKeep, migrate.AfterRename, migrate.AfterTruncate)
	f.force = &cli.BoolFlag{Name: "force", Usage: "go on with a source migrated before into another Maildir or with other conversion options (--keep-headers, --unescape): another Maildir starts a migration of its own; other options convert every message again, replacing the files whose bytes they change"}
	f.stallTimeout = &cli.DurationFlag{Name: "stall-timeout", Value: migrate.DefaultStallTimeout, Usage: "kill a user's worker that reads and stores no message for `DURATION` (stopped, blocked, looping, on a hung home) and fail that user; waiting for a lock is allowed on top"}
	f.lockTimeout = &cli.DurationFlag{Name: "lock-timeout", Value: 30 * time.Second, Usage: "give up on a user whose spool stays locked for `DURATION` (exit 75 when that is the only failure)"}
	f.auditMessages = &cli.BoolFlag{Name: "audit-messages", Usage: "log one audit line per message (offset, size, sha256, file name)"}
	f.minUID = &cli.IntFlag{Name: "min-uid", Value: -1, Usage: "select users from `UID` up (default: UID_MIN from login.defs); root is always included"}
	f.noRoot = &cli.BoolFlag{Name: "no-root", Usage: "leave root's mail alone"}
	f.folders = &cli.StringFlag{Name: "folders", Value: migrate.DefaultFolderRoot, Usage: "migrate the mbox folders beneath ~USER/`DIR` to Maildir++ folders (Dovecot's mbox:~/mail); they are kept whatever --after says"}
	f.noFolders = &cli.BoolFlag{Name: "no-folders", Usage: "migrate the INBOX only, not the folders"}

	f.checkFormat = f.enum(&cli.StringFlag{Name: "format", Value: "text", Usage: "output `text|json|prometheus` (prometheus: for node_exporter's textfile collector)"}, checkFormats...)
	f.preflightFormat = f.enum(&cli.StringFlag{Name: "format", Value: "text", Usage: "output `text|json`"}, preflightFormats...)
	f.postfixConfig = &cli.StringFlag{Name: "postfix-config", Usage: "read Postfix's configuration from `DIR` (postconf -c DIR)"}
	f.dovecotConfig = &cli.StringFlag{Name: "dovecot-config", Usage: "read Dovecot's configuration from `FILE` (doveconf -c FILE)"}

	f.hash = &cli.BoolFlag{Name: "hash", Usage: "record a SHA-256 of every message too (reads every byte of every mailbox)"}
	f.replace = &cli.BoolFlag{Name: "force", Usage: "replace FILE if it exists (never done otherwise)"}
	f.all = &cli.BoolFlag{Name: "all", Usage: "list every message that differs, not the first few of each kind in a mailbox"}
	return f
}

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

// system returns the flags every command that touches system files takes, followed by
// extra, the command's own.
func (f *flags) system(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		f.root, f.passwd, f.spoolDir, f.auditLog, f.stateDir, f.user,
		f.dryRun, f.jobs, f.progress, f.quiet,
	}, extra...)
}

// userArgsUsage is the ArgsUsage of a command that takes user names as arguments.
const userArgsUsage = "[USER...]"

// selectedUsers returns the users named with --user and as arguments: both select, and
// together they add up. None means every user.
func selectedUsers(c *cli.Context) []string {
	return append(c.StringSlice("user"), c.Args().Slice()...)
}

// newApp builds the command-line interface. Commands reach the console only through u.
func newApp(u *ui) *cli.App {
	app := &cli.App{
		Name:  "maildirmig",
		Usage: "migrate mbox spools to Maildir and keep Maildirs healthy",
		Description: "Moves every user's mail from mbox (the spool, or ~USER/Mailbox) into ~USER/Maildir as\n" +
			"that user, proves it, gives new users a Maildir and checks Maildirs from cron. Each command\n" +
			"has its own --help. Exit status of every command but check, preflight and compare:\n\n" +
			exitStatusText(exitCodes) + "\n" +
			"check and preflight follow the Nagios plugin convention:\n" + checkExitStatusLine() + ".\n" +
			"compare, as diff does:\n" + compareExitStatusLine() + ".",
		Version:              version(),
		Writer:               u.stdout,
		ErrWriter:            u.stderr,
		Reader:               u.stdin,
		EnableBashCompletion: false,
		HideHelpCommand:      true,
		Suggest:              true,
		// Errors are printed once, by run; the library must not exit or print them itself.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands:       commands(u, newFlags()),
	}
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return &usageError{msg: err.Error()} }
	app.Action = func(c *cli.Context) error { return topLevel(c) }
	return app
}

// commands are the commands of the App, in the order of --help: the night of the switch
// first (record and compare around the migration), then the single-file converter, then the
// days after; the hidden ones last.
func commands(u *ui, f *flags) []*cli.Command {
	cmds := []*cli.Command{
		preflightCommand(u, f),
		usersCommand(u, f),
		recordCommand(u, f),
		mboxCommand(u, f, "mbox"),
		mboxCommand(u, f, "Mailbox"),
		convertCommand(u, f),
		verifyCommand(u, f),
		compareCommand(u, f),
		rollbackCommand(u, f),
		skelCommand(u, f),
		checkCommand(u, f),
		completionCommand(u),
		manCommand(u),
	}
	for _, cmd := range cmds {
		strict(u, f, cmd)
	}
	return cmds
}

// strict makes cmd mean what it says: a usage error (exit 2, 3 for check; with a hint towards
// cmd's --help) for a bad flag, a value out of its list or range, a flag after the arguments,
// an argument given to a command that takes none, a user name not in passwd; no "help"
// subcommand that would shadow a user called help. The checks run before the command does
// anything.
func strict(u *ui, f *flags, cmd *cli.Command) {
	name := cmd.Name
	cmd.HideHelpCommand = true
	// usage names the command in a usage error and lets the command's hook act on it.
	usage := func(err error) error {
		err = inCommand(name, err)
		var ue *usageError
		if h := usageHooks[name]; h != nil && errors.As(err, &ue) {
			h(u, ue)
		}
		return err
	}
	cmd.OnUsageError = func(c *cli.Context, err error, _ bool) error {
		return usage(&usageError{msg: err.Error()})
	}
	before, action := cmd.Before, cmd.Action
	cmd.Before = func(c *cli.Context) error {
		u.quiet = c.Bool("quiet")
		if err := f.checkArgs(c); err != nil {
			return usage(err)
		}
		if before != nil {
			return usage(before(c))
		}
		return nil
	}
	if action != nil {
		cmd.Action = func(c *cli.Context) error {
			err := action(c)
			// A user name that is not in passwd is a typing mistake: nothing was done. check
			// keeps its "could not check" (3), which monitoring reads.
			if errors.Is(err, users.ErrNoSuchUser) && name != "check" {
				err = &usageError{msg: consoleError{err}.Error(), hint: "user names are login names from " + passwdName(c)}
			}
			return usage(err)
		}
	}
}

// usageHooks lets a command act on its usage errors before they are reported: check and
// preflight write their report for monitoring.
var usageHooks = map[string]func(u *ui, ue *usageError){
	"check":     checkUsageError,
	"preflight": preflightUsageError,
}

// passwdName names the passwd file users are read from, for a hint.
func passwdName(c *cli.Context) string {
	if p := c.String("passwd"); p != "" {
		return p
	}
	return underRoot(c.String("root"), "/etc/passwd")
}

// checkArgs refuses what the flag parser lets through: enumerated values outside their list,
// numbers out of their range, a flag after the first argument (the parser stops at it and
// would take "--root" for a user name), and arguments to a command that declares none.
func (f *flags) checkArgs(c *cli.Context) error {
	for _, fl := range c.Command.Flags {
		var bad string
		switch fl {
		case f.jobs:
			if n := c.Int(f.jobs.Name); n < 1 {
				bad = fmt.Sprintf("--jobs %d: want 1 or more", n)
			}
		case f.minUID:
			if n := c.Int(f.minUID.Name); n < 0 && c.IsSet(f.minUID.Name) {
				bad = fmt.Sprintf("--min-uid %d: want a uid, 0 or more", n)
			}
		case f.lockTimeout, f.stallTimeout:
			name := fl.Names()[0]
			if d := c.Duration(name); d <= 0 {
				bad = fmt.Sprintf("--%s %s: want a duration above zero, such as 30s", name, d)
			}
		default:
			sf, ok := fl.(*cli.StringFlag)
			if choices := f.enums[sf]; ok && choices != nil {
				if v := c.String(sf.Name); !slices.Contains(choices, v) {
					bad = fmt.Sprintf("--%s %q: want %s", sf.Name, v, orList(choices))
				}
			}
		}
		if bad != "" {
			return usagef("%s", bad)
		}
	}
	for _, a := range c.Args().Slice() {
		if len(a) > 1 && a[0] == '-' {
			return &usageError{msg: fmt.Sprintf("flag %s after the arguments", a), hint: "give the flags first: maildirmig " + c.Command.Name + " [flags] " + c.Command.ArgsUsage}
		}
	}
	if c.Command.ArgsUsage == "" && c.NArg() > 0 {
		return usagef("%s takes no arguments, got %q", c.Command.Name, c.Args().First())
	}
	return nil
}

// enum registers the values sf accepts (its default among them) and returns sf.
func (f *flags) enum(sf *cli.StringFlag, choices ...string) *cli.StringFlag {
	f.enums[sf] = choices
	return sf
}

// orList writes choices as "a, b or c".
func orList(choices []string) string {
	if len(choices) == 1 {
		return choices[0]
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}

// topLevel runs when no command was named: "help" and "help CMD" print help; anything else
// is a usage error, an unknown command most often.
func topLevel(c *cli.Context) error {
	args := c.Args().Slice()
	switch {
	case len(args) == 0:
		return usagef("no command given")
	case args[0] == "help" && len(args) == 1:
		return cli.ShowAppHelp(c)
	case args[0] == "help" && len(args) == 2:
		if cmd := c.App.Command(args[1]); cmd != nil {
			return cli.ShowCommandHelp(c, cmd.Name)
		}
		return unknownCommand(c, args[1])
	case args[0] == "help":
		return usagef("help takes one command name, got %d", len(args)-1)
	}
	return unknownCommand(c, args[0])
}

func unknownCommand(c *cli.Context, name string) error {
	e := &usageError{msg: fmt.Sprintf("unknown command %q", name)}
	for _, cmd := range c.App.Commands {
		if !cmd.Hidden && strings.EqualFold(cmd.Name, name) {
			e.hint = fmt.Sprintf("did you mean 'maildirmig %s'?", cmd.Name)
		}
	}
	return e
}
