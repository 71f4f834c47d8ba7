package dovecotview

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)

func header() Header {
	return Header{MailLocation: "mbox:~/mail:INBOX=/var/mail/%u", Separator: "/", POP3UIDLFormat: "%08Xu%08Xv", POP3: true, Dovecot: "2.3.19.1"}
}

// alice is a hand-made recording of one user: an INBOX of three messages with UIDLs, a
// folder beneath a \Noselect parent, two subscriptions (one without a mailbox).
func alice() *User {
	msg := func(uid uint32, flags ...string) Message {
		return Message{UID: uid, Flags: append([]string{}, flags...), Received: t0.Add(time.Duration(uid) * time.Hour), Size: 100 + int64(uid),
			UIDL: fmt.Sprintf("%08X%08X", uid, 1700000000), SHA256: strings.Repeat(fmt.Sprint(uid), 64)[:64]}
	}
	return &User{Name: "alice", MailLocation: "mbox:~/mail:INBOX=/var/mail/alice", Subscribed: []string{"Gone", "Lists/dovecot"},
		Mailboxes: []Mailbox{
			{Name: "INBOX", UIDValidity: 1700000000, UIDNext: 4, Count: 3, Messages: []Message{msg(1, `\Seen`), msg(2), msg(3, `$Work`, `\Flagged`)}},
			{Name: "Lists", NoSelect: true},
			{Name: "Lists/dovecot", UIDValidity: 1700000001, UIDNext: 3, Count: 2, Messages: []Message{
				{UID: 1, Flags: []string{`\Seen`}, Received: t0, Size: 50}, {UID: 2, Flags: []string{}, Received: t0, Size: 60}}},
		}}
}

