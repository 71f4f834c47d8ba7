package dovecotview

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Again is why a client would download mail again.
type Again int

// The reasons. A client that keeps mail on the server knows each message by its mailbox,
// UIDVALIDITY and UID (IMAP), or by its UIDL (POP3): when one of those changes, it takes the
// message for a new one and downloads it again, or loses its copy.
const (
	AgainNo          Again = iota
	AgainUIDValidity       // a mailbox's UIDVALIDITY changed: IMAP clients download all of it
	AgainUID               // a message has another UID
	AgainUIDL              // a message has another POP3 UIDL, or none
	AgainMissing           // a message is gone (its mailbox, or the user, with it)
)

// Difference is one thing that differs between two recordings of a user.
type Difference struct {
	Mailbox string // "" for the user as a whole
	UID     uint32 // the message's UID before; 0 for a mailbox or the user
	What    string // what differs, in words
	// Matters is false for what no user notices (see Compare).
	Matters bool
	// Again is why clients would download Messages messages again; AgainNo for none.
	Again    Again
	Messages int
	// kind groups per-message differences of one sort in a mailbox, so that a report can
	// shorten a long run of them.
	kind string
}

// String writes d as a report line, without the user's name.
func (d Difference) String() string {
	s := d.What
	switch {
	case d.UID != 0:
		s = fmt.Sprintf("mailbox %q: UID %d: %s", d.Mailbox, d.UID, s)
	case d.Mailbox != "":
		s = fmt.Sprintf("mailbox %q: %s", d.Mailbox, s)
	}
	if !d.Matters {
		s = "note: " + s
	}
	return s
}

// UserDiff is the comparison of one user's recordings.
type UserDiff struct {
	User string
	// Uncompared says why the user could not be compared ("" when compared).
	Uncompared  string
	Differences []Difference
}

// Matters reports whether a difference that matters was found.
func (d *UserDiff) Matters() bool {
	for _, x := range d.Differences {
		if x.Matters {
			return true
		}
	}
	return false
}

// Compare compares what one user saw before and after, as recorded with the headers hb and
// ha; a nil User was not recorded. What matters:
//
//   - a mailbox gone, or new, or one that was selectable and is no longer;
//   - a mailbox's UIDVALIDITY, or a UIDNEXT that went down (UIDs would be given again);
//   - a message gone, new below the old UIDNEXT, or with another UID (found by its received
//     date, size and hash);
//   - a message's flags and keywords, received date, size, POP3 UIDL, or hash (when both
//     recordings have one);
//   - a subscription gone or new; POP3 UIDLs recorded before but not after;
//   - a user Dovecot serves in one recording and not in the other.
//
// Reported but not mattering ("note"): a \Noselect parent that comes or goes, a UIDNEXT that
// went up, messages new at or above the old UIDNEXT (mail that arrived in between), a message
// count that differs only as the messages do. \Recent was never recorded.
func Compare(hb, ha Header, before, after *User) UserDiff {
	d := UserDiff{}
	switch {
	case before == nil && after == nil:
		return d
	case before == nil:
		d.User, d.Uncompared = after.Name, "recorded after only"
		return d
	case after == nil:
		d.User, d.Uncompared = before.Name, "recorded before only"
		return d
	}
	d.User = before.Name
	switch {
	case before.Error != "":
		d.Uncompared = "could not be recorded before: " + before.Error
		return d
	case after.Error != "":
		d.Uncompared = "could not be recorded after: " + after.Error
		return d
	case before.Unknown != "" && after.Unknown != "":
		return d
	case after.Unknown != "":
		n := 0
		for _, mb := range before.Mailboxes {
			n += len(mb.Messages)
		}
		d.add(Difference{What: "Dovecot no longer serves this user: " + after.Unknown, Matters: true, Again: AgainMissing, Messages: n})
		return d
	case before.Unknown != "":
		d.add(Difference{What: "Dovecot did not serve this user before: " + before.Unknown, Matters: true})
		return d
	}

	for _, s := range before.Subscribed {
		if !slices.Contains(after.Subscribed, s) {
			d.add(Difference{What: fmt.Sprintf("subscription %q is missing after", s), Matters: true})
		}
	}
	for _, s := range after.Subscribed {
		if !slices.Contains(before.Subscribed, s) {
			d.add(Difference{What: fmt.Sprintf("subscription %q is new after", s), Matters: true})
		}
	}

	whyNotBefore, whyNotAfter := pop3Missing(hb, before), pop3Missing(ha, after)
	switch {
	case whyNotBefore == "" && whyNotAfter != "":
		n := 0
		if inbox := before.mailbox("INBOX"); inbox != nil {
			n = len(inbox.Messages)
		}
		d.add(Difference{What: "POP3 UIDLs were recorded before but not after (" + whyNotAfter + "): POP3 clients would download again",
			Matters: true, Again: AgainUIDL, Messages: n})
	case whyNotBefore != "" && whyNotAfter == "":
		d.add(Difference{What: "POP3 UIDLs not compared: none were recorded before (" + whyNotBefore + ")"})
	}
	uidls := whyNotBefore == "" && whyNotAfter == ""
	hashes := hb.Hash != "" && hb.Hash == ha.Hash

	for _, b := range before.Mailboxes {
		a := after.mailbox(b.Name)
		switch {
		case a == nil && b.NoSelect:
			d.add(Difference{Mailbox: b.Name, What: "is no longer listed (\\Noselect before)"})
		case a == nil:
			d.add(Difference{Mailbox: b.Name, What: fmt.Sprintf("is missing after (%s before)", messages(len(b.Messages))),
				Matters: true, Again: AgainMissing, Messages: len(b.Messages)})
		case b.NoSelect && a.NoSelect:
		case b.NoSelect:
			d.add(Difference{Mailbox: b.Name, What: fmt.Sprintf("is selectable after (\\Noselect before), with %s", messages(len(a.Messages))),
				Matters: len(a.Messages) > 0})
		case a.NoSelect:
			d.add(Difference{Mailbox: b.Name, What: fmt.Sprintf("is \\Noselect after: its %s are missing", messages(len(b.Messages))),
				Matters: true, Again: AgainMissing, Messages: len(b.Messages)})
		default:
			d.mailbox(&b, a, uidls, hashes)
		}
	}
	for _, a := range after.Mailboxes {
		if before.mailbox(a.Name) != nil {
			continue
		}
		if a.NoSelect {
			d.add(Difference{Mailbox: a.Name, What: "is listed after only (\\Noselect)"})
		} else {
			d.add(Difference{Mailbox: a.Name, What: fmt.Sprintf("is new after (%s)", messages(len(a.Messages))), Matters: true})
		}
	}
	return d
}

