// Package check inspects users' Maildirs the way Dovecot and Postfix will use them and reports
// what is wrong: missing or symlinked cur/new/tmp, wrong owners and modes, files that are not
// messages, S= sizes that lie, flags in new/, stale tmp/ files, a dovecot-uidlist that does not
// parse, and spool files that still receive mail after the migration.
//
// The check is read-only unless Config.Fix is set. What it does inside a home (Home) runs as
// the home's user: run as root, maildirmig gives it to a worker process with the user's uid,
// gid and groups (Config.AsUser), watched for stalls, so the kernel grants it exactly what it
// would grant the user and Dovecot, and a home that hangs (a dead NFS server) costs that user
// the stall timeout, not the whole check. Root keeps the user list, the spool files, its
// state and the audit log. The check never follows a symlink inside a home: every directory
// is opened through internal/safefs (no symlink in any component, beneath a descriptor that
// was itself opened that way), and everything else is looked at with
// fstatat(AT_SYMLINK_NOFOLLOW). Message files are never opened. The only file read in a home
// is dovecot-uidlist, opened through safefs with O_NONBLOCK and read only when it is a
// regular file owned by the user with a single link, so a FIFO, a device or a hard link to
// someone else's file is reported and never read.
//
// With Config.Fix, what is safe to repair is repaired, as the user, through the same
// descriptors: modes (only of what the user owns), missing cur/new/tmp, and tmp/ files whose
// ctime is older than Config.StaleTmp (their mtime may be an old message's date while they are
// still being written), but never those of a maildirmig still writing (its run marker is
// locked). A message is never deleted.
package check

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/maildirmig/maildirmig/host"
)

// Severity ranks a problem; the values are the Nagios plugin exit codes.
type Severity int

// The severities, in the order of the Nagios plugin convention.
const (
	OK       Severity = 0
	Warning  Severity = 1
	Critical Severity = 2
	Unknown  Severity = 3 // the thing could not be checked
)

