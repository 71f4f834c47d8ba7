package main

// Output policy: package internal/ui owns the console and says it in its package comment.
// Errors travel up as values to run, which prints them once and picks the exit code; nothing
// below run calls os.Exit, so deferred cleanups (locks, the audit log) always run.

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/dovecotview"
	"github.com/maildirmig/maildirmig/host"
	"github.com/maildirmig/maildirmig/internal/ui"
	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
	"github.com/maildirmig/maildirmig/migrate"
	"github.com/maildirmig/maildirmig/users"
)

// console is where a command reads and writes: every line goes through the ui.Console.
// Tests and testscript drive it with buffers.
type console struct {
	*ui.Console
	stdin io.Reader
	args  []string // the command line, as run got it
}

func newUI(stdin io.Reader, stdout, stderr io.Writer) *console {
	return &console{Console: ui.New("maildirmig", stdout, stderr), stdin: stdin}
}

// flags are the flag objects of one App. urfave/cli v2 flags keep state while an App runs (a
// parsed value, whether it was set), so every App gets its own: tests run Apps in parallel.
type flags struct {
	// Every command that touches system files takes these.
	root, passwd, spoolDir, auditLog, stateDir *cli.StringFlag
	user                                       *cli.StringSliceFlag
	dryRun, quiet                              *cli.BoolFlag
	jobs                                       *cli.IntFlag
	progress                                   *enumFlag

	// The commands that write messages.
	maildirName     *cli.StringFlag
	unescape, fsync *enumFlag
	keepHeaders     *cli.BoolFlag

	// The batch commands.
	after                                   *enumFlag
	folders                                 *cli.StringFlag
	force, auditMessages, noRoot, noFolders *cli.BoolFlag
	stallTimeout, lockTimeout               *cli.DurationFlag
	minUID                                  *cli.IntFlag

	// check and preflight.
	checkFormat, preflightFormat *enumFlag
	postfixConfig, dovecotConfig *cli.StringFlag

	// record and compare.
	hash, replace, all *cli.BoolFlag
	doveadmStall       *cli.DurationFlag
}

// Output formats of check and preflight.
const (
	formatText       = "text"
	formatJSON       = "json"
	formatPrometheus = "prometheus"
)

// The values of the enumerated flags, each list written once, by the package that gives the
// values their meaning: --help, the man page, the completions and the usage errors show them
// from here, and checkArgs refuses any other. The default is the first.
var (
	checkFormats     = []string{formatText, formatJSON, formatPrometheus}
	preflightFormats = []string{formatText, formatJSON}
	fsyncModes       = names(maildir.FsyncModes)
	unescapes        = names(mbox.Unescapes)
)

// names are the command-line names of values.
func names[T fmt.Stringer](values []T) []string {
	var s []string
	for _, v := range values {
		s = append(s, v.String())
	}
	return s
}

// enumFlag is a string flag that takes one of choices, its default the first.
type enumFlag struct {
	cli.StringFlag
	choices []string
}

// enum makes an enumerated flag. Its usage is before, the choices as the placeholder
// (auto|always|never), then after.
func enum(name, before string, choices []string, after string) *enumFlag {
	return &enumFlag{
		StringFlag: cli.StringFlag{Name: name, Value: choices[0], Usage: before + "`" + strings.Join(choices, "|") + "`" + after},
		choices:    choices,
	}
}