// pop3Missing returns "" when the user's POP3 UIDLs were recorded, else why not.
func pop3Missing(h Header, u *User) string {
	switch {
	case !h.POP3:
		return "pop3 is not among Dovecot's protocols"
	case u.POP3Error != "":
		return u.POP3Error
	}
	return ""
}

func (d *UserDiff) add(x Difference) { d.Differences = append(d.Differences, x) }

// mailbox compares a mailbox selectable in both recordings.
func (d *UserDiff) mailbox(b, a *Mailbox, uidls, hashes bool) {
	if b.UIDValidity != a.UIDValidity {
		d.add(Difference{Mailbox: b.Name, What: fmt.Sprintf("UIDVALIDITY %d -> %d: IMAP clients would download its %s again", b.UIDValidity, a.UIDValidity, messages(len(b.Messages))),
			Matters: true, Again: AgainUIDValidity, Messages: len(b.Messages)})
		if b.Count != a.Count {
			d.add(Difference{Mailbox: b.Name, What: fmt.Sprintf("%s before, %d after", messages(b.Count), a.Count)})
		}
		return
	}
	afterByUID := make(map[uint32]*Message, len(a.Messages))
	for i := range a.Messages {
		afterByUID[a.Messages[i].UID] = &a.Messages[i]
	}
	var gone []*Message
	seen := make(map[uint32]bool, len(b.Messages))
	for i := range b.Messages {
		m := &b.Messages[i]
		if n, ok := afterByUID[m.UID]; ok {
			seen[m.UID] = true
			d.message(b.Name, m, n, uidls, hashes)
		} else {
			gone = append(gone, m)
		}
	}
	var added []*Message
	for i := range a.Messages {
		if !seen[a.Messages[i].UID] {
			added = append(added, &a.Messages[i])
		}
	}
	// A message that is gone under its UID may be there under another one.
	for _, m := range gone {
		j := slices.IndexFunc(added, func(n *Message) bool { return sameMessage(m, n, hashes) })
		if j < 0 {
			d.add(Difference{Mailbox: b.Name, UID: m.UID, What: "is missing after", Matters: true, Again: AgainMissing, Messages: 1, kind: "missing"})
			continue
		}
		n := added[j]
		added = slices.Delete(added, j, j+1)
		d.add(Difference{Mailbox: b.Name, UID: m.UID, What: fmt.Sprintf("is UID %d after", n.UID), Matters: true, Again: AgainUID, Messages: 1, kind: "uid"})
		d.message(b.Name, m, n, uidls, hashes)
	}
	arrived := 0
	for _, n := range added {
		if n.UID >= b.UIDNext {
			arrived++
			continue
		}
		d.add(Difference{Mailbox: b.Name, UID: n.UID, What: fmt.Sprintf("is new after, below UIDNEXT %d before", b.UIDNext), Matters: true, kind: "new"})
	}
	if arrived > 0 {
		d.add(Difference{Mailbox: b.Name, What: fmt.Sprintf("%s arrived since (UID %d and up)", messages(arrived), b.UIDNext)})
	}
	switch {
	case a.UIDNext < b.UIDNext:
		d.add(Difference{Mailbox: b.Name, What: fmt.Sprintf("UIDNEXT %d -> %d: UIDs would be given again, and clients take new mail for mail they have", b.UIDNext, a.UIDNext), Matters: true})
	case a.UIDNext > b.UIDNext:
		d.add(Difference{Mailbox: b.Name, What: fmt.Sprintf("UIDNEXT %d -> %d", b.UIDNext, a.UIDNext)})
	}
	if b.Count != a.Count && b.Count == len(b.Messages) && a.Count == len(a.Messages) {
		d.add(Difference{Mailbox: b.Name, What: fmt.Sprintf("%s before, %d after", messages(b.Count), a.Count)})
	} else if b.Count != a.Count {
		d.add(Difference{Mailbox: b.Name, What: fmt.Sprintf("STATUS MESSAGES %d -> %d", b.Count, a.Count), Matters: true})
	}
}