// TestCompare changes alice's recording in one way at a time and checks what Compare finds:
// whether it matters, why clients would download again, and the line that says so.
func TestCompare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		change  func(h *Header, u *User)
		matters bool
		again   map[Again]int // messages per reason
		line    string        // a line of the report, "" for none
	}{
		{"identical", func(*Header, *User) {}, false, nil, ""},
		{"UIDVALIDITY", func(_ *Header, u *User) { u.Mailboxes[0].UIDValidity = 5 },
			true, map[Again]int{AgainUIDValidity: 3}, `alice: mailbox "INBOX": UIDVALIDITY 1700000000 -> 5: IMAP clients would download its 3 messages again`},
		{"UID", func(_ *Header, u *User) {
			inbox := &u.Mailboxes[0]
			m := inbox.Messages[1]
			m.UID = 7
			inbox.Messages = append([]Message{inbox.Messages[0], inbox.Messages[2]}, m)
			inbox.UIDNext = 8
		}, true, map[Again]int{AgainUID: 1}, `alice: mailbox "INBOX": UID 2: is UID 7 after`},
		{"UIDL", func(_ *Header, u *User) { u.Mailboxes[0].Messages[2].UIDL = "d41d8cd98f00b204e9800998ecf8427e" },
			true, map[Again]int{AgainUIDL: 1}, `alice: mailbox "INBOX": UID 3: POP3 UIDL 000000036553F100 -> d41d8cd98f00b204e9800998ecf8427e`},
		{"message missing", func(_ *Header, u *User) {
			inbox := &u.Mailboxes[0]
			inbox.Messages, inbox.Count = inbox.Messages[:2], 2
		}, true, map[Again]int{AgainMissing: 1}, `alice: mailbox "INBOX": UID 3: is missing after`},
		{"folder renamed by the separator", func(h *Header, u *User) {
			h.Separator = "."
			u.Mailboxes[2].Name = "Lists.dovecot"
		}, true, map[Again]int{AgainMissing: 2}, `alice: mailbox "Lists/dovecot": is missing after (2 messages before)`},
		{"flags", func(_ *Header, u *User) { u.Mailboxes[0].Messages[0].Flags = []string{} },
			true, nil, `alice: mailbox "INBOX": UID 1: flags (\Seen) -> ()`},
		{"keywords", func(_ *Header, u *User) { u.Mailboxes[0].Messages[2].Flags = []string{`\Flagged`} },
			true, nil, `alice: mailbox "INBOX": UID 3: flags ($Work \Flagged) -> (\Flagged)`},
		{"received", func(_ *Header, u *User) { u.Mailboxes[0].Messages[0].Received = t0 },
			true, nil, `alice: mailbox "INBOX": UID 1: received 2024-01-01T11:00:00Z -> 2024-01-01T10:00:00Z`},
		{"size", func(_ *Header, u *User) { u.Mailboxes[0].Messages[0].Size = 103 },
			true, nil, `alice: mailbox "INBOX": UID 1: size 101 -> 103`},
		{"content", func(_ *Header, u *User) { u.Mailboxes[0].Messages[0].SHA256 = strings.Repeat("f", 64) },
			true, nil, `alice: mailbox "INBOX": UID 1: content differs (sha256 111111111111 -> ffffffffffff)`},
		{"content without hashes before", func(h *Header, u *User) {
			h.Hash = ""
			u.Mailboxes[0].Messages[0].SHA256 = strings.Repeat("f", 64)
		}, false, nil, ""},
		{"UIDNEXT down", func(_ *Header, u *User) { u.Mailboxes[0].UIDNext = 3 },
			true, nil, `alice: mailbox "INBOX": UIDNEXT 4 -> 3: UIDs would be given again, and clients take new mail for mail they have`},
		{"UIDNEXT up", func(_ *Header, u *User) { u.Mailboxes[0].UIDNext = 9 },
			false, nil, `alice: note: mailbox "INBOX": UIDNEXT 4 -> 9`},
		{"mail arrived since", func(_ *Header, u *User) {
			inbox := &u.Mailboxes[0]
			inbox.Messages = append(inbox.Messages, Message{UID: 4, Flags: []string{}, Received: t0, Size: 9, UIDL: "x"})
			inbox.Count, inbox.UIDNext = 4, 5
		}, false, nil, `alice: note: mailbox "INBOX": 1 message arrived since (UID 4 and up)`},
		{"subscription lost", func(_ *Header, u *User) { u.Subscribed = []string{"Lists/dovecot"} },
			true, nil, `alice: subscription "Gone" is missing after`},
		{"subscription added", func(_ *Header, u *User) { u.Subscribed = append(u.Subscribed, "INBOX") },
			true, nil, `alice: subscription "INBOX" is new after`},
		{"POP3 fails after", func(_ *Header, u *User) {
			u.POP3Error = "doveadm exec pop3: Error: UIDL: Header MD5 not found (pop3_uidl_format=%m not supported by storage?)"
			for i := range u.Mailboxes[0].Messages {
				u.Mailboxes[0].Messages[i].UIDL = ""
			}
		}, true, map[Again]int{AgainUIDL: 3}, `alice: POP3 UIDLs were recorded before but not after (doveadm exec pop3: Error: UIDL: Header MD5 not found (pop3_uidl_format=%m not supported by storage?)): POP3 clients would download again`},
		{"POP3 no longer served", func(h *Header, u *User) {
			h.POP3 = false
			for i := range u.Mailboxes[0].Messages {
				u.Mailboxes[0].Messages[i].UIDL = ""
			}
		}, true, map[Again]int{AgainUIDL: 3}, `alice: POP3 UIDLs were recorded before but not after (pop3 is not among Dovecot's protocols): POP3 clients would download again`},
		{"user no longer served", func(_ *Header, u *User) { *u = User{Name: "alice", Unknown: "userdb lookup: user alice doesn't exist"} },
			true, map[Again]int{AgainMissing: 5}, `alice: Dovecot no longer serves this user: userdb lookup: user alice doesn't exist`},
		{"noselect parent gone", func(_ *Header, u *User) { u.Mailboxes = append(u.Mailboxes[:1], u.Mailboxes[2]) },
			false, nil, `alice: note: mailbox "Lists": is no longer listed (\Noselect before)`},
		{"new folder", func(_ *Header, u *User) {
			u.Mailboxes = append(u.Mailboxes, Mailbox{Name: "Trash", UIDValidity: 9, UIDNext: 1})
		}, true, nil, `alice: mailbox "Trash": is new after (0 messages)`},
		{"folder gone", func(_ *Header, u *User) { u.Mailboxes = u.Mailboxes[:2] },
			true, map[Again]int{AgainMissing: 2}, `alice: mailbox "Lists/dovecot": is missing after (2 messages before)`},
		{"folder no longer selectable", func(_ *Header, u *User) { u.Mailboxes[2] = Mailbox{Name: "Lists/dovecot", NoSelect: true} },
			true, map[Again]int{AgainMissing: 2}, `alice: mailbox "Lists/dovecot": is \Noselect after: its 2 messages are missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hb, ha := header(), header()
			hb.Hash, ha.Hash = HashSHA256, HashSHA256
			after := alice()
			tt.change(&ha, after)
			d := Compare(hb, ha, alice(), after)
			if d.Uncompared != "" {
				t.Fatalf("not compared: %s", d.Uncompared)
			}
			if d.Matters() != tt.matters {
				t.Errorf("Matters() = %t, want %t; differences:\n%s", d.Matters(), tt.matters, strings.Join(d.Lines(true), "\n"))
			}
			var s Summary
			s.Add(d)
			for _, why := range []Again{AgainUIDValidity, AgainUID, AgainUIDL, AgainMissing} {
				if s.Again[why] != tt.again[why] {
					t.Errorf("clients download %d messages again for reason %d, want %d", s.Again[why], why, tt.again[why])
				}
			}
			if s.DownloadAgain() != (len(tt.again) > 0) {
				t.Errorf("DownloadAgain() = %t; summary %q", s.DownloadAgain(), s.String())
			}
			lines := d.Lines(true)
			switch {
			case tt.line == "" && len(lines) > 0 && tt.matters:
				t.Errorf("lines %q, want none", lines)
			case tt.line != "" && !contains(lines, tt.line):
				t.Errorf("lines:\n%s\nwant the line\n%s", strings.Join(lines, "\n"), tt.line)
			}
			if tt.name == "identical" && len(lines) > 0 {
				t.Errorf("identical recordings: lines %q", lines)
			}
		})
	}
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// TestCompareUncompared: a user recorded with an error, or in one recording only, cannot be
// compared, and says why.
func TestCompareUncompared(t *testing.T) {
	t.Parallel()
	h := header()
	failed := &User{Name: "alice", Error: "doveadm fetch: Error: chdir(/home/alice/) failed: Permission denied"}
	for _, tt := range []struct {
		name          string
		before, after *User
		want          string
	}{
		{"error before", failed, alice(), "alice: could not be compared: could not be recorded before: doveadm fetch: Error: chdir(/home/alice/) failed: Permission denied"},
		{"error after", alice(), failed, "alice: could not be compared: could not be recorded after: doveadm fetch: Error: chdir(/home/alice/) failed: Permission denied"},
		{"before only", alice(), nil, "alice: could not be compared: recorded before only"},
		{"after only", nil, alice(), "alice: could not be compared: recorded after only"},
	} {
		d := Compare(h, h, tt.before, tt.after)
		var s Summary
		s.Add(d)
		if lines := d.Lines(false); len(lines) != 1 || lines[0] != tt.want || s.Uncompared != 1 || s.Differ != 0 {
			t.Errorf("%s: lines %q, summary %q; want %q", tt.name, lines, s.String(), tt.want)
		}
	}
}

// TestCompareNewBelowUIDNext: a message under a UID below the old UIDNEXT that was not there
// before cannot be new mail; a client that saw that UID expunged would never fetch it.
func TestCompareNewBelowUIDNext(t *testing.T) {
	t.Parallel()
	before, after := alice(), alice()
	inbox := &before.Mailboxes[0]
	inbox.Messages, inbox.Count = inbox.Messages[:2], 2
	d := Compare(header(), header(), before, after)
	want := `alice: mailbox "INBOX": UID 3: is new after, below UIDNEXT 4 before`
	if !d.Matters() || !contains(d.Lines(true), want) {
		t.Errorf("lines %q, want %q", d.Lines(true), want)
	}
}

// TestSummaryLine: the one line that says whether any client downloads again, and why.
func TestSummaryLine(t *testing.T) {
	t.Parallel()
	var same Summary
	same.Add(Compare(header(), header(), alice(), alice()))
	same.Add(Compare(header(), header(), &User{Name: "root", Unknown: "x"}, &User{Name: "root", Unknown: "x"}))
	if got, want := same.String(), "2 users compared, 0 differ; no client downloads again"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	after := alice()
	after.Mailboxes[0].UIDValidity = 1
	after.Mailboxes = after.Mailboxes[:2]
	var s Summary
	s.Add(Compare(header(), header(), alice(), after))
	s.Add(Compare(header(), header(), alice(), nil))
	want := "2 users compared, 1 differs, 1 could not be compared; clients would download again: UIDVALIDITY changed in 1 mailbox (3 messages), 2 messages missing"
	if got := s.String(); got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

// TestLinesShortened: a wrong pop3_uidl_format changes every UIDL; the report shows the
// first few and counts the rest, unless all are asked for.
func TestLinesShortened(t *testing.T) {
	t.Parallel()
	before, after := alice(), alice()
	for i := range 20 {
		uid := uint32(i + 1)
		m := Message{UID: uid, Flags: []string{}, Received: t0, Size: 10, UIDL: fmt.Sprint(uid)}
		before.Mailboxes[0].Messages = append(before.Mailboxes[0].Messages[:0:0], before.Mailboxes[0].Messages...)
		if i == 0 {
			before.Mailboxes[0].Messages, after.Mailboxes[0].Messages = nil, nil
		}
		before.Mailboxes[0].Messages = append(before.Mailboxes[0].Messages, m)
		m.UIDL = "md5-" + fmt.Sprint(uid)
		after.Mailboxes[0].Messages = append(after.Mailboxes[0].Messages, m)
	}
	for _, u := range []*User{before, after} {
		u.Mailboxes[0].Count, u.Mailboxes[0].UIDNext = 20, 21
	}
	d := Compare(header(), header(), before, after)
	short := d.Lines(false)
	if len(short) != shown+1 || short[shown] != `alice: mailbox "INBOX": and 15 more messages with another POP3 UIDL (compare --all lists every one)` {
		t.Errorf("shortened report:\n%s", strings.Join(short, "\n"))
	}
	if all := d.Lines(true); len(all) != 20 {
		t.Errorf("--all: %d lines, want 20", len(all))
	}
}

// TestCompareHeaders names the settings that changed between the recordings.
func TestCompareHeaders(t *testing.T) {
	t.Parallel()
	hb, ha := header(), header()
	ha.MailLocation, ha.Separator, ha.POP3UIDLFormat = "maildir:~/Maildir", ".", "%m"
	notes := CompareHeaders(hb, ha)
	for _, want := range []string{
		`mail_location "mbox:~/mail:INBOX=/var/mail/%u" -> "maildir:~/Maildir"`,
		`namespace separator "/" -> "."`,
		`pop3_uidl_format "%08Xu%08Xv" -> "%m"`,
	} {
		if !contains(notes, want) {
			t.Errorf("notes %q lack %q", notes, want)
		}
	}
	if notes := CompareHeaders(hb, hb); len(notes) != 1 || !strings.Contains(notes[0], "was one made before the switch") {
		t.Errorf("same mail_location: notes %q", notes)
	}
}
