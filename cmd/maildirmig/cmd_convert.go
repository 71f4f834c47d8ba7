package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/escape"
	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
	"github.com/maildirmig/maildirmig/migrate"
	"github.com/maildirmig/maildirmig/users"
)

// convertOptions are the settings of one convert run.
type convertOptions struct {
	from        string // "" or "-" for standard input
	maildir     string
	keepHeaders bool
	unescape    mbox.Unescape
	fsync       maildir.Fsync
	progress    string
	stall       time.Duration
}

func convertCommand(u *console, f *flags) *cli.Command {
	return &cli.Command{
		Name:      "convert",
		Usage:     "convert one mbox into one Maildir (a drop-in for perfect_maildir.pl)",
		ArgsUsage: "MAILDIR",
		Description: "Reads the mbox from --from FILE, or from standard input, and adds its messages to\n" +
			"MAILDIR (created with cur/, new/ and tmp/ when missing). Run it as the user who owns the\n" +
			"Maildir; run as root, it writes as the owner of MAILDIR's parent directory. A second\n" +
			"run over the same mbox writes nothing.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Usage: "read the mbox from `FILE` (default: standard input)"},
			f.keepHeaders, f.unescape, f.fsync, f.stallTimeout, f.progress, f.quiet,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("convert takes one MAILDIR argument, got %d", c.NArg())
			}
			o := convertOptions{from: c.String("from"), maildir: c.Args().First(), keepHeaders: c.Bool("keep-headers"), progress: c.String("progress")}
			var err error
			if o.unescape, err = parseUnescape(c.String("unescape")); err != nil {
				return err
			}
			if o.fsync, err = parseFsync(c.String("fsync")); err != nil {
				return err
			}
			o.stall = c.Duration("stall-timeout")
			return runConvert(c.Context, u, o)
		},
	}
}

func parseUnescape(s string) (mbox.Unescape, error) {
	u, err := mbox.ParseUnescape(s)
	if err != nil {
		return 0, usagef("--unescape %q: want %s", s, orList(unescapes))
	}
	return u, nil
}

func parseFsync(s string) (maildir.Fsync, error) {
	f, err := maildir.ParseFsync(s)
	if err != nil {
		return 0, usagef("--fsync %q: want %s", s, orList(fsyncModes))
	}
	return f, nil
}

func runConvert(ctx context.Context, u *console, o convertOptions) error {
	target, err := filepath.Abs(o.maildir)
	if err != nil {
		return exitCode(exitFatal, err)
	}
	cred, err := maildirOwner(target)
	if err != nil {
		return exitCode(exitFatal, err)
	}
	src, name, piped, cleanup, err := openSource(u, o.from)
	if err != nil {
		return exitCode(exitFatal, err)
	}
	defer cleanup()
	var sst unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &sst); err != nil {
		return exitCode(exitFatal, &os.PathError{Op: "fstat", Path: name, Err: err})
	}
	// Root reads for the Maildir's owner only what the owner could; a pipe is root's own choice.
	if !piped && os.Geteuid() == 0 && cred.UID != 0 {
		var ue *migrate.UnsafeSourceError
		if err := migrate.CheckSourceOwner(name, &sst, cred.UID); errors.As(err, &ue) {
			u.Errorf("%s %s", ue.Name, ue.Reason)
			u.Hintf("as root, convert copies a user's own mbox into their Maildir; chown the file to the Maildir's owner if it really is theirs")
			return exitCode(exitFatal, nil)
		}
	}
	// Only now may the file's first bytes appear in an error message.
	if err := migrate.CheckMbox(src, sst.Size); err != nil {
		return notMbox(u, name, err)
	}

	notes := newNoticePrinter(u, name)
	m := u.Progress(u.ShowProgress(o.progress), sst.Size, 1)
	start := time.Now()
	// Records arrive once their messages are on disk: on an interrupt, they say how far the
	// Maildir got, where the final statistics are not sent.
	var durable int64
	st, err := migrate.ConvertAs(ctx, cred, src, target, migrate.ConvertOptions{
		KeepHeaders:  o.keepHeaders,
		Unescape:     o.unescape,
		Maildir:      maildir.Options{Fsync: o.fsync},
		Notice:       notes.print,
		Progress:     m.Add,
		Read:         m.Messages,
		OnMessage:    func(migrate.MessageRecord) { durable++ },
		StallTimeout: o.stall,
	})
	m.Close()
	notes.flush()
	if err != nil {
		if ctx.Err() != nil {
			u.Errorf("%s: interrupted; at least %d messages are safely in the Maildir, run again to finish", name, durable)
			return exitCode(exitInterrupted, nil)
		}
		if errors.Is(err, mbox.ErrNotMbox) {
			return notMbox(u, name, err)
		}
		return exitCode(exitFatal, fmt.Errorf("%s: %w", name, err))
	}
	if !u.Quiet {
		u.Printf("%s\n", convertSummary(name, st, time.Since(start)))
	}
	return nil
}

