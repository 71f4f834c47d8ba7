package dovecotview

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/maildirmig/maildirmig/internal/worker"
)

// Recorder reads what Dovecot shows users. Its zero value reads Dovecot's own configuration
// and records no hash.
type Recorder struct {
	// Config is the Dovecot configuration file given to doveconf and doveadm with -c; "" for
	// Dovecot's own.
	Config string
	// Hash records a SHA-256 of every message, which reads every byte of every mailbox.
	Hash bool
	// Started, when set, is called as Record starts on each user (from several goroutines).
	Started func(user string)
	// StallTimeout is how long a doveadm command reading a user's mail may print nothing
	// before it is killed and the user fails (0: DefaultStallTimeout). Dovecot opens the
	// user's files as they are: a FIFO in a Maildir, or a hung home, blocks it for ever.
	StallTimeout time.Duration

	// Read by Settings.
	pop3        bool   // POP3 is among Dovecot's protocols: record UIDLs
	deletedFlag string // pop3_deleted_flag: messages carrying it are hidden from POP3
}

// DefaultStallTimeout is how long a doveadm command may print nothing before it is killed:
// the stall timeout of maildirmig's own workers.
const DefaultStallTimeout = worker.DefaultStallTimeout

// ErrStalled is wrapped by the error of a doveadm command killed for printing nothing for
// the stall timeout.
var ErrStalled = errors.New("printed nothing")

// attempts is how many times a user is read before giving up on a mailbox that keeps changing
// (mail delivered, a client expunging) between the commands that read it.
const attempts = 3

// errChanged marks a user whose mailboxes changed while they were read.
var errChanged = errors.New("changed while it was recorded")

// Settings reads Dovecot's version and the settings that decide what clients see, and checks
// that Dovecot runs (doveadm -u finds users through its auth service). It must be called
// before User.
func (r *Recorder) Settings(ctx context.Context) (Header, error) {
	h := Header{Config: r.Config, Hash: ""}
	if r.Hash {
		h.Hash = HashSHA256
	}
	out, err := r.output(ctx, "dovecot", "--version")
	if err != nil {
		return h, fmt.Errorf("dovecotview: %w", err)
	}
	h.Dovecot = strings.TrimSpace(string(out))

	vals, err := r.doveconf(ctx, "mail_location", "protocols", "base_dir")
	if err != nil {
		// Dovecot 2.4 split mail_location.
		vals24, err24 := r.doveconf(ctx, "mail_driver", "mail_path", "mail_inbox_path", "protocols", "base_dir")
		if err24 != nil {
			return h, err
		}
		loc := "mail_driver = " + vals24[0] + ", mail_path = " + vals24[1]
		if vals24[2] != "" {
			loc += ", mail_inbox_path = " + vals24[2]
		}
		vals = []string{loc, vals24[3], vals24[4]}
	}
	h.MailLocation = vals[0]
	r.pop3 = slices.Contains(strings.Fields(vals[1]), "pop3")
	h.POP3 = r.pop3
	if !running(vals[2]) {
		return h, fmt.Errorf("dovecotview: Dovecot is not running (no live process in %s, nothing listens on %s): doveadm finds users through its auth service",
			filepath.Join(vals[2], "master.pid"), filepath.Join(vals[2], "auth-userdb"))
	}
	pop3, err := r.doveconf(ctx, "-f", "protocol=pop3", "pop3_uidl_format", "pop3_deleted_flag")
	if err != nil {
		return h, err
	}
	h.POP3UIDLFormat, r.deletedFlag = pop3[0], pop3[1]
	out, err = r.output(ctx, "doveconf", append(r.conf(), "namespace")...)
	if err != nil {
		return h, fmt.Errorf("dovecotview: %w", err)
	}
	h.Separator = inboxSeparator(string(out))
	return h, nil
}

// conf is the -c option of doveconf and doveadm, or none.
func (r *Recorder) conf() []string {
	if r.Config == "" {
		return nil
	}
	return []string{"-c", r.Config}
}

