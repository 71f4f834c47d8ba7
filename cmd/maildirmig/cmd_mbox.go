package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/maildirmig/maildirmig/internal/escape"
	"github.com/maildirmig/maildirmig/internal/selinux"
	"github.com/maildirmig/maildirmig/internal/ui"
	"github.com/maildirmig/maildirmig/migrate"
)

// batchConfig reads the flags the batch commands share.
func batchConfig(c *cli.Context, source migrate.Source) migrate.Config {
	return migrate.Config{
		Host:      hostOf(c),
		Source:    source,
		Users:     selectedUsers(c),
		MinUID:    c.Int("min-uid"),
		NoRoot:    c.Bool("no-root"),
		Maildir:   c.String("maildir"),
		Jobs:      c.Int("jobs"),
		Folders:   c.String("folders"),
		NoFolders: c.Bool("no-folders"),
	}
}

// checkFolders refuses a --folders that is not a path beneath the home.
func checkFolders(cfg migrate.Config) error {
	if err := migrate.CheckFolderRoot(cfg.Folders); err != nil {
		return usagef("--folders %q: want a clean path relative to the home, such as mail", cfg.Folders)
	}
	return nil
}

func mboxCommand(u *console, f *flags, name string) *cli.Command {
	source, what := migrate.SourceSpool, "every user's spool (/var/spool/mail/USER)"
	if name == "Mailbox" {
		source, what = migrate.SourceMailbox, "every user's ~USER/Mailbox"
	}
	return &cli.Command{
		Name:      name,
		Usage:     "migrate " + what + " to ~USER/Maildir",
		ArgsUsage: userArgsUsage,
		Description: "Migrates, as each user (never as root inside a home), " + what + " into\n" +
			"~USER/Maildir, --jobs users at a time; only the USERs named, when some are. Each source is\n" +
			"dotlocked and fcntl-locked as Postfix and Dovecot do, and refused when it is a symlink, a hard link or someone else's file.\n" +
			"Run it any number of times before the switch: each pass makes the Maildir mirror the source as it is\n" +
			"now (what arrived is written, what was expunged removed, flags and keywords follow by renaming the\n" +
			"file, UIDs follow the source's), and a pass with nothing changed writes nothing. Once Dovecot or a\n" +
			"delivery agent uses the Maildir, a pass only adds what newly arrived, and says so.\n" +
			"The mbox folders beneath ~USER/mail (--folders) become Maildir++ folders (~USER/Maildir/.NAME),\n" +
			"with their subscriptions, locked as Dovecot locks them; --after applies to the INBOX only, the\n" +
			"folders stay as they are. Every step is appended to the audit log. --dry-run prints the plan instead.\n" +
			"Exit status: " + exitStatusLine(exitOK, exitFatal, exitUsage, exitUsersFailed) + ",\n" +
			exitStatusLine(exitTempFail, exitInterrupted) + ".",
		Flags: f.system(f.maildirName, f.keepHeaders, f.unescape, f.fsync, f.after, f.force,
			f.lockTimeout, f.stallTimeout, f.auditMessages, f.minUID, f.noRoot, f.folders, f.noFolders),
		Action: func(c *cli.Context) error {
			cfg := batchConfig(c, source)
			if err := checkFolders(cfg); err != nil {
				return err
			}
			var err error
			if cfg.Convert.Unescape, err = parseUnescape(c.String("unescape")); err != nil {
				return err
			}
			if cfg.Convert.Maildir.Fsync, err = parseFsync(c.String("fsync")); err != nil {
				return err
			}
			cfg.After = c.String("after") // one of f.after's values: checkArgs refused any other
			cfg.Convert.KeepHeaders = c.Bool("keep-headers")
			cfg.Force = c.Bool("force")
			cfg.LockTimeout = c.Duration("lock-timeout")
			cfg.StallTimeout = c.Duration("stall-timeout")
			cfg.AuditMessages = c.Bool("audit-messages")
			cfg.Argv = os.Args
			cfg.Version = version()
			if c.Bool("dry-run") {
				return runPlan(c.Context, u, cfg)
			}
			return runBatch(c.Context, u, cfg, c.String("progress"))
		},
	}
}

