package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/check"
	"github.com/maildirmig/maildirmig/host"
	"github.com/maildirmig/maildirmig/internal/audit"
	"github.com/maildirmig/maildirmig/internal/selinux"
	"github.com/maildirmig/maildirmig/migrate"
	"github.com/maildirmig/maildirmig/users"
)

// checkUsageError makes a usage error of check what monitoring can read: exit 3 ("could not
// check", as the Nagios plugin guidelines want for bad arguments) and a report saying so in
// the format asked for, unless --format itself is the mistake.
func checkUsageError(u *console, ue *usageError) {
	ue.code = int(check.Unknown)
	// A flag the parser refused leaves no parsed flags behind: read --format from the words.
	format := flagValue(u.args, "format", checkFormats[0])
	if !slices.Contains(checkFormats, format) {
		return
	}
	r := check.Failed(errors.New(ue.msg))
	_ = writeCheckReport(u, format, flagValue(u.args, "output", ""), &r, time.Now())
}

// checkOptions are the settings of one check run.
type checkOptions struct {
	host            host.Host
	maildir         string
	users           []string
	paths           []string
	format, output  string
	fix, dryRun     bool
	maxListed, jobs int
	stall           time.Duration
}

func checkCommand(u *console, f *flags) *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "integrity check of every user's Maildir, for cron and monitoring",
		ArgsUsage: "[USER|MAILDIR...]",
		Description: "Looks at every user's Maildir (or those of the USERs named, and the MAILDIR paths given:\n" +
			"an argument with a / in it is a path, so ./Maildir for one in the current directory) without\n" +
			"changing anything and prints one line per problem: missing, symlinked or foreign-owned\n" +
			"Maildir, cur, new or tmp; directories not 0700 and messages not 0600; files that are not\n" +
			"messages; S= sizes that lie; flags in new/; tmp/ files unchanged for 36 hours (by ctime,\n" +
			"as Dovecot ages them: a message being saved carries its old date as mtime); a\n" +
			"dovecot-uidlist Dovecot cannot parse; a spool or ~/Mailbox that still receives mail after\n" +
			"the migration. With -q a healthy system prints nothing. Run as root, it looks at each\n" +
			"home in a worker running as that user, as a migration does; a worker that looks at nothing\n" +
			"for --stall-timeout (a hung home) is killed and that user reported as not checked. --fix\n" +
			"repairs, as the user, modes, missing cur/new/tmp and stale tmp/ files, says what it changed\n" +
			"and records it in the audit log; it never deletes a message.\n" +
			"Exit status (Nagios plugin convention): " + checkExitStatusLine() + ". Whatever the status,\n" +
			"--format json and prometheus write a whole report: status 3 with the error when the check\n" +
			"could not run or was called wrongly (unless --format itself is wrong).",
		Flags: f.system(
			f.maildirName,
			f.checkFormat,
			f.stallTimeout,
			&cli.BoolFlag{Name: "fix", Usage: "repair what is safe: modes, missing cur/new/tmp, tmp/ files unchanged (ctime) for 36 hours"},
			&cli.IntFlag{Name: "max-listed", Value: 20, Usage: "list at most `N` problems per user and kind (all are counted; -1 lists all)"},
			&cli.StringFlag{Name: "output", Usage: "write the report to `FILE` instead of stdout, whole or not at all: a temporary file beside it, mode 0644, renamed over it (for node_exporter's textfile collector); FILE's directory must be root's and writable by root only, and no symlink is followed"},
		),
		Action: func(c *cli.Context) error {
			o := checkOptions{
				host: hostOf(c), maildir: c.String("maildir"), users: c.StringSlice("user"),
				format: c.String("format"), output: c.String("output"), fix: c.Bool("fix"), dryRun: c.Bool("dry-run"),
				maxListed: c.Int("max-listed"), jobs: c.Int("jobs"), stall: c.Duration("stall-timeout"),
			}
			for _, a := range c.Args().Slice() {
				if strings.Contains(a, "/") {
					o.paths = append(o.paths, a)
				} else {
					o.users = append(o.users, a)
				}
			}
			if o.maxListed == 0 {
				return usagef("--max-listed 0: want a positive number, or -1 for all")
			}
			return runCheck(c.Context, u, o)
		},
	}
}