func (s Severity) String() string {
	switch s {
	case OK:
		return "ok"
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText writes the severity as its name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's name, as MarshalText writes it.
func (s *Severity) UnmarshalText(b []byte) error {
	for _, v := range []Severity{OK, Warning, Critical, Unknown} {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("check: unknown severity %q", b)
}

// Kind names a class of problem. Kinds are stable: monitoring matches on them.
type Kind string

// The kinds of problem check reports.
const (
	Missing        Kind = "missing"         // Maildir, cur, new or tmp does not exist
	Symlink        Kind = "symlink"         // a Maildir, folder, cur, new, tmp or dovecot-uidlist is a symlink
	NotDir         Kind = "not-dir"         // a Maildir, cur, new or tmp is not a directory
	Owner          Kind = "owner"           // not owned by the user
	Mode           Kind = "mode"            // directory not 0700 or message not 0600
	NotRegular     Kind = "not-regular"     // a FIFO, device, socket, symlink or directory among messages
	Empty          Kind = "empty"           // a message file of zero bytes
	BadName        Kind = "bad-name"        // a message file name that is not a valid Maildir name
	SizeMismatch   Kind = "size-mismatch"   // S= in the name differs from the file size
	InfoInNew      Kind = "info-in-new"     // a file in new/ carries an info part (":2,...")
	StaleTmp       Kind = "stale-tmp"       // a tmp/ file unchanged (ctime) for longer than Config.StaleTmp
	BadUIDList     Kind = "bad-uidlist"     // dovecot-uidlist does not parse or cannot be read
	SpoolReceiving Kind = "spool-receiving" // mail arrived in the spool after the last pass
	NotMigrated    Kind = "not-migrated"    // mail in the spool and no Maildir at all
	Unchecked      Kind = "unchecked"       // could not look (I/O error, permission, race)
)

// Kinds lists every kind, so that monitoring output can give each a value, zero included.
var Kinds = []Kind{Missing, Symlink, NotDir, Owner, Mode, NotRegular, Empty, BadName,
	SizeMismatch, InfoInNew, StaleTmp, BadUIDList, SpoolReceiving, NotMigrated, Unchecked}

// Problem is one thing wrong with one path.
type Problem struct {
	Severity Severity `json:"severity"`
	Kind     Kind     `json:"kind"`
	User     string   `json:"user,omitempty"`
	Path     string   `json:"path"`
	Detail   string   `json:"detail"`
	Fixed    string   `json:"fixed,omitempty"` // what Fix did about it; "" when nothing
	Hint     string   `json:"hint,omitempty"`  // how an administrator repairs it
}

// User is an account whose Maildir is checked, as that user when check runs as root. Home is
// the path to open (already resolved under any --root).
type User struct {
	Name     string
	UID, GID int
	Groups   []int // supplementary groups, taken on with the user's identity
	Home     string
}

// Migration is what the last pass over a source migrated: the file (device and inode, zero
// when the state does not say) and how many of its bytes.
type Migration struct {
	Dev, Inode uint64
	Offset     int64
}

// Config says what to check and how.
type Config struct {
	Users []User   // check each user's Home/Maildir and their spool
	Paths []string // check these Maildirs too; the expected owner is the Maildir's own owner

	Maildir  string // the Maildir beneath a home ("" = "Maildir")
	SpoolDir string // where USER spool files are ("" = no spool check)
	Mailbox  string // an mbox in the home that Postfix may deliver to ("" = none)

	// Migrated, when set, returns what the last pass over the user's mbox src (the spool, or
	// with mailbox the mbox in the home) migrated, nil when none did: bytes past what it
	// migrated, or another file in its place, are mail that arrived since. Without it, or for a
	// source never migrated, a spool changed after the Maildir last changed is taken for one
	// still receiving mail. maildirmig answers from its migration state.
	Migrated func(user, src string, mailbox bool) (*Migration, error)

	// AsUser does the work inside each home as its user (nil: InProcess).
	AsUser AsUser

	Fix        bool
	Now        time.Time     // zero = time.Now()
	StaleTmp   time.Duration // 0 = 36 hours, as Maildir readers conventionally use
	MaxListed  int           // problems listed per user and kind (0 = 20, <0 = all); all are counted
	MaxFolders int           // Maildir++ folders looked at per Maildir (0 = 10000)
	Jobs       int           // users checked at once (0 = host.DefaultJobs)

	// OnFix, when set, is called for every repair, listed in the report or not (for an audit
	// log); it may be called from several goroutines at once.
	OnFix func(Problem)
}

// Report is what a check found.
type Report struct {
	Users    int64 `json:"users"`
	Maildirs int64 `json:"maildirs"`
	Folders  int64 `json:"folders"`
	Messages int64 `json:"messages"`
	Bytes    int64 `json:"bytes"`
	Files    int64 `json:"files"` // directory entries looked at

	// Problems lists the problems found, at most Config.MaxListed per user and kind;
	// Unlisted counts the others, and UnlistedKinds counts them by kind and severity.
	Problems      []Problem  `json:"problems"`
	Unlisted      int64      `json:"unlisted"`
	UnlistedKinds []Unlisted `json:"unlisted_kinds"`

	// Counts holds every problem not fixed, by kind; Fixed counts the repaired ones.
	Counts    map[Kind]int64 `json:"counts"`
	Criticals int64          `json:"criticals"`
	Warnings  int64          `json:"warnings"`
	Unknowns  int64          `json:"unknowns"`
	Fixed     int64          `json:"fixed"`

	// Error says why the check could not run, or not to the end; the status is then
	// Unknown, or Critical when something critical was found before.
	Error string `json:"error,omitempty"`

	worst  Severity
	failed bool // made by Failed: its counts say nothing
}

// Unlisted counts the problems of one kind and severity not listed in a report (or repaired,
// when Fixed).
type Unlisted struct {
	Kind     Kind     `json:"kind"`
	Severity Severity `json:"severity"`
	Fixed    bool     `json:"fixed,omitempty"`
	Count    int64    `json:"count"`
}

// addUnlisted counts n more unlisted problems like u.
func (r *Report) addUnlisted(u Unlisted, n int64) {
	for i := range r.UnlistedKinds {
		if c := &r.UnlistedKinds[i]; c.Kind == u.Kind && c.Severity == u.Severity && c.Fixed == u.Fixed {
			c.Count += n
			return
		}
	}
	u.Count = n
	r.UnlistedKinds = append(r.UnlistedKinds, u)
}

// Failed returns the report of a check that could not run because of err: no counts, status
// Unknown, so that monitoring gets a report saying so rather than nothing.
func Failed(err error) Report {
	return Report{Problems: []Problem{}, UnlistedKinds: []Unlisted{}, Counts: map[Kind]int64{}, Error: err.Error(), worst: Unknown, failed: true}
}

// Status is the report's overall state: critical if anything critical is left, else unknown if
// something could not be checked, else warning if any warning is left, else OK. Repaired
// problems do not count.
func (r *Report) Status() Severity {
	if r.Error != "" {
		return Worse(r.worst, Unknown)
	}
	return r.worst
}

// Run checks every user and path of cfg. Problems, including a user that cannot be checked,
// go into the report; the error is only for a cancelled ctx.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.defaults()
	parts := make([]Report, len(cfg.Users)+len(cfg.Paths))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range cfg.Jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				c := newChecker(&cfg, &parts[i])
				if i < len(cfg.Users) {
					c.checkUser(ctx, cfg.Users[i])
				} else {
					c.checkPath(ctx, cfg.Paths[i-len(cfg.Users)])
				}
			}
		}()
	}
	var err error