// runBatch migrates and reports: one line per user on stdout (unless -q), one error line per
// failed user, and a summary; on a terminal, a progress line below them.
func runBatch(ctx context.Context, u *console, cfg migrate.Config, progress string) error {
	var m *ui.Progress
	if u.ShowProgress(progress) {
		// The bar needs the total; the plan's sizes give it without reading the spools.
		if plan, err := migrate.Plan(ctx, cfg); err == nil {
			var total int64
			for _, e := range plan {
				if e.Action == migrate.ActionMigrate {
					total += e.Todo()
				}
			}
			m = u.Progress(true, total, len(plan))
		}
	}
	if m == nil {
		m = u.Progress(false, 0, 0)
	}
	defer m.Close()
	cfg.Progress = m.Add
	cfg.Message = func(_ string, n int64) { m.Messages(n) }
	mu := reportUsers(ctx, u, m, &cfg, func(r migrate.UserResult) string {
		if r.Outcome == migrate.OutcomeNoMailbox {
			return ""
		}
		return userLine(r)
	})
	cfg.Notice = func(user string, e migrate.Event) {
		switch e.Kind {
		case migrate.EventRenumbered, migrate.EventKeywordsDropped, migrate.EventRecovered, migrate.EventIndexUnreadable, migrate.EventMaildirLive, migrate.EventRecordsLost:
			mu.Lock()
			defer mu.Unlock()
			u.Warningf("user %s: %s", user, e.Detail)
		}
	}
	// Where SELinux is enabled each Maildir is relabelled by its user's restorecon; without
	// restorecon, the run ends with the command that does it, for the Maildirs it wrote.
	var unlabelled []string
	selinuxOn, restorecon, err := relabelling(u)
	if err != nil {
		return exitCode(exitFatal, err)
	}
	cfg.Restorecon = restorecon
	if selinuxOn && cfg.Restorecon == "" {
		userDone := cfg.UserDone
		cfg.UserDone = func(r migrate.UserResult) {
			userDone(r)
			if r.Outcome == migrate.OutcomeMigrated || r.Total().Written > 0 {
				mu.Lock()
				unlabelled = append(unlabelled, r.Dst)
				mu.Unlock()
			}
		}
	}
	sum, err := migrate.Run(ctx, cfg)
	m.Close()
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		u.Errorf("interrupted after %d users; locks released; %s; run again to finish", sum.Users, leftovers(sum.Killed))
		return exitCode(exitInterrupted, nil)
	}
	if err != nil {
		return exitCode(exitFatal, err)
	}
	if !u.Quiet {
		u.Printf("%s\n", summaryLines(sum))
	}
	unlabelledCommand(u, unlabelled)
	return usersFailed(u, sum, "is a POP3 client or the MTA busy?")
}

// reportUsers has the run cfg describes report each user as it is done, on m and u: an error
// line for a user who failed (none when the run was interrupted: its own line says it for
// every user), else line(r) unless quiet or "". The mutex it returns serialises u's lines;
// the run's warnings take it too.
func reportUsers(ctx context.Context, u *console, m *ui.Progress, cfg *migrate.Config, line func(migrate.UserResult) string) *sync.Mutex {
	var mu sync.Mutex
	cfg.UserStart = func(user string, _ int64) { m.UserStart(user) }
	cfg.UserDone = func(r migrate.UserResult) {
		m.UserDone(r.User)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Err != nil && errors.Is(r.Err, context.Canceled) && ctx.Err() != nil:
		case r.Err != nil:
			u.Errorf("user %s: %v", r.User, r.Err)
		case !u.Quiet:
			if l := line(r); l != "" {
				u.Printf("%s\n", l)
			}
		}
	}
	cfg.Warn = func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		u.Warningf("%s", msg)
	}
	return &mu
}

// usersFailed is the exit of a run that ended with sum: 0, or the count of users who failed
// and exitTempFail when all of them only found their spool locked (with why as the hint's
// question), else exitUsersFailed.
func usersFailed(u *console, sum migrate.Summary, why string) error {
	if sum.Failed == 0 {
		return nil
	}
	u.Errorf("%d of %d users failed", sum.Failed, sum.Users)
	if sum.Failed == sum.LockTimeouts {
		u.Hintf("their spools stayed locked (%s); run again later", why)
		return exitCode(exitTempFail, nil)
	}
	return exitCode(exitUsersFailed, nil)
}