// newFlags makes the flag objects of one App.
func newFlags() *flags {
	f := &flags{}
	f.root = &cli.StringFlag{Name: "root", Usage: "resolve /etc/passwd, the spool, homes, /etc/skel, the audit log and the state directory under `DIR`"}
	f.passwd = &cli.StringFlag{Name: "passwd", Usage: "read users from passwd `FILE` instead of the system database"}
	f.spoolDir = &cli.StringFlag{Name: "spool-dir", Usage: "mail spool `DIR` (default " + host.DefaultSpoolDir + ", or /var/mail where that is the real one)"}
	f.auditLog = &cli.StringFlag{Name: "audit-log", Value: host.DefaultAuditLog, Usage: "append the JSON Lines audit log to `FILE`"}
	f.stateDir = &cli.StringFlag{Name: "state-dir", Value: host.DefaultStateDir, Usage: "keep per-user migration state in `DIR`"}
	f.user = &cli.StringSliceFlag{Name: "user", Usage: "only this user `NAME` (repeatable; the same as naming users as arguments)"}
	f.dryRun = &cli.BoolFlag{Name: "dry-run", Usage: "print the plan, change nothing"}
	f.jobs = &cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: host.DefaultJobs(), DefaultText: "the number of CPUs, 2 to 8", Usage: "work on `N` users at a time"}
	f.progress = enum("progress", "progress bar: ", ui.ProgressModes, " (auto: only when stderr is a terminal)")
	f.quiet = &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"}

	f.maildirName = &cli.StringFlag{Name: "maildir", Value: "Maildir", Usage: "the Maildir beneath each home (and in the skel directory) is `NAME`"}
	f.keepHeaders = &cli.BoolFlag{Name: "keep-headers", Usage: "keep the mbox-internal headers (Status, X-Status, X-Keywords, X-UID, X-IMAP, X-IMAPbase, Content-Length): messages byte for byte"}
	f.unescape = enum("unescape", "undo >From quoting: ", unescapes, " (none shows messages as Dovecot showed them)")
	f.fsync = enum("fsync", "durability: ", fsyncModes, "; syncfs and batch show nothing in new/ or cur/ before it is on disk: syncfs syncs the Maildir's whole file system (syncfs) once a batch, so it also waits for other programs' unwritten data there; batch syncs only the Maildir's files, for a server whose disk is busy with other writes")

	f.after = enum("after", "then, under the lock, ", migrate.Afters, " each source whose messages are all verified in the Maildir")
	f.force = &cli.BoolFlag{Name: "force", Usage: "go on with a source migrated before into another Maildir or with other conversion options (--keep-headers, --unescape): another Maildir starts a migration of its own; other options convert every message again, replacing the files whose bytes they change"}
	f.stallTimeout = &cli.DurationFlag{Name: "stall-timeout", Value: migrate.DefaultStallTimeout, Usage: "kill a user's worker that makes no progress (reads, stores or, for check and skel, looks at nothing) for `DURATION` (stopped, blocked, looping, on a hung home) and fail that user; waiting for a lock is allowed on top"}
	f.lockTimeout = &cli.DurationFlag{Name: "lock-timeout", Value: 30 * time.Second, Usage: "give up on a user whose spool stays locked for `DURATION` (exit 75 when that is the only failure)"}
	f.auditMessages = &cli.BoolFlag{Name: "audit-messages", Usage: "log one audit line per message (offset, size, sha256, file name)"}
	f.minUID = &cli.IntFlag{Name: "min-uid", Value: -1, Usage: "select users from `UID` up (default: UID_MIN from login.defs); root is always included"}
	f.noRoot = &cli.BoolFlag{Name: "no-root", Usage: "leave root's mail alone"}
	f.folders = &cli.StringFlag{Name: "folders", Value: migrate.DefaultFolderRoot, Usage: "migrate the mbox folders beneath ~USER/`DIR` to Maildir++ folders (Dovecot's mbox:~/mail); they are kept whatever --after says"}
	f.noFolders = &cli.BoolFlag{Name: "no-folders", Usage: "migrate the INBOX only, not the folders"}

	f.checkFormat = enum("format", "output ", checkFormats, " (prometheus: for node_exporter's textfile collector)")
	f.preflightFormat = enum("format", "output ", preflightFormats, "")
	f.postfixConfig = &cli.StringFlag{Name: "postfix-config", Usage: "read Postfix's configuration from `DIR` (postconf -c DIR)"}
	f.dovecotConfig = &cli.StringFlag{Name: "dovecot-config", Usage: "read Dovecot's configuration from `FILE` (doveconf -c FILE)"}

	f.hash = &cli.BoolFlag{Name: "hash", Usage: "record a SHA-256 of every message too (reads every byte of every mailbox)"}
	f.replace = &cli.BoolFlag{Name: "force", Usage: "replace FILE if it exists (never done otherwise)"}
	f.doveadmStall = &cli.DurationFlag{Name: "stall-timeout", Value: dovecotview.DefaultStallTimeout, Usage: "kill a doveadm command that prints nothing for `DURATION` (Dovecot blocked on a FIFO among a user's messages, or on a hung home) and fail that user"}
	f.all = &cli.BoolFlag{Name: "all", Usage: "list every message that differs, not the first few of each kind in a mailbox"}
	return f
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
func newApp(u *console) *cli.App {
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
		Writer:               u.Out(),
		ErrWriter:            u.Err(),
		Reader:               u.stdin,
		EnableBashCompletion: false,
		HideHelpCommand:      true,
		Suggest:              true,
		// Errors are printed once, by run; the library must not exit or print them itself.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands:       commands(u, newFlags()),
		// --help and --version are flags of this App's own (see helpFlag).
		HideHelp:    true,
		HideVersion: true,
		Flags:       []cli.Flag{helpFlag(), versionFlag()},
	}
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return &usageError{msg: err.Error()} }
	app.Action = func(c *cli.Context) error {
		if c.Bool("version") {
			cli.ShowVersion(c)
			return nil
		}
		return topLevel(c)
	}
	return app
}

