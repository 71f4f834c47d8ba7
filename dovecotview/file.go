package dovecotview

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/maildirmig/maildirmig/internal/wholefile"
)

// The lines of a recording. Every line is one JSON object whose "kind" says what it is:
//
//	{"kind":"recording","format":1,"time":...,"host":...,"dovecot":...,"mail_location":...}
//	{"kind":"user","user":"alice","mail_location":"mbox:~/mail:INBOX=/var/mail/alice","subscribed":["Archive"]}
//	{"kind":"mailbox","user":"alice","mailbox":"INBOX","uidvalidity":1700000000,"uidnext":413,"messages":412}
//	{"kind":"message","user":"alice","mailbox":"INBOX","uid":1,"flags":["\\Seen"],"received":"2024-01-01T10:00:00Z","size":1834,"uidl":"00000001655a3f00"}
//	{"kind":"end","users":3,"mailboxes":9,"messages":1630,"time":...}
//
// The header comes first and the end line last; each user's mailboxes follow the user's line,
// and each mailbox's messages follow the mailbox's line, in UID order. A file without its end
// line (cut short, or edited) is refused.
type (
	userLine struct {
		Kind         string   `json:"kind"`
		User         string   `json:"user"`
		MailLocation string   `json:"mail_location,omitempty"`
		Unknown      string   `json:"unknown,omitempty"`
		Error        string   `json:"error,omitempty"`
		Subscribed   []string `json:"subscribed,omitempty"`
		POP3Error    string   `json:"pop3_error,omitempty"`
	}
	mailboxLine struct {
		Kind        string `json:"kind"`
		User        string `json:"user"`
		Mailbox     string `json:"mailbox"`
		NoSelect    bool   `json:"noselect,omitempty"`
		UIDValidity uint32 `json:"uidvalidity,omitempty"`
		UIDNext     uint32 `json:"uidnext,omitempty"`
		Messages    int    `json:"messages"`
	}
	messageLine struct {
		Kind     string    `json:"kind"`
		User     string    `json:"user"`
		Mailbox  string    `json:"mailbox"`
		UID      uint32    `json:"uid"`
		Flags    []string  `json:"flags"`
		Received time.Time `json:"received"`
		Size     int64     `json:"size"`
		UIDL     string    `json:"uidl,omitempty"`
		SHA256   string    `json:"sha256,omitempty"`
	}
	endLine struct {
		Kind      string    `json:"kind"`
		Users     int       `json:"users"`
		Mailboxes int       `json:"mailboxes"`
		Messages  int       `json:"messages"`
		Time      time.Time `json:"time"`
	}
)

const (
	kindRecording = "recording"
	kindUser      = "user"
	kindMailbox   = "mailbox"
	kindMessage   = "message"
	kindEnd       = "end"
)

// Writer writes a recording into a temporary file beside its final name, which it takes only
// at Commit: a recording is whole under its name or not there, whatever happens to the run.
type Writer struct {
	f   *wholefile.File
	bw  *bufio.Writer
	enc *json.Encoder
	end endLine
}

// Create starts a recording to be committed as path. The file is created mode 0600 (a
// recording lists every user's folders and message dates). Unless force is set, a file at path
// is never replaced: Create's error, and Commit's when one appears meanwhile, then match
// fs.ErrExist, and the file is left as it was. Temporary files of recordings to path whose
// process died are removed.
func Create(path string, force bool) (*Writer, error) {
	f, err := wholefile.Create(path, wholefile.Options{Mode: 0o600, Replace: force})
	if err != nil {
		return nil, fmt.Errorf("dovecotview: %w", err)
	}
	w := &Writer{f: f, bw: bufio.NewWriterSize(f, 256<<10), end: endLine{Kind: kindEnd}}
	w.enc = json.NewEncoder(w.bw)
	w.enc.SetEscapeHTML(false)
	return w, nil
}

// WriteHeader writes the header; it must come first.
func (w *Writer) WriteHeader(h Header) error {
	h.Kind = kindRecording
	h.Format = FormatVersion
	h.Time = h.Time.UTC()
	return w.line(h)
}