// selinuxHost is where SELinux's mode is read; tests point it at a tree of their own.
var selinuxHost = selinux.System

// relabelling says whether SELinux is enabled, and then where restorecon is, for the commands
// that make Maildirs: each has the Maildirs it made relabelled as their users, or without
// restorecon warns now and ends with the command (unlabelledCommand).
func relabelling(u *console) (enabled bool, restorecon string, err error) {
	st, err := selinuxHost.Detect()
	if err != nil || !st.Enabled() {
		return false, "", err
	}
	restorecon = selinux.Restorecon()
	if restorecon == "" {
		u.Warningf("SELinux is %s and restorecon (policycoreutils) is not installed: the Maildirs will keep the label of their homes", st.Mode)
	}
	return true, restorecon, nil
}

// unlabelledCommand ends a run that could not relabel the Maildirs it wrote with the command
// that does.
func unlabelledCommand(u *console, paths []string) {
	if len(paths) == 0 {
		return
	}
	sort.Strings(paths)
	u.Warningf("Dovecot may be denied these Maildirs until they get the policy's labels: install policycoreutils and run, as root:")
	fmt.Fprintf(u.Err(), "    %s\n", selinux.Command(paths...))
}

// leftovers says what an interrupted run left in tmp/: nothing, unless a worker had to be killed
// before it removed its pending batch.
func leftovers(killed []string) string {
	switch len(killed) {
	case 0:
		return "partial files removed"
	case 1:
		return "the worker of " + killed[0] + " was killed before it removed its partial files from tmp/, the next run removes them"
	}
	return "the workers of " + strings.Join(killed, ", ") + " were killed before they removed their partial files from tmp/, the next run removes them"
}

func userLine(r migrate.UserResult) string {
	if r.Outcome == migrate.OutcomeUpToDate {
		if n := migratedFolders(r); n > 0 {
			return fmt.Sprintf("%s: up to date (%d folder%s)", escape.Line(r.User), n, plural(n))
		}
		return fmt.Sprintf("%s: up to date", escape.Line(r.User))
	}
	t := r.Total()
	s := escape.Line(r.User) + ": " + countsLine(t, migratedFolders(r), r.Elapsed)
	switch {
	case t.Live != "" && t.Changed+t.Removed+t.Deleted > 0:
		s += "; the Maildir is in use: " + counted(t.Changed, "flag change", "flag changes", t.Removed, "removal", "removals") + " in the source not applied"
	case t.Changed+t.Removed > 0:
		s += "; " + counted(t.Changed, "renamed for its flags", "renamed for their flags", t.Removed, "removed", "removed")
	}
	if r.After != "" {
		s += "; source " + escape.Line(r.After)
	}
	if t.Renumbered {
		// The warning above it says what that costs.
		s += "; UIDs renumbered"
	}
	return s
}

// counted says "n what" for each (n, singular, plural) whose n is not 0, joined by "and".
func counted(triples ...any) string {
	var parts []string
	for i := 0; i+2 < len(triples); i += 3 {
		switch n := triples[i].(int64); {
		case n == 1:
			parts = append(parts, fmt.Sprintf("1 %s", triples[i+1]))
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, triples[i+2]))
		}
	}
	return strings.Join(parts, " and ")
}

// migratedFolders counts the folders that are in the Maildir now (not those skipped).
func migratedFolders(r migrate.UserResult) int {
	n := 0
	for _, f := range r.Folders {
		if f.Outcome == migrate.OutcomeMigrated || f.Outcome == migrate.OutcomeUpToDate {
			n++
		}
	}
	return n
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// countsLine says what a conversion did, for a user's line and convert's: "5 messages (2
// folders), 5 written, 0 already there, 1.2 KiB in 0.03s", the skipped ones only when there
// are any, so that the line fits in 80 columns.
func countsLine(t migrate.Stats, folders int, took time.Duration) string {
	s := fmt.Sprintf("%d messages", t.Messages-t.Skipped)
	if folders > 0 {
		s += fmt.Sprintf(" (%d folder%s)", folders, plural(folders))
	}
	s += fmt.Sprintf(", %d written, %d already there", t.Written, t.Existed)
	if t.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", t.Skipped)
	}
	return s + fmt.Sprintf(", %s in %.2fs", ui.Size(t.Bytes), took.Seconds())
}