// maildirOwner says whom convert writes as. Root writes as the owner of the Maildir, or of
// the directory that will hold it, so that every file is theirs without a chown; anyone else
// writes as themselves.
func maildirOwner(target string) (migrate.Credentials, error) {
	if os.Geteuid() != 0 {
		return migrate.Credentials{UID: os.Getuid(), GID: os.Getgid()}, nil
	}
	var st unix.Stat_t
	err := unix.Lstat(target, &st)
	if errors.Is(err, unix.ENOENT) {
		err = unix.Lstat(filepath.Dir(target), &st)
		target = filepath.Dir(target)
	}
	if err != nil {
		return migrate.Credentials{}, &os.PathError{Op: "lstat", Path: target, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return migrate.Credentials{}, fmt.Errorf("%s: not a directory (a symlink is not followed)", target)
	}
	cred := migrate.Credentials{UID: int(st.Uid), GID: int(st.Gid)}
	if cred.UID == 0 {
		return migrate.Credentials{}, nil
	}
	// The owner's primary and supplementary groups, as a login would give them (through NSS, so
	// an LDAP or SSSD user is found as mbox finds them); an owner without a passwd entry gets
	// the directory's group alone.
	pw, err := users.LookupUID(cred.UID, users.Options{})
	switch {
	case err == nil:
		cred.GID, cred.Groups = pw.GID, pw.Groups
	case !errors.Is(err, users.ErrNoSuchUser):
		return migrate.Credentials{}, fmt.Errorf("owner of %s: %w", target, err)
	}
	return cred, nil
}

// notMbox reports a source that is not an mbox.
func notMbox(u *console, name string, err error) error {
	if !errors.Is(err, mbox.ErrNotMbox) {
		return exitCode(exitFatal, fmt.Errorf("%s: %w", name, err))
	}
	u.Errorf("%s: %v", name, err)
	u.Hintf("nothing was written; an mbox starts with a \"From \" line (MMDF and other formats are not mbox)")
	return exitCode(exitFatal, nil)
}

// convertSummary is the one line convert prints on stdout.
func convertSummary(name string, st migrate.Stats, took time.Duration) string {
	s := escape.Line(name) + ": " + countsLine(st, 0, took)
	if st.Written == 0 && st.Existed > 0 {
		s += "; nothing new to write"
	}
	return s
}

// openSource opens the mbox to read: a named file, or standard input. A stdin that is a pipe
// is copied to an unlinked temporary file first, because checking Content-Length needs
// random access; piped says so.
func openSource(u *console, from string) (f *os.File, name string, piped bool, cleanup func(), err error) {
	noop := func() {}
	if from != "" && from != "-" {
		// O_NONBLOCK so that a FIFO named by mistake cannot hang the open.
		fd, err := unix.Open(from, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, from, false, noop, &os.PathError{Op: "open", Path: from, Err: err}
		}
		f := os.NewFile(uintptr(fd), from)
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, from, false, noop, err
		}
		if !fi.Mode().IsRegular() {
			f.Close()
			return nil, from, false, noop, fmt.Errorf("%s: not a regular file (%s)", from, fi.Mode().Type())
		}
		if err := unix.SetNonblock(fd, false); err != nil {
			f.Close()
			return nil, from, false, noop, err
		}
		return f, from, false, func() { f.Close() }, nil
	}
	if in, ok := u.stdin.(*os.File); ok {
		if fi, err := in.Stat(); err == nil && fi.Mode().IsRegular() {
			return in, "standard input", false, noop, nil
		}
	}
	tmp, err := os.CreateTemp("", "maildirmig-stdin-*")
	if err != nil {
		return nil, "standard input", false, noop, fmt.Errorf("buffering standard input: %w", err)
	}
	os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, u.stdin); err != nil {
		tmp.Close()
		return nil, "standard input", false, noop, fmt.Errorf("buffering standard input: %w", err)
	}
	return tmp, "standard input", true, func() { tmp.Close() }, nil
}

// noticePrinter turns conversion events into warnings, at most a few of each kind per
// mailbox, so that a takeout with ten thousand dateless messages does not flood the terminal.
type noticePrinter struct {
	u      *console
	name   string
	mu     sync.Mutex
	counts map[string]int
	order  []string
}

const noticesPerKind = 5

func newNoticePrinter(u *console, name string) *noticePrinter {
	return &noticePrinter{u: u, name: name, counts: map[string]int{}}
}

func (p *noticePrinter) print(e migrate.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.counts[e.Kind] == 0 {
		p.order = append(p.order, e.Kind)
	}
	p.counts[e.Kind]++
	if p.counts[e.Kind] > noticesPerKind {
		return
	}
	where := p.name
	if e.Message >= 0 {
		where = fmt.Sprintf("%s: message %d (offset %d)", p.name, e.Message+1, e.Offset)
	}
	p.u.Warningf("%s: %s", where, strings.TrimSuffix(e.Detail, "."))
}

// flush says how many warnings of each kind were not printed.
func (p *noticePrinter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.order {
		if n := p.counts[k] - noticesPerKind; n > 0 {
			p.u.Warningf("%s: %d more %s warnings not shown", p.name, n, k)
		}
	}
}