// WriteUser writes u, its mailboxes and their messages.
func (w *Writer) WriteUser(u *User) error {
	w.end.Users++
	if err := w.line(userLine{Kind: kindUser, User: u.Name, MailLocation: u.MailLocation, Unknown: u.Unknown,
		Error: u.Error, Subscribed: u.Subscribed, POP3Error: u.POP3Error}); err != nil {
		return err
	}
	for _, m := range u.Mailboxes {
		w.end.Mailboxes++
		if err := w.line(mailboxLine{Kind: kindMailbox, User: u.Name, Mailbox: m.Name, NoSelect: m.NoSelect,
			UIDValidity: m.UIDValidity, UIDNext: m.UIDNext, Messages: m.Count}); err != nil {
			return err
		}
		for _, msg := range m.Messages {
			w.end.Messages++
			flags := msg.Flags
			if flags == nil {
				flags = []string{}
			}
			if err := w.line(messageLine{Kind: kindMessage, User: u.Name, Mailbox: m.Name, UID: msg.UID, Flags: flags,
				Received: msg.Received.UTC(), Size: msg.Size, UIDL: msg.UIDL, SHA256: msg.SHA256}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Writer) line(v any) error {
	if err := w.enc.Encode(v); err != nil {
		return fmt.Errorf("dovecotview: writing %s: %w", w.f.Name(), err)
	}
	return nil
}

// Commit ends the recording, makes it durable and gives it its name. On error the temporary
// file is removed and nothing is at path that was not there before.
func (w *Writer) Commit(now time.Time) error {
	w.end.Time = now.UTC()
	if err := w.line(w.end); err != nil {
		w.Abort()
		return err
	}
	if err := w.bw.Flush(); err != nil {
		err = fmt.Errorf("dovecotview: writing %s: %w", w.f.Name(), err)
		w.Abort()
		return err
	}
	if err := w.f.Commit(); err != nil {
		return fmt.Errorf("dovecotview: %w", err)
	}
	return nil
}

// Abort removes the temporary file; the recording is not made.
func (w *Writer) Abort() { w.f.Abort() }

// File is a recording opened for reading. Users are read one at a time, so that comparing
// two recordings of a large server holds one user's messages in memory, not all of them.
type File struct {
	Header Header
	// Mailboxes and Messages are the totals of the end line.
	Mailboxes, Messages int

	path  string
	users []string
	spans map[string][2]int64 // user -> start and end offset of their lines
}

// Open reads and checks the whole recording at path: its header, the order of its lines and
// its end line. Its errors name the file and the line.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dovecotview: %w", err)
	}
	defer fd.Close()
	f := &File{path: path, spans: map[string][2]int64{}}
	r := bufio.NewReaderSize(fd, 256<<10)
	var (
		off    int64
		n      int
		b      builder
		cur    string
		ended  bool
		counts endLine
	)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("dovecotview: %s line %d: %s", path, n, fmt.Sprintf(format, args...))
	}
	// closeUser ends the current user's lines where the line starting at end begins.
	closeUser := func(end int64) {
		if cur != "" {
			f.spans[cur] = [2]int64{f.spans[cur][0], end}
		}
	}
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("dovecotview: %w", err)
		}
		n++
		start := off
		off += int64(len(line))
		if ended {
			return nil, bad("text after the end line")
		}
		kind, err := lineKind(line)
		if err != nil {
			return nil, bad("%v", err)
		}
		if n == 1 {
			if kind != kindRecording {
				return nil, bad("not a maildirmig recording (no header line)")
			}
			if err := decodeStrict(line, &f.Header); err != nil {
				return nil, bad("%v", err)
			}
			if f.Header.Format != FormatVersion {
				return nil, bad("format %d, this maildirmig reads format %d", f.Header.Format, FormatVersion)
			}
			continue
		}
		switch kind {
		case kindUser:
			closeUser(start)
			if err := b.add(kind, line); err != nil {
				return nil, bad("%v", err)
			}
			cur = b.user.Name
			if _, dup := f.spans[cur]; dup {
				return nil, bad("user %s recorded twice", cur)
			}
			f.users = append(f.users, cur)
			f.spans[cur] = [2]int64{start, 0}
			counts.Users++
			// Only the user's name and order are kept; User reads the rest again.
			b.user.Mailboxes = nil
		case kindMailbox, kindMessage:
			if err := b.add(kind, line); err != nil {
				return nil, bad("%v", err)
			}
			if kind == kindMailbox {
				counts.Mailboxes++
				// Keep the names, which add checks for duplicates, not the messages.
				for i := range b.user.Mailboxes[:len(b.user.Mailboxes)-1] {
					b.user.Mailboxes[i].Messages = nil
				}
			} else {
				counts.Messages++
				// The last message is enough to check that UIDs ascend.
				m := &b.user.Mailboxes[len(b.user.Mailboxes)-1]
				m.Messages = []Message{m.Messages[len(m.Messages)-1]}
			}
		case kindEnd:
			closeUser(start)
			cur = ""
			var e endLine
			if err := decodeStrict(line, &e); err != nil {
				return nil, bad("%v", err)
			}
			if e.Users != counts.Users || e.Mailboxes != counts.Mailboxes || e.Messages != counts.Messages {
				return nil, bad("the end line counts %d users, %d mailboxes, %d messages; the file holds %d, %d, %d",
					e.Users, e.Mailboxes, e.Messages, counts.Users, counts.Mailboxes, counts.Messages)
			}
			f.Mailboxes, f.Messages = e.Mailboxes, e.Messages
			ended = true
		default:
			return nil, bad("unknown kind %q", kind)
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("dovecotview: %s is empty", path)
	}
	if !ended {
		return nil, fmt.Errorf("dovecotview: %s has no end line: the recording was cut short", path)
	}
	return f, nil
}