// runCheck checks and prints the report; its error carries the Nagios exit code. Whatever
// happens, the report is written in the format asked for, a check that could not run
// included (status 3 and the error), so that monitoring never reads an empty file.
func runCheck(ctx context.Context, u *console, o checkOptions) error {
	start := time.Now()
	r, err := checkReport(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		r.Error = consoleError{err}.Error()
	}
	werr := writeCheckReport(u, o.format, o.output, &r, start)
	switch {
	case err != nil:
		e := &exitError{code: int(r.Status()), err: consoleError{err}}
		if errors.Is(err, users.ErrNoSuchUser) {
			for _, name := range o.users {
				if fi, serr := os.Stat(name); serr == nil && fi.IsDir() {
					e.hint = fmt.Sprintf("an argument without a / is a user name; write ./%s for the Maildir in this directory", name)
				}
			}
		}
		return e
	case werr != nil:
		return exitCode(int(check.Unknown), fmt.Errorf("writing the report: %w", werr))
	case r.Status() != check.OK:
		return exitCode(int(r.Status()), nil)
	}
	return nil
}

// flagValue returns the last value given to the flag --name (or -name) in args, or def.
func flagValue(args []string, name, def string) string {
	v := def
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		for _, p := range []string{"--" + name, "-" + name} {
			switch {
			case a == p && i+1 < len(args):
				v = args[i+1]
				i++
			case strings.HasPrefix(a, p+"="):
				v = strings.TrimPrefix(a, p+"=")
			}
		}
	}
	return v
}

// writeCheckReport writes r in format, of a check started at start, on stdout or, when output
// is set, to that file, whole or not at all.
func writeCheckReport(u *console, format, output string, r *check.Report, start time.Time) error {
	write := func(w io.Writer) error {
		switch format {
		case formatJSON:
			return check.WriteJSON(w, r)
		case formatPrometheus:
			return check.WritePrometheus(w, r, start)
		}
		return check.WriteText(w, r, u.Quiet)
	}
	var err error
	if output != "" {
		err = check.WriteReportFile(output, write)
	} else {
		err = write(u.Out())
	}
	if format == formatText {
		for _, h := range r.Hints() {
			u.Hintf("%s", h)
		}
	}
	return err
}

// checkReport runs the check of o. An error means the check could not run, or not to its
// end: the report then holds what was found, if anything.
func checkReport(ctx context.Context, o checkOptions) (check.Report, error) {
	cfg := check.Config{
		Paths:     o.paths,
		Maildir:   o.maildir,
		Mailbox:   "Mailbox",
		Fix:       o.fix && !o.dryRun,
		MaxListed: o.maxListed,
		Jobs:      o.jobs,
		AsUser:    migrate.AsUser{StallTimeout: o.stall},
	}
	if len(o.paths) == 0 || len(o.users) > 0 {
		list, err := mailUsers(o.host, o.users)
		if err != nil {
			return check.Failed(err), err
		}
		cfg.Users = list
		cfg.SpoolDir = o.host.Spool()
		cfg.Migrated = func(user, src string, mailbox bool) (*check.Migration, error) {
			source := migrate.SourceSpool
			if mailbox {
				source = migrate.SourceMailbox
			}
			st, err := migrate.LoadState(o.host, user, source, src)
			if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
				// Run by a user, check cannot read root's state: the Maildir's time stands in.
				return nil, nil
			}
			if st == nil || err != nil {
				return nil, err
			}
			return &check.Migration{Dev: st.Dev, Inode: st.Inode, Offset: st.Offset}, nil
		}
	}
	var (
		mu     sync.Mutex
		logErr error
	)
	if cfg.Fix {
		// Repairs change users' files as root: each goes into the audit log with the migration's
		// events, so an administrator can tell afterwards who changed what.
		alog, err := audit.OpenUnder(o.host.Root, o.host.AuditPath())
		if err != nil {
			return check.Failed(err), err
		}
		defer alog.Close()
		cfg.OnFix = func(p check.Problem) {
			err := alog.Event(audit.EventCheckFix, map[string]any{"user": nonEmptyString(p.User), "path": p.Path, "kind": string(p.Kind), "fixed": p.Fixed})
			mu.Lock()
			if logErr == nil {
				logErr = err
			}
			mu.Unlock()
		}
	}
	r, err := check.Run(ctx, cfg)
	if err != nil {
		return check.Failed(err), err
	}
	return r, logErr
}

// mailUsers lists the users to check or give a Maildir, with homes resolved under root. Run
// without root, the files can only be the invoking user's, as migrate expects them to be.
func mailUsers(h host.Host, names []string) ([]check.User, error) {
	list, err := users.List(users.Options{Host: h, MinUID: -1, Names: names})
	if err != nil {
		return nil, err
	}
	out := make([]check.User, 0, len(list))
	for _, x := range list {
		cu := check.User{Name: x.Name, UID: x.UID, GID: x.GID, Groups: x.Groups, Home: h.Under(x.Home)}
		if os.Geteuid() != 0 {
			cu.UID, cu.GID = os.Geteuid(), os.Getegid()
		}
		out = append(out, cu)
	}
	return out, nil
}

// nonEmptyString is nil for "", which the audit log leaves out.
func nonEmptyString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// skelOptions are the settings of one skel run.
type skelOptions struct {
	host             host.Host
	skelDir, maildir string
	users            []string
	existing, dryRun bool
	stall            time.Duration
}