// sameMessage reports whether n, under another UID, is the message m: same received date and
// size, and same hash when both recordings have one.
func sameMessage(m, n *Message, hashes bool) bool {
	if !m.Received.Equal(n.Received) || m.Size != n.Size {
		return false
	}
	return !hashes || m.SHA256 == n.SHA256
}

// message compares one message as it was (m) and is (n).
func (d *UserDiff) message(mailbox string, m, n *Message, uidls, hashes bool) {
	add := func(kind, what string, again Again) {
		x := Difference{Mailbox: mailbox, UID: m.UID, What: what, Matters: true, Again: again, kind: kind}
		if again != AgainNo {
			x.Messages = 1
		}
		d.add(x)
	}
	if !slices.Equal(m.Flags, n.Flags) {
		add("flags", fmt.Sprintf("flags (%s) -> (%s)", strings.Join(m.Flags, " "), strings.Join(n.Flags, " ")), AgainNo)
	}
	if !m.Received.Equal(n.Received) {
		add("received", fmt.Sprintf("received %s -> %s", m.Received.UTC().Format(time.RFC3339), n.Received.UTC().Format(time.RFC3339)), AgainNo)
	}
	if m.Size != n.Size {
		add("size", fmt.Sprintf("size %d -> %d", m.Size, n.Size), AgainNo)
	}
	if uidls && m.UIDL != n.UIDL {
		add("uidl", fmt.Sprintf("POP3 UIDL %s -> %s", orNone(m.UIDL), orNone(n.UIDL)), AgainUIDL)
	}
	if hashes && m.SHA256 != n.SHA256 && m.SHA256 != "" && n.SHA256 != "" {
		add("content", fmt.Sprintf("content differs (sha256 %.12s -> %.12s)", m.SHA256, n.SHA256), AgainNo)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func messages(n int) string {
	if n == 1 {
		return "1 message"
	}
	return fmt.Sprintf("%d messages", n)
}

// CompareHeaders returns notes on how two recordings were made differently: the settings that
// decide what clients see, Dovecot's version, hashes.
func CompareHeaders(hb, ha Header) []string {
	var notes []string
	for _, s := range []struct{ name, b, a string }{
		{"mail_location", hb.MailLocation, ha.MailLocation},
		{"namespace separator", hb.Separator, ha.Separator},
		{"pop3_uidl_format", hb.POP3UIDLFormat, ha.POP3UIDLFormat},
		{"Dovecot", hb.Dovecot, ha.Dovecot},
	} {
		if s.b != s.a {
			notes = append(notes, fmt.Sprintf("%s %q -> %q", s.name, s.b, s.a))
		}
	}
	if hb.MailLocation == ha.MailLocation && hb.MailLocation != "" {
		notes = append(notes, fmt.Sprintf("both recordings were made with mail_location %q: was one made before the switch and the other after it?", hb.MailLocation))
	}
	if hb.POP3 != ha.POP3 {
		notes = append(notes, fmt.Sprintf("pop3 among Dovecot's protocols: %t -> %t", hb.POP3, ha.POP3))
	}
	switch {
	case hb.Hash == "" && ha.Hash == "":
	case hb.Hash != ha.Hash:
		notes = append(notes, "message contents not compared: only one recording was made with --hash")
	}
	return notes
}

// Summary counts the outcome of comparing two recordings.
type Summary struct {
	Users, Differ, Uncompared int
	// Again counts, per reason, the messages clients would download again; Mailboxes counts
	// the mailboxes whose UIDVALIDITY changed.
	Again     map[Again]int
	Mailboxes int
}

// Add counts d.
func (s *Summary) Add(d UserDiff) {
	s.Users++
	switch {
	case d.Uncompared != "":
		s.Uncompared++
	case d.Matters():
		s.Differ++
	}
	for _, x := range d.Differences {
		if x.Again == AgainNo || x.Messages == 0 {
			continue
		}
		if s.Again == nil {
			s.Again = map[Again]int{}
		}
		s.Again[x.Again] += x.Messages
		if x.Again == AgainUIDValidity {
			s.Mailboxes++
		}
	}
}

// DownloadAgain reports whether any client would download mail again.
func (s *Summary) DownloadAgain() bool { return s.Mailboxes > 0 || len(s.Again) > 0 }

// String is the summary line: how many users differ, and whether any client downloads again,
// and why.
func (s *Summary) String() string {
	differ := "differ"
	if s.Differ == 1 {
		differ = "differs"
	}
	line := fmt.Sprintf("%d user%s compared, %d %s", s.Users, plural(s.Users), s.Differ, differ)
	if s.Uncompared > 0 {
		line += fmt.Sprintf(", %d could not be compared", s.Uncompared)
	}
	if !s.DownloadAgain() {
		return line + "; no client downloads again"
	}
	var why []string
	if s.Mailboxes > 0 {
		boxes := "mailboxes"
		if s.Mailboxes == 1 {
			boxes = "mailbox"
		}
		why = append(why, fmt.Sprintf("UIDVALIDITY changed in %d %s (%s)", s.Mailboxes, boxes, messages(s.Again[AgainUIDValidity])))
	}
	if n := s.Again[AgainUID]; n > 0 {
		why = append(why, fmt.Sprintf("%d UID%s changed", n, plural(n)))
	}
	if n := s.Again[AgainUIDL]; n > 0 {
		why = append(why, fmt.Sprintf("%d POP3 UIDL%s changed", n, plural(n)))
	}
	if n := s.Again[AgainMissing]; n > 0 {
		why = append(why, messages(n)+" missing")
	}
	return line + "; clients would download again: " + strings.Join(why, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// shown is how many per-message differences of one sort in one mailbox Lines shows before it
// sums up the rest.
const shown = 5

// Lines returns d as report lines, each starting with the user's name. Unless all, a long run
// of per-message differences of one sort in a mailbox (every UIDL, after a wrong
// pop3_uidl_format) is shortened to its first few and a count of the rest.
func (d *UserDiff) Lines(all bool) []string {
	if d.Uncompared != "" {
		return []string{d.User + ": could not be compared: " + d.Uncompared}
	}
	var out []string
	type group struct{ mailbox, kind string }
	count := map[group]int{}
	for _, x := range d.Differences {
		count[group{x.Mailbox, x.kind}]++
	}
	done := map[group]int{}
	for _, x := range d.Differences {
		g := group{x.Mailbox, x.kind}
		if x.kind != "" && !all && count[g] > shown+1 {
			done[g]++
			switch {
			case done[g] <= shown:
			case done[g] == shown+1:
				out = append(out, fmt.Sprintf("%s: mailbox %q: and %d more messages %s (compare --all lists every one)",
					d.User, x.Mailbox, count[g]-shown, kindWords[x.kind]))
				continue
			default:
				continue
			}
		}
		out = append(out, d.User+": "+x.String())
	}
	return out
}

// kindWords says how the messages of one kind of per-message difference differ.
var kindWords = map[string]string{
	"missing":  "missing after",
	"uid":      "with another UID",
	"new":      "new after",
	"flags":    "with other flags",
	"received": "with another received date",
	"size":     "with another size",
	"uidl":     "with another POP3 UIDL",
	"content":  "with other content",
}
