package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/check"
	"github.com/maildirmig/maildirmig/migrate"
	"github.com/maildirmig/maildirmig/users"
)

func init() {
	commandFactories = append(commandFactories, checkCommand, skelCommand)
}

// checkOptions are the settings of one check run.
type checkOptions struct {
	root, passwd, spoolDir, stateDir, maildir string
	auditLog                                  string
	users                                     []string
	paths                                     []string
	format                                    string
	fix, dryRun                               bool
	maxListed, jobs                           int
}

// maildirNameFlag names the Maildir beneath each home, for check and skel.
var maildirNameFlag = &cli.StringFlag{Name: "maildir", Value: "Maildir", Usage: "the Maildir beneath each home (and in the skel directory) is `NAME`"}

func checkCommand(u *ui) *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "integrity check of every user's Maildir, for cron and monitoring",
		ArgsUsage: "[MAILDIR...]",
		Description: "Looks at every user's Maildir (or those of --user, or the MAILDIR paths given) without\n" +
			"changing anything and prints one line per problem: missing, symlinked or foreign-owned\n" +
			"Maildir, cur, new or tmp; directories not 0700 and messages not 0600; files that are not\n" +
			"messages; S= sizes that lie; flags in new/; tmp/ files older than 36 hours; a\n" +
			"dovecot-uidlist Dovecot cannot parse; a spool or ~/Mailbox that still receives mail after\n" +
			"the migration. With -q a healthy system prints nothing. Run as root, it looks at each\n" +
			"home with that user's identity. --fix repairs, as the user, modes, missing cur/new/tmp and\n" +
			"stale tmp/ files, says what it changed and records it in the audit log; it never deletes a\n" +
			"message.\n" +
			"Exit status (Nagios plugin convention): 0 healthy, 1 warnings, 2 critical, 3 could not check.",
		Flags: append(systemFlags(),
			maildirNameFlag,
			&cli.StringFlag{Name: "format", Value: "text", Usage: "output `text|json|prometheus` (prometheus: for node_exporter's textfile collector)"},
			&cli.BoolFlag{Name: "fix", Usage: "repair what is safe: modes, missing cur/new/tmp, tmp/ files older than 36 hours"},
			&cli.IntFlag{Name: "max-listed", Value: 20, Usage: "list at most `N` problems per user and kind (all are counted; -1 lists all)"},
		),
		Action: func(c *cli.Context) error {
			o := checkOptions{
				root: c.String("root"), passwd: c.String("passwd"), spoolDir: c.String("spool-dir"),
				stateDir: c.String("state-dir"), auditLog: c.String("audit-log"), maildir: c.String("maildir"), users: c.StringSlice("user"),
				paths: c.Args().Slice(), format: c.String("format"), fix: c.Bool("fix"), dryRun: c.Bool("dry-run"),
				maxListed: c.Int("max-listed"), jobs: c.Int("jobs"),
			}
			switch o.format {
			case "text", "json", "prometheus":
			default:
				return usagef("--format %q: want text, json or prometheus", o.format)
			}
			if o.maxListed == 0 {
				return usagef("--max-listed 0: want a positive number, or -1 for all")
			}
			return runCheck(c.Context, u, o)
		},
	}
}

// runCheck checks and prints the report; its error carries the Nagios exit code.
func runCheck(ctx context.Context, u *ui, o checkOptions) error {
	cfg := check.Config{
		Paths:     o.paths,
		Maildir:   o.maildir,
		Mailbox:   "Mailbox",
		Fix:       o.fix && !o.dryRun,
		MaxListed: o.maxListed,
		Jobs:      o.jobs,
	}
	if len(o.paths) == 0 || len(o.users) > 0 {
		list, err := mailUsers(o.root, o.passwd, o.users)
		if err != nil {
			return exitCode(int(check.Unknown), consoleError{err})
		}
		cfg.Users = list
		mc := migrate.Config{Root: o.root, SpoolDir: o.spoolDir}
		cfg.SpoolDir = mc.SpoolDirectory()
		cfg.StateDir = underRoot(o.root, o.stateDir)
	}
	var (
		mu     sync.Mutex
		logErr error
	)
	if cfg.Fix {
		// Repairs change users' files as root: each goes into the audit log with the migration's
		// events, so an administrator can tell afterwards who changed what.
		audit, err := migrate.OpenAuditUnder(o.root, o.auditLog)
		if err != nil {
			return exitCode(int(check.Unknown), err)
		}
		defer audit.Close()
		cfg.OnFix = func(p check.Problem) {
			err := audit.Log("check-fix", map[string]any{"user": nonEmptyString(p.User), "path": p.Path, "kind": string(p.Kind), "fixed": p.Fixed})
			mu.Lock()
			if logErr == nil {
				logErr = err
			}
			mu.Unlock()
		}
	}
	start := time.Now()
	r, err := check.Run(ctx, cfg)
	if err != nil {
		return err
	}
	switch o.format {
	case "json":
		err = check.WriteJSON(u.stdout, &r)
	case "prometheus":
		err = check.WritePrometheus(u.stdout, &r, start)
	default:
		err = check.WriteText(u.stdout, &r, u.quiet)
		for _, h := range r.Hints() {
			u.hintf("%s", h)
		}
	}
	if err != nil {
		return exitCode(int(check.Unknown), fmt.Errorf("writing the report: %w", err))
	}
	if logErr != nil {
		return exitCode(int(check.Unknown), logErr)
	}
	if s := r.Status(); s != check.OK {
		return exitCode(int(s), nil)
	}
	return nil
}