// doveconf returns the values of the settings names (doveconf -h), one per name; a leading
// "-f FILTER" pair is passed on.
func (r *Recorder) doveconf(ctx context.Context, names ...string) ([]string, error) {
	args := append(r.conf(), "-h")
	if len(names) > 2 && names[0] == "-f" {
		args = append(args, names[:2]...)
		names = names[2:]
	}
	out, err := r.output(ctx, "doveconf", append(args, names...)...)
	if err != nil {
		return nil, fmt.Errorf("dovecotview: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(names) {
		return nil, fmt.Errorf("dovecotview: doveconf: %d lines for %d settings: %q", len(lines), len(names), out)
	}
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return lines, nil
}

// inboxSeparator returns the separator of the namespace with inbox = yes in the output of
// doveconf namespace, "" when there is none or it sets none (the storage's own then applies).
func inboxSeparator(conf string) string {
	depth := 0
	inbox, sep := false, ""
	for _, line := range strings.Split(conf, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasSuffix(line, "{"):
			depth++
			if depth == 1 {
				inbox, sep = false, ""
			}
		case line == "}":
			depth--
			if depth == 0 && inbox {
				return sep
			}
		case depth == 1:
			k, v, _ := strings.Cut(line, "=")
			switch strings.TrimSpace(k) {
			case "inbox":
				inbox = strings.TrimSpace(v) == "yes"
			case "separator":
				sep = strings.TrimSpace(v)
			}
		}
	}
	return ""
}

// running reports whether Dovecot runs with baseDir: its master process lives, or its auth
// service's userdb socket (what doveadm -u needs) takes connections. Either may come first
// while Dovecot starts.
func running(baseDir string) bool {
	if c, err := net.DialTimeout("unix", filepath.Join(baseDir, "auth-userdb"), 5*time.Second); err == nil {
		c.Close()
		return true
	}
	return MasterRunning(baseDir)
}