// Users returns the names of the users recorded, in the order of the file.
func (f *File) Users() []string { return f.users }

// Has reports whether user was recorded.
func (f *File) Has(user string) bool {
	_, ok := f.spans[user]
	return ok
}

// User reads one user's recording.
func (f *File) User(name string) (*User, error) {
	span, ok := f.spans[name]
	if !ok {
		return nil, fmt.Errorf("dovecotview: %s: no user %s", f.path, name)
	}
	fd, err := os.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("dovecotview: %w", err)
	}
	defer fd.Close()
	r := bufio.NewReaderSize(io.NewSectionReader(fd, span[0], span[1]-span[0]), 256<<10)
	var b builder
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			kind, kerr := lineKind(line)
			if kerr == nil {
				kerr = b.add(kind, line)
			}
			if kerr != nil {
				return nil, fmt.Errorf("dovecotview: %s: user %s: %v (changed since it was opened?)", f.path, name, kerr)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("dovecotview: %w", err)
		}
	}
	if b.user == nil || b.user.Name != name {
		return nil, fmt.Errorf("dovecotview: %s: user %s not where it was (changed since it was opened?)", f.path, name)
	}
	return b.user, nil
}

// builder assembles a user from their lines, checking that each line belongs where it is.
type builder struct {
	user *User
}

func (b *builder) add(kind string, line []byte) error {
	switch kind {
	case kindUser:
		var l userLine
		if err := decodeStrict(line, &l); err != nil {
			return err
		}
		if l.User == "" {
			return errors.New("a user line without a user name")
		}
		b.user = &User{Name: l.User, MailLocation: l.MailLocation, Unknown: l.Unknown, Error: l.Error,
			Subscribed: l.Subscribed, POP3Error: l.POP3Error}
	case kindMailbox:
		var l mailboxLine
		if err := decodeStrict(line, &l); err != nil {
			return err
		}
		if b.user == nil || l.User != b.user.Name {
			return fmt.Errorf("mailbox %q of user %s outside that user's lines", l.Mailbox, l.User)
		}
		if b.user.mailbox(l.Mailbox) != nil {
			return fmt.Errorf("user %s: mailbox %q recorded twice", l.User, l.Mailbox)
		}
		b.user.Mailboxes = append(b.user.Mailboxes, Mailbox{Name: l.Mailbox, NoSelect: l.NoSelect,
			UIDValidity: l.UIDValidity, UIDNext: l.UIDNext, Count: l.Messages})
	case kindMessage:
		var l messageLine
		if err := decodeStrict(line, &l); err != nil {
			return err
		}
		if b.user == nil || len(b.user.Mailboxes) == 0 || l.User != b.user.Name || l.Mailbox != b.user.Mailboxes[len(b.user.Mailboxes)-1].Name {
			return fmt.Errorf("message %d of user %s, mailbox %q, outside that mailbox's lines", l.UID, l.User, l.Mailbox)
		}
		m := &b.user.Mailboxes[len(b.user.Mailboxes)-1]
		if n := len(m.Messages); n > 0 && m.Messages[n-1].UID >= l.UID {
			return fmt.Errorf("user %s, mailbox %q: message %d after %d (UIDs must ascend)", l.User, l.Mailbox, l.UID, m.Messages[n-1].UID)
		}
		m.Messages = append(m.Messages, Message{UID: l.UID, Flags: l.Flags, Received: l.Received, Size: l.Size, UIDL: l.UIDL, SHA256: l.SHA256})
	default:
		return fmt.Errorf("a %q line among a user's lines", kind)
	}
	return nil
}

// lineKind returns the kind of a line.
func lineKind(line []byte) (string, error) {
	var k struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(line, &k); err != nil {
		return "", fmt.Errorf("not JSON: %v", err)
	}
	if k.Kind == "" {
		return "", errors.New("no kind")
	}
	return k.Kind, nil
}

// decodeStrict decodes line into v, refusing fields v does not have: a typo in a hand-made or
// edited recording must not pass silently for an absent value.
func decodeStrict(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