// helpFlag and versionFlag make the --help of the App and of each command and the App's
// --version as urfave/cli's HelpFlag and VersionFlag are made, but one object per App and
// command: those two are package variables, which every App would share and write to as it
// parses (BoolFlag.Apply), and Apps run in parallel in the tests. The library finds a --help
// by its name whether or not it is its own; --version is the App's Action's.
func helpFlag() *cli.BoolFlag {
	return &cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "show help", DisableDefaultText: true}
}

func versionFlag() *cli.BoolFlag {
	return &cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version", DisableDefaultText: true}
}

// commands are the commands of the App, in the order of --help: the night of the switch
// first (record and compare around the migration), then the single-file converter, then the
// days after; the hidden ones last.
func commands(u *console, f *flags) []*cli.Command {
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
func strict(u *console, f *flags, cmd *cli.Command) {
	name := cmd.Name
	cmd.HideHelpCommand = true
	// The command's own --help (see helpFlag); hidden from the library, which would otherwise
	// add its shared one, and shown with the template it uses for a command's help.
	cmd.HideHelp = true
	cmd.Flags = append(cmd.Flags, helpFlag())
	cmd.CustomHelpTemplate = cli.SubcommandHelpTemplate
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
		u.Quiet = c.Bool("quiet")
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
var usageHooks = map[string]func(u *console, ue *usageError){
	"check":     checkUsageError,
	"preflight": preflightUsageError,
}

// passwdName names the passwd file users are read from, for a hint.
func passwdName(c *cli.Context) string {
	h := hostOf(c)
	if h.Passwd != "" {
		return h.Passwd
	}
	return h.Under("/etc/passwd")
}

// hostOf is the host the flags --root, --passwd, --spool-dir, --state-dir and --audit-log
// name, with its paths absolute.
func hostOf(c *cli.Context) host.Host {
	h := host.Host{Root: c.String("root"), Passwd: c.String("passwd"), SpoolDir: c.String("spool-dir"),
		StateDir: c.String("state-dir"), AuditLog: c.String("audit-log")}
	if abs, err := h.Abs(); err == nil {
		h = abs
	}
	return h
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
		case f.lockTimeout, f.stallTimeout, f.doveadmStall:
			name := fl.Names()[0]
			if d := c.Duration(name); d <= 0 {
				bad = fmt.Sprintf("--%s %s: want a duration above zero, such as 30s", name, d)
			}
		default:
			if ef, ok := fl.(*enumFlag); ok {
				if v := c.String(ef.Name); !slices.Contains(ef.choices, v) {
					bad = fmt.Sprintf("--%s %q: want %s", ef.Name, v, orList(ef.choices))
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