// MasterRunning reports whether the master process of the Dovecot whose base_dir is baseDir
// lives, by its master.pid.
func MasterRunning(baseDir string) bool {
	if baseDir == "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(baseDir, "master.pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Record records users, jobs at a time, writes each to w in the order of users, and calls
// done (when not nil) as each is written. It stops at the first write error, or when ctx is
// done; a user that cannot be recorded is written with its Error and the others go on.
func (r *Recorder) Record(ctx context.Context, users []string, jobs int, w *Writer, done func(*User)) error {
	if jobs < 1 {
		jobs = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]chan *User, len(users))
	for i := range results {
		results[i] = make(chan *User, 1)
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(jobs, len(users)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if r.Started != nil {
					r.Started(users[i])
				}
				results[i] <- r.User(ctx, users[i])
			}
		}()
	}
	go func() {
		defer close(next)
		for i := range users {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	for i := range users {
		var u *User
		select {
		case u = <-results[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := w.WriteUser(u); err != nil {
			return err
		}
		if done != nil {
			done(u)
		}
	}
	return nil
}

// User records what Dovecot shows the user name. It always returns a User: one Dovecot does
// not know has Unknown set, one that could not be read has Error set.
func (r *Recorder) User(ctx context.Context, name string) *User {
	var err error
	for range attempts {
		var u *User
		u, err = r.user(ctx, name)
		if err == nil {
			return u
		}
		if !errors.Is(err, errChanged) || ctx.Err() != nil {
			break
		}
	}
	return &User{Name: name, Error: err.Error()}
}

// unknownUser is returned by user for a user Dovecot does not serve.
type unknownUser struct{ reason string }

func (e *unknownUser) Error() string { return e.reason }

func (r *Recorder) user(ctx context.Context, name string) (*User, error) {
	u := &User{Name: name}
	var uerr *unknownUser
	loc, err := r.lookup(ctx, name)
	if errors.As(err, &uerr) {
		u.Unknown = uerr.reason
		return u, nil
	}
	if err != nil {
		return nil, err
	}
	u.MailLocation = loc
	names, err := r.mailboxNames(ctx, name, false)
	if msg := errString(err); strings.Contains(msg, " not permitted (see first_valid_") {
		// The userdb knows the user, but Dovecot serves no mail to their uid or gid (root,
		// system accounts): "Mail access for users with UID 0 not permitted (see ...)".
		if i := strings.Index(msg, "Mail access for"); i >= 0 {
			msg = msg[i:]
		}
		u.Unknown = msg
		return u, nil
	}
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		// Dovecot lists the INBOX of every user it serves, even before it exists.
		return nil, errors.New("doveadm mailbox list: no mailbox, not even INBOX")
	}
	if u.Subscribed, err = r.mailboxNames(ctx, name, true); err != nil {
		return nil, err
	}
	fetched, err := r.fetch(ctx, name)
	if err != nil {
		return nil, err
	}
	status, err := r.status(ctx, name)
	if err != nil {
		return nil, err
	}

	for _, n := range names {
		mb := Mailbox{Name: n, NoSelect: true}
		if st, ok := status[n]; ok {
			mb = st.Mailbox
		}
		u.Mailboxes = append(u.Mailboxes, mb)
	}
	for n := range status {
		if !slices.Contains(names, n) {
			return nil, fmt.Errorf("mailbox %q %w", n, errChanged)
		}
	}
	sortMailboxes(u.Mailboxes)
	byGUID := map[string]*Mailbox{}
	for i := range u.Mailboxes {
		if mb := &u.Mailboxes[i]; !mb.NoSelect {
			byGUID[status[mb.Name].guid] = mb
		}
	}
	for _, f := range fetched {
		mb := byGUID[f.guid]
		if mb == nil {
			return nil, fmt.Errorf("mailbox %q %w", f.mailbox, errChanged)
		}
		mb.Messages = append(mb.Messages, f.Message)
	}
	for i := range u.Mailboxes {
		mb := &u.Mailboxes[i]
		sort.Slice(mb.Messages, func(a, b int) bool { return mb.Messages[a].UID < mb.Messages[b].UID })
		if len(mb.Messages) != mb.Count {
			return nil, fmt.Errorf("mailbox %q: %d messages fetched, %d counted: %w", mb.Name, len(mb.Messages), mb.Count, errChanged)
		}
	}
	if r.Hash {
		if err := r.hash(ctx, name, fetched, byGUID); err != nil {
			return nil, err
		}
	}
	if r.pop3 {
		if inbox := u.mailbox("INBOX"); inbox != nil {
			uidls, err := r.uidls(ctx, name)
			switch {
			case errors.Is(err, errChanged):
				return nil, err
			case err != nil:
				u.POP3Error = err.Error()
			default:
				if err := r.attachUIDLs(inbox, uidls); err != nil {
					return nil, err
				}
			}
		}
	}
	return u, nil
}

// sortMailboxes puts INBOX first and the others in name order, so that two recordings list
// them alike whatever order the storage lists them in.
func sortMailboxes(mbs []Mailbox) {
	sort.SliceStable(mbs, func(i, j int) bool {
		a, b := mbs[i].Name, mbs[j].Name
		if (a == "INBOX") != (b == "INBOX") {
			return a == "INBOX"
		}
		return a < b
	})
}

// lookup finds the user in Dovecot's userdb and returns the mail location Dovecot uses for them.
func (r *Recorder) lookup(ctx context.Context, name string) (string, error) {
	var out bytes.Buffer
	err := r.doveadm(ctx, "user", nil, func(rd io.Reader) error {
		_, err := io.Copy(&out, rd)
		return err
	}, "user", name)
	var ee *exitError
	switch {
	case errors.As(err, &ee) && ee.code == exNoUser:
		reason := strings.TrimSpace(lastLine(out.String()))
		if reason == "" {
			reason = "Dovecot's userdb has no such user"
		}
		return "", &unknownUser{reason: reason}
	case errors.As(err, &ee):
		// doveadm user fails without a word for a uid below first_valid_uid, where the next
		// command says why; the mail location is then unknown.
		return "", nil
	case err != nil:
		return "", err
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "mail\t"); ok {
			return v, nil
		}
	}
	return "", nil
}

// exNoUser is EX_NOUSER, doveadm's exit status for a user its userdb does not know.
const exNoUser = 67

// mailboxNames lists the user's mailboxes, or with subscribed their subscriptions, sorted.
func (r *Recorder) mailboxNames(ctx context.Context, user string, subscribed bool) ([]string, error) {
	args := []string{"-f", "json", "mailbox", "list", "-u", user}
	if subscribed {
		args = append(args, "-s")
	}
	var names []string
	err := r.doveadm(ctx, "mailbox list", nil, func(rd io.Reader) error {
		return eachJSON(rd, func(m map[string]string) error {
			names = append(names, m["mailbox"])
			return nil
		})
	}, args...)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// fetched is one message as doveadm fetch reported it.
type fetched struct {
	mailbox, guid string // the mailbox's name and GUID
	Message
}

// fetchFields are the doveadm fetch fields of a message's record.
const fetchFields = "mailbox mailbox-guid uid flags date.received.unixtime size.virtual"

// fetch returns every message of every mailbox of the user, in doveadm's order.
func (r *Recorder) fetch(ctx context.Context, user string) ([]fetched, error) {
	var all []fetched
	err := r.doveadm(ctx, "fetch", nil, func(rd io.Reader) error {
		return eachJSON(rd, func(m map[string]string) error {
			f := fetched{mailbox: m["mailbox"], guid: m["mailbox-guid"]}
			uid, err := strconv.ParseUint(m["uid"], 10, 32)
			if err != nil {
				return fmt.Errorf("doveadm fetch: uid %q: %w", m["uid"], err)
			}
			received, err := strconv.ParseInt(m["date.received.unixtime"], 10, 64)
			if err != nil {
				return fmt.Errorf("doveadm fetch: %s uid %d: date.received %q: %w", f.mailbox, uid, m["date.received.unixtime"], err)
			}
			size, err := strconv.ParseInt(m["size.virtual"], 10, 64)
			if err != nil {
				return fmt.Errorf("doveadm fetch: %s uid %d: size.virtual %q: %w", f.mailbox, uid, m["size.virtual"], err)
			}
			f.UID, f.Received, f.Size = uint32(uid), time.Unix(received, 0).UTC(), size
			f.Flags = []string{}
			for _, fl := range strings.Fields(m["flags"]) {
				if fl != `\Recent` {
					f.Flags = append(f.Flags, fl)
				}
			}
			sort.Strings(f.Flags)
			all = append(all, f)
			return nil
		})
	}, "-f", "json", "fetch", "-u", user, fetchFields, "all")
	return all, err
}

// statusOf is one selectable mailbox as doveadm mailbox status reported it.
type statusOf struct {
	Mailbox
	guid string
}

// status returns the selectable mailboxes of the user by name.
func (r *Recorder) status(ctx context.Context, user string) (map[string]statusOf, error) {
	all := map[string]statusOf{}
	err := r.doveadm(ctx, "mailbox status", nil, func(rd io.Reader) error {
		return eachJSON(rd, func(m map[string]string) error {
			var vals [3]uint64
			for i, k := range []string{"messages", "uidvalidity", "uidnext"} {
				v, err := strconv.ParseUint(m[k], 10, 32)
				if err != nil {
					return fmt.Errorf("doveadm mailbox status: %s: %s %q: %w", m["mailbox"], k, m[k], err)
				}
				vals[i] = v
			}
			all[m["mailbox"]] = statusOf{guid: m["guid"], Mailbox: Mailbox{Name: m["mailbox"], Count: int(vals[0]),
				UIDValidity: uint32(vals[1]), UIDNext: uint32(vals[2])}}
			return nil
		})
	}, "-f", "json", "mailbox", "status", "-u", user, "messages uidvalidity uidnext guid", "*")
	return all, err
}

// hash reads every message's text and stores its hash in the mailboxes of byGUID. The texts
// come in the order of fetched, which tells where each one ends (see readTexts).
func (r *Recorder) hash(ctx context.Context, user string, order []fetched, byGUID map[string]*Mailbox) error {
	keys := make([]textKey, len(order))
	for i, f := range order {
		keys[i] = textKey{guid: f.guid, uid: f.UID}
	}
	sums := make(map[textKey]string, len(keys))
	err := r.doveadm(ctx, "fetch text", nil, func(rd io.Reader) error {
		return readTexts(rd, keys, MaxHashed, func(k textKey, sum string) { sums[k] = sum })
	}, "-f", "pager", "fetch", "-u", user, "mailbox-guid uid size.physical text", "all")
	if errors.Is(err, errTextOrder) {
		return fmt.Errorf("%w (%w)", err, errChanged)
	}
	if err != nil {
		return err
	}
	for guid, mb := range byGUID {
		for i := range mb.Messages {
			m := &mb.Messages[i]
			sum, ok := sums[textKey{guid: guid, uid: m.UID}]
			if !ok {
				return fmt.Errorf("mailbox %q: no text for uid %d: %w", mb.Name, m.UID, errChanged)
			}
			m.SHA256 = sum
		}
	}
	return nil
}

// uidls lists the INBOX's UIDLs as Dovecot's POP3 server gives them to the user, in message
// order. The session reads UIDL and ends without QUIT, so nothing is deleted or marked seen.
func (r *Recorder) uidls(ctx context.Context, user string) ([]string, error) {
	var uidls []string
	err := r.doveadm(ctx, "exec pop3", strings.NewReader("UIDL\r\n"), func(rd io.Reader) error {
		var err error
		uidls, err = parseUIDL(rd)
		return err
	}, "exec", "pop3", "-u", user)
	if err != nil {
		return nil, err
	}
	return uidls, nil
}

// attachUIDLs gives the INBOX's messages their UIDLs: POP3 numbers the INBOX's messages in
// UID order, leaving out those that carry pop3_deleted_flag.
func (r *Recorder) attachUIDLs(inbox *Mailbox, uidls []string) error {
	var shown []*Message
	for i := range inbox.Messages {
		m := &inbox.Messages[i]
		if r.deletedFlag != "" && slices.Contains(m.Flags, r.deletedFlag) {
			continue
		}
		shown = append(shown, m)
	}
	if len(shown) != len(uidls) {
		return fmt.Errorf("INBOX: POP3 lists %d messages, IMAP %d: %w", len(uidls), len(shown), errChanged)
	}
	for i, m := range shown {
		m.UIDL = uidls[i]
	}
	return nil
}

// eachJSON calls fn for each object of the JSON array doveadm -f json prints, one at a time,
// so that a mailbox of any size is read in bounded memory. No output at all is no objects.
func eachJSON(rd io.Reader, fn func(map[string]string) error) error {
	dec := json.NewDecoder(bufio.NewReaderSize(rd, 64<<10))
	tok, err := dec.Token()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("doveadm output: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("doveadm output: want a JSON array, got %v", tok)
	}
	for dec.More() {
		var m map[string]string
		if err := dec.Decode(&m); err != nil {
			return fmt.Errorf("doveadm output: %w", err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("doveadm output: %w", err)
	}
	return nil
}

// exitError is a tool's exit status other than 0.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// doveadm runs doveadm with the configuration and args (verb names them in errors), feeds it stdin (none when nil) and
// hands its standard output to out as it comes. doveadm exits 0 after many failures (a home
// it cannot enter, a mailbox it cannot open), which it reports on standard error only: an
// error or fatal line there fails the command too.
func (r *Recorder) doveadm(ctx context.Context, verb string, stdin io.Reader, out func(io.Reader) error, args ...string) error {
	cmd := exec.CommandContext(ctx, "doveadm", append(r.conf(), args...)...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &limitWriter{w: &stderr, n: 64 << 10}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("doveadm %s: %w", verb, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("doveadm %s: %w", verb, err)
	}
	// Every wait ends: a command that prints nothing for the stall timeout is killed.
	stall := r.StallTimeout
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	var stalled atomic.Bool
	watch := time.AfterFunc(stall, func() {
		stalled.Store(true)
		cmd.Process.Kill()
	})
	rd := &stallReader{r: pipe, watch: watch, stall: stall}
	oerr := out(rd)
	if oerr != nil {
		// Stop the tool rather than wait for output nobody reads.
		cmd.Process.Kill()
	}
	io.Copy(io.Discard, rd)
	werr := cmd.Wait()
	watch.Stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if stalled.Load() && werr != nil {
		return fmt.Errorf("doveadm %s: %w for %v, killed: Dovecot waits on a file of the user's (a FIFO or device among the messages?) or on a hung home, or indexes a huge mailbox for the first time (raise --stall-timeout)", verb, ErrStalled, stall)
	}
	problems := dovecotErrors(stderr.String())
	var ee *exec.ExitError
	switch {
	case oerr != nil && errors.Is(oerr, errTextOrder):
		return oerr
	case errors.As(werr, &ee) && oerr == nil:
		msg := fmt.Sprintf("doveadm %s: %v", verb, werr)
		if len(problems) > 0 {
			msg += ": " + strings.Join(problems, "; ")
		}
		return &exitError{code: ee.ExitCode(), msg: msg}
	case werr != nil && oerr == nil:
		return fmt.Errorf("doveadm %s: %w", verb, werr)
	case len(problems) > 0:
		return fmt.Errorf("doveadm %s: %s", verb, strings.Join(problems, "; "))
	case oerr != nil:
		return fmt.Errorf("doveadm %s: %w", verb, oerr)
	}
	return nil
}

// stallReader reads a command's output, putting off its kill by the stall timeout at every
// byte that comes.
type stallReader struct {
	r     io.Reader
	watch *time.Timer
	stall time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.watch.Reset(s.stall)
	}
	return n, err
}

// dovecotErrors returns the error, fatal and panic messages in a Dovecot tool's standard
// error, each from its level on ("Error: ..."), without the process prefix ("doveadm(alice):
// "). The level is the first word of a line, or the first after the prefix's ": ".
func dovecotErrors(stderr string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		msg := line
		if _, rest, ok := strings.Cut(line, ": "); ok && !isLevel(line) {
			msg = rest
		}
		if isLevel(msg) {
			out = append(out, strings.TrimSpace(msg))
		}
	}
	return out
}

func isLevel(s string) bool {
	return strings.HasPrefix(s, "Error: ") || strings.HasPrefix(s, "Fatal: ") || strings.HasPrefix(s, "Panic: ")
}

// output runs a tool and returns its standard output; its error carries the standard error.
func (r *Recorder) output(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitWriter{w: &stderr, n: 64 << 10}
	out, err := cmd.Output()
	if err != nil {
		if s := strings.TrimSpace(stderr.String()); s != "" {
			return out, fmt.Errorf("%s: %w: %s", name, err, lastLine(s))
		}
		return out, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// limitWriter keeps the first n bytes written to it and drops the rest, so that a tool
// printing without end cannot fill memory.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