// mailUsers lists the users to check or give a Maildir, with homes resolved under root. Run
// without root, the files can only be the invoking user's, as migrate expects them to be.
func mailUsers(root, passwd string, names []string) ([]check.User, error) {
	list, err := users.List(users.Options{Root: root, Passwd: passwd, MinUID: -1, Names: names})
	if err != nil {
		return nil, err
	}
	out := make([]check.User, 0, len(list))
	for _, x := range list {
		cu := check.User{Name: x.Name, UID: x.UID, GID: x.GID, Groups: x.Groups, Home: underRoot(root, x.Home)}
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

func underRoot(root, p string) string {
	if root == "" {
		return p
	}
	return filepath.Join(root, p)
}

// skelOptions are the settings of one skel run.
type skelOptions struct {
	root, passwd, skelDir, maildir string
	users                          []string
	existing, dryRun               bool
}

func skelCommand(u *ui) *cli.Command {
	return &cli.Command{
		Name:  "skel",
		Usage: "create Maildir/{cur,new,tmp} (0700) in /etc/skel, and with --existing for users lacking one",
		Description: "Makes /etc/skel/Maildir with cur/, new/ and tmp/, mode 0700, so that useradd -m gives\n" +
			"every new user a Maildir. Safe to run again: what exists is kept and set to 0700. A skel\n" +
			"Maildir that is a symlink or not a directory is refused. With --existing, every user whose\n" +
			"home has no Maildir gets an empty one, owned by the user, so that Dovecot with\n" +
			"mail_location = maildir:~/Maildir works for users who never received mail.",
		Flags: []cli.Flag{
			rootFlag, passwdFlag, userFlag, dryRunFlag, quietFlag, maildirNameFlag,
			&cli.StringFlag{Name: "skel-dir", Value: "/etc/skel", Usage: "the skeleton `DIR` useradd copies into new homes (under --root)"},
			&cli.BoolFlag{Name: "existing", Usage: "also give every existing user without a Maildir an empty one"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("skel takes no arguments, got %q", c.Args().First())
			}
			o := skelOptions{
				root: c.String("root"), passwd: c.String("passwd"), skelDir: c.String("skel-dir"),
				maildir: c.String("maildir"), users: c.StringSlice("user"),
				existing: c.Bool("existing"), dryRun: c.Bool("dry-run"),
			}
			if len(o.users) > 0 && !o.existing {
				return usagef("--user selects users for --existing")
			}
			return runSkel(u, o)
		},
	}
}

func runSkel(u *ui, o skelOptions) error {
	skel := underRoot(o.root, o.skelDir)
	if o.dryRun {
		if _, err := os.Lstat(filepath.Join(skel, o.maildir)); errors.Is(err, os.ErrNotExist) {
			u.printf("would create %s\n", filepath.Join(skel, o.maildir))
		}
	} else {
		changes, err := check.MakeSkel(skel, o.maildir)
		for _, ch := range changes {
			if !u.quiet {
				u.printf("%s\n", ch)
			}
		}
		if err != nil {
			return exitCode(exitFatal, consoleError{err})
		}
	}
	if !o.existing {
		return nil
	}
	list, err := mailUsers(o.root, o.passwd, o.users)
	if err != nil {
		return exitCode(exitFatal, consoleError{err})
	}
	failed := 0
	for _, usr := range list {
		path := filepath.Join(usr.Home, o.maildir)
		if _, err := os.Stat(usr.Home); errors.Is(err, os.ErrNotExist) {
			u.warningf("user %s: home %s does not exist, skipped", usr.Name, usr.Home)
			continue
		}
		if o.dryRun {
			if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
				u.printf("user %s: would create %s\n", usr.Name, path)
			}
			continue
		}
		created, err := check.EnsureMaildir(usr, o.maildir)
		if err != nil {
			failed++
			u.errorf("%s", consoleError{err})
			continue
		}
		if created && !u.quiet {
			u.printf("user %s: created %s\n", usr.Name, path)
		}
	}
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
	for _, p := range []string{"check: ", "users: ", "preflight: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

func (e consoleError) Unwrap() error { return e.err }