feed:
	for i := range parts {
		// select picks at random among ready cases: look at ctx first so that a cancelled
		// check starts no further user.
		if ctx.Err() != nil {
			err = fmt.Errorf("check: %w", ctx.Err())
			break
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			err = fmt.Errorf("check: %w", ctx.Err())
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err == nil && ctx.Err() != nil {
		// The last users were cut short.
		err = fmt.Errorf("check: %w", ctx.Err())
	}

	total := Report{Counts: map[Kind]int64{}, Problems: []Problem{}, UnlistedKinds: []Unlisted{}}
	for i := range parts {
		total.merge(&parts[i])
	}
	return total, err
}

func (cfg *Config) defaults() {
	if cfg.Maildir == "" {
		cfg.Maildir = "Maildir"
	}
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	if cfg.StaleTmp == 0 {
		cfg.StaleTmp = 36 * time.Hour
	}
	if cfg.MaxListed == 0 {
		cfg.MaxListed = 20
	}
	if cfg.MaxFolders == 0 {
		cfg.MaxFolders = 10000
	}
	if cfg.Jobs <= 0 {
		cfg.Jobs = host.DefaultJobs()
	}
	if cfg.AsUser == nil {
		cfg.AsUser = InProcess{}
	}
}

func (r *Report) merge(o *Report) {
	r.Users += o.Users
	r.Maildirs += o.Maildirs
	r.Folders += o.Folders
	r.Messages += o.Messages
	r.Bytes += o.Bytes
	r.Files += o.Files
	r.Problems = append(r.Problems, o.Problems...)
	r.Unlisted += o.Unlisted
	for _, u := range o.UnlistedKinds {
		r.addUnlisted(u, u.Count)
	}
	for k, n := range o.Counts {
		r.Counts[k] += n
	}
	r.Criticals += o.Criticals
	r.Warnings += o.Warnings
	r.Unknowns += o.Unknowns
	r.Fixed += o.Fixed
	r.worst = Worse(r.worst, o.worst)
}

// Worse returns the worse of a and b in the order Status documents: critical > unknown >
// warning > ok (not the order of their Nagios codes).
func Worse(a, b Severity) Severity {
	rank := func(s Severity) int {
		switch s {
		case Critical:
			return 3
		case Unknown:
			return 2
		case Warning:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// add records p in r, listing it unless this user already has max listed problems of its kind.
func (r *Report) add(p Problem, listed map[Kind]int, max int) {
	if p.Fixed != "" {
		r.Fixed++
	} else {
		if r.Counts == nil {
			r.Counts = map[Kind]int64{}
		}
		r.Counts[p.Kind]++
		switch p.Severity {
		case Critical:
			r.Criticals++
		case Warning:
			r.Warnings++
		case Unknown:
			r.Unknowns++
		}
		r.worst = Worse(r.worst, p.Severity)
	}
	if max >= 0 && listed[p.Kind] >= max {
		r.Unlisted++
		r.addUnlisted(Unlisted{Kind: p.Kind, Severity: p.Severity, Fixed: p.Fixed != ""}, 1)
		return
	}
	listed[p.Kind]++
	r.Problems = append(r.Problems, p)
}

// Hints returns the distinct hints of the listed problems, sorted.
func (r *Report) Hints() []string {
	seen := map[string]bool{}
	var hints []string
	for _, p := range r.Problems {
		if p.Hint != "" && p.Fixed == "" && !seen[p.Hint] {
			seen[p.Hint] = true
			hints = append(hints, p.Hint)
		}
	}
	sort.Strings(hints)
	return hints
}

// MarshalJSON adds the status to the report's fields.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		Status Severity `json:"status"`
		Exit   int      `json:"exit"`
		plain
	}{r.Status(), int(r.Status()), plain(r)})
}