func skelCommand(u *console, f *flags) *cli.Command {
	return &cli.Command{
		Name:      "skel",
		Usage:     "create Maildir/{cur,new,tmp} (0700) in /etc/skel, and with --existing for users lacking one",
		ArgsUsage: userArgsUsage,
		Description: "Makes /etc/skel/Maildir with cur/, new/ and tmp/, mode 0700, so that useradd -m gives\n" +
			"every new user a Maildir. Safe to run again: what exists is kept and set to 0700. A skel\n" +
			"Maildir that is a symlink or not a directory is refused. With --existing, every user whose\n" +
			"home has no Maildir gets an empty one, made by a worker running as the user (killed after\n" +
			"--stall-timeout on a hung home), so that Dovecot with mail_location = maildir:~/Maildir\n" +
			"works for users who never received mail; USERs named (with --existing only) limit that\n" +
			"to them.",
		Flags: []cli.Flag{
			f.root, f.passwd, f.user, f.dryRun, f.quiet, f.maildirName, f.stallTimeout,
			&cli.StringFlag{Name: "skel-dir", Value: "/etc/skel", Usage: "the skeleton `DIR` useradd copies into new homes (under --root)"},
			&cli.BoolFlag{Name: "existing", Usage: "also give every existing user without a Maildir an empty one"},
		},
		Action: func(c *cli.Context) error {
			o := skelOptions{
				host: hostOf(c), skelDir: c.String("skel-dir"),
				maildir: c.String("maildir"), users: selectedUsers(c),
				existing: c.Bool("existing"), dryRun: c.Bool("dry-run"), stall: c.Duration("stall-timeout"),
			}
			if len(o.users) > 0 && !o.existing {
				return usagef("user names select users for --existing, which was not given")
			}
			return runSkel(c.Context, u, o)
		},
	}
}

func runSkel(ctx context.Context, u *console, o skelOptions) error {
	skel := o.host.Under(o.skelDir)
	// The users first: a mistyped name must leave everything as it was.
	var list []check.User
	if o.existing {
		var err error
		if list, err = mailUsers(o.host, o.users); err != nil {
			return exitCode(exitFatal, consoleError{err})
		}
	}
	if o.dryRun {
		if _, err := os.Lstat(filepath.Join(skel, o.maildir)); errors.Is(err, os.ErrNotExist) {
			u.Printf("would create %s\n", filepath.Join(skel, o.maildir))
		}
	} else {
		changes, err := check.MakeSkel(skel, o.maildir)
		for _, ch := range changes {
			if !u.Quiet {
				u.Printf("%s\n", ch)
			}
		}
		if err != nil {
			return exitCode(exitFatal, consoleError{err})
		}
	}
	if !o.existing {
		return nil
	}
	var selinuxOn bool
	var restorecon string
	if !o.dryRun {
		var err error
		if selinuxOn, restorecon, err = relabelling(u); err != nil {
			return exitCode(exitFatal, err)
		}
	}
	var unlabelled []string
	failed := 0
	as := migrate.AsUser{StallTimeout: o.stall}
	for _, usr := range list {
		path := filepath.Join(usr.Home, o.maildir)
		got, err := as.EnsureMaildir(ctx, &check.Home{User: usr, Maildir: o.maildir, DryRun: o.dryRun})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed++
			u.Errorf("%s", consoleError{err})
			continue
		}
		created := got == check.Created
		switch {
		case got == check.NoHome:
			u.Warningf("user %s: home %s does not exist, skipped", usr.Name, usr.Home)
		case got == check.WouldCreate:
			u.Printf("user %s: would create %s\n", usr.Name, path)
		case created && !u.Quiet:
			u.Printf("user %s: created %s\n", usr.Name, path)
		}
		switch {
		case !created || !selinuxOn:
		case restorecon == "":
			unlabelled = append(unlabelled, path)
		default:
			if err := selinux.Relabel(ctx, restorecon, selinux.Credentials{UID: usr.UID, GID: usr.GID, Groups: usr.Groups}, path); err != nil {
				failed++
				u.Errorf("user %s: %s", usr.Name, consoleError{err})
			}
		}
	}
	unlabelledCommand(u, unlabelled)
	if failed > 0 {
		return exitCode(exitUsersFailed, fmt.Errorf("%d of %d users failed", failed, len(list)))
	}
	return nil
}

// consoleError prints an error without its package prefix: on the console the program name
// says where it comes from.
type consoleError struct{ err error }

func (e consoleError) Error() string {
	s := e.err.Error()
	for _, p := range []string{"preflight: ", "check: ", "users: ", "selinux: ", "dovecotview: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

func (e consoleError) Unwrap() error { return e.err }