// summaryLines are the run's last two lines: the users, then the messages.
func summaryLines(s migrate.Summary) string {
	return fmt.Sprintf("%d users: %d migrated, %d up to date, %d without a mailbox, %d failed\n", s.Users, s.Migrated, s.UpToDate, s.NoMailbox, s.Failed) +
		fmt.Sprintf("%d messages written, %d already there, %s in %.2fs", s.Written, s.Existed, ui.Size(s.Bytes), s.Elapsed.Seconds())
}

// runPlan prints what a run would do.
func runPlan(ctx context.Context, u *console, cfg migrate.Config) error {
	plan, err := migrate.Plan(ctx, cfg)
	if err != nil {
		return exitCode(exitFatal, err)
	}
	printPlan(u, plan)
	return nil
}

// maxPlanSkipped is how many entries a user's plan names of those beneath ~/mail that would not
// be migrated; the others are counted.
const maxPlanSkipped = 5

// printPlan prints the plan as a table: a row per user, whose BYTES and MESSAGES are what its
// INBOX source still has to migrate, then a row per folder with its bytes (folders are read by
// the user's worker only, so their messages are not counted here), then the reason of a user
// refused on a line of its own, then the totals and each filesystem's free space.
func printPlan(u *console, plan []migrate.PlanEntry) {
	const row = "%-12s %6s %10s %8s  %-10s %s\n"
	u.Printf(row, "USER", "UID", "BYTES", "MESSAGES", "ACTION", "SOURCE -> MAILDIR")
	var todo, bytes int64
	free := map[string]int64{}
	need := map[string]int64{}
	var filesystems []string     // in plan order
	where := map[string]string{} // a filesystem's first home, to name it by
	for _, e := range plan {
		size, msgs := "-", "-"
		if e.Size >= 0 {
			size = fmt.Sprint(e.Size - e.Migrated)
		}
		if e.Messages >= 0 {
			msgs = fmt.Sprint(e.Messages)
		}
		// Each field a user may have chosen is escaped: one row per user, one per folder.
		u.Printf(row, escape.Line(e.User), fmt.Sprint(e.UID), size, msgs, e.Action, escape.Line(e.Src+" -> "+e.Dst))
		for _, f := range e.Folders {
			u.Printf(row, "", "", fmt.Sprint(f.Size), "-", "folder", escape.Line(f.String()+" -> "+f.Maildir))
		}
		// The user decides how many entries there are: the first few are named.
		for _, f := range e.SkippedFolders[:min(len(e.SkippedFolders), maxPlanSkipped)] {
			u.Printf(row, "", "", "-", "-", "no folder", escape.Line(f.Source+": "+f.Reason))
		}
		if n := len(e.SkippedFolders) - maxPlanSkipped; n > 0 {
			u.Printf(row, "", "", "-", "-", "no folder", fmt.Sprintf("%d more entries", n))
		}
		switch {
		case e.Reason != "":
			u.Printf("%-12s %s: %s\n", "", e.Action, escape.Line(strings.TrimPrefix(e.Reason, "migrate: ")))
		case e.Action == migrate.ActionMirror && e.Live != "":
			u.Printf("%-12s %s: %d to add; the Maildir is in use: %d flag changes and %d removals not applied\n", "", e.Action, e.Added, e.Changed, e.Removed)
		case e.Action == migrate.ActionMirror:
			u.Printf("%-12s %s: %d to add, %d to rename for their flags, %d to remove\n", "", e.Action, e.Added, e.Changed, e.Removed)
		}
		if e.Action == migrate.ActionMigrate || e.Action == migrate.ActionMirror {
			todo++
			bytes += e.Todo()
			if _, ok := need[e.FS]; !ok {
				filesystems = append(filesystems, e.FS)
				where[e.FS] = filepath.Dir(e.Dst)
			}
			need[e.FS] += e.Todo()
			free[e.FS] = e.Free
		}
	}
	u.Printf("%d users, %d to migrate, %d bytes\n", len(plan), todo, bytes)
	for _, fs := range filesystems {
		if free[fs] >= 0 {
			u.Printf("filesystem of %s: %s needed, %s free\n", escape.Line(where[fs]), ui.Size(need[fs]), ui.Size(free[fs]))
		}
	}
}
