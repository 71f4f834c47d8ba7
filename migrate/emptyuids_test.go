package migrate

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"
)

// dovecotLog is a transaction log as Dovecot writes one for a new mailbox index: its header,
// then a header update setting UIDVALIDITY and one appending the UIDs (the format is read by
// internal/dovecotindex; e2e's TestEmptyMailboxesKeepUIDs has a real Dovecot write it).
func dovecotLog(validity uint32, uids ...uint32) string {
	le := binary.LittleEndian
	b := make([]byte, 40)
	b[0], b[1], b[32] = 1, 3, 1
	le.PutUint16(b[2:], 40)
	le.PutUint32(b[4:], 77)
	le.PutUint32(b[8:], 1)
	record := func(typ uint32, data []byte) {
		n := uint32(8+len(data)) >> 2
		b = append(b, 0x80|byte(n>>21&0x7f), 0x80|byte(n>>14&0x7f), 0x80|byte(n>>7&0x7f), 0x80|byte(n&0x7f))
		b = le.AppendUint32(b, typ)
		b = append(b, data...)
	}
	update := le.AppendUint16(nil, 24)
	update = le.AppendUint16(update, 4)
	record(0x10000020, le.AppendUint32(update, validity))
	var appends []byte
	for _, u := range uids {
		appends = le.AppendUint32(appends, u)
		appends = append(appends, 0, 0, 0, 0)
	}
	record(0x10000002, appends)
	return string(b)
}

// uidlistHeader returns the first line of a Maildir's dovecot-uidlist, "" when there is none.
func uidlistHeader(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path + "/dovecot-uidlist")
	if os.IsNotExist(err) {
		return ""
	}
	must(t, err)
	line, _, _ := strings.Cut(string(b), "\n")
	// "3 V<uidvalidity> N<next uid> G<guid>": the GUID is the Maildir's own.
	f := strings.Fields(line)
	return strings.Join(f[:min(len(f), 3)], " ")
}

// TestRunEmptyMailboxes: an empty spool and an empty folder get their Maildir with the
// UIDVALIDITY and next UID of Dovecot's index; a later run, before anything was migrated,
// follows the index's next UID; a user without an index gets no Maildir, as before; an index
// that cannot be read is a warning, and no user fails for it.
func TestRunEmptyMailboxes(t *testing.T) {
	tr := newTree(t, "ann", "ben", "cid")
	for _, u := range []string{"ann", "ben", "cid"} {
		tr.write("var/mail/"+u, "", u)
	}
	for _, d := range []string{"mail", "mail/.imap", "mail/.imap/INBOX", "mail/.imap/Sent"} {
		tr.mkdir("home/ann/"+d, 0o700, "ann")
	}
	tr.write("home/ann/mail/.imap/INBOX/dovecot.index.log", dovecotLog(1700000001, 1, 2, 3), "ann")
	tr.write("home/ann/mail/.imap/Sent/dovecot.index.log", dovecotLog(1700000002, 5), "ann")
	tr.write("home/ann/mail/Sent", "", "ann")
	for _, d := range []string{"mail", "mail/.imap", "mail/.imap/INBOX"} {
		tr.mkdir("home/cid/"+d, 0o700, "cid")
	}
	tr.write("home/cid/mail/.imap/INBOX/dovecot.index.log", "not an index", "cid")
	cfg := tr.config()
	var warned []string
	cfg.Notice = func(user string, e Event) {
		if e.Kind == EventIndexUnreadable {
			warned = append(warned, user+": "+e.Detail)
		}
	}
	sum, res := run(t, cfg)
	if sum.Failed != 0 || res["ann"].Outcome != OutcomeMigrated || res["ben"].Outcome != OutcomeUpToDate || res["cid"].Outcome != OutcomeUpToDate {
		t.Fatalf("%+v: ann %s %v, ben %s, cid %s %v", sum, res["ann"].Outcome, res["ann"].Err, res["ben"].Outcome, res["cid"].Outcome, res["cid"].Err)
	}
	if got := uidlistHeader(t, tr.path("home/ann/Maildir")); got != "3 V1700000001 N4" {
		t.Errorf("ann's INBOX: dovecot-uidlist %q, want UIDVALIDITY 1700000001, next UID 4", got)
	}
	if got := uidlistHeader(t, tr.path("home/ann/Maildir/.Sent")); got != "3 V1700000002 N6" {
		t.Errorf("ann's Sent: dovecot-uidlist %q, want UIDVALIDITY 1700000002, next UID 6", got)
	}
	if st := res["ann"].Stats; st.UIDValidity != 1700000001 || st.NextUID != 4 {
		t.Errorf("ann's result: UIDVALIDITY %d, next UID %d", st.UIDValidity, st.NextUID)
	}
	for _, u := range []string{"ben", "cid"} {
		if _, err := os.Lstat(tr.path("home/" + u + "/Maildir")); err == nil {
			t.Errorf("%s got a Maildir without an index to take UIDs from", u)
		}
	}
	if len(warned) != 1 || !strings.HasPrefix(warned[0], "cid: Dovecot's index of INBOX could not be read") {
		t.Errorf("warnings %q, want one about cid's index", warned)
	}
	kinds := map[string]int{}
	for _, e := range tr.audit() {
		if e["event"] == EventNotice {
			kinds[e["user"].(string)+" "+e["kind"].(string)]++
		}
		if e["event"] == EventUserDone && e["user"] == "ann" && (e["uidvalidity"] != float64(1700000001) || e["next_uid"] != float64(4)) {
			t.Errorf("ann's user-done: uidvalidity %v, next_uid %v", e["uidvalidity"], e["next_uid"])
		}
	}
	if kinds["ann "+EventUIDsFromIndex] != 2 || kinds["cid "+EventIndexUnreadable] != 1 {
		t.Errorf("audit notices %v", kinds)
	}

	// Mail delivered to the mbox and expunged since moved Dovecot's next UID on.
	tr.write("home/ann/mail/.imap/INBOX/dovecot.index.log", dovecotLog(1700000001, 1, 2, 3, 4, 5, 6), "ann")
	tr.write("home/ann/mail/.imap/Sent/dovecot.index.log", dovecotLog(1700000002, 5, 9), "ann")
	if sum, _ := run(t, cfg); sum.Failed != 0 {
		t.Fatalf("second run: %+v", sum)
	}
	if got := uidlistHeader(t, tr.path("home/ann/Maildir")); got != "3 V1700000001 N7" {
		t.Errorf("ann's INBOX after the second run: dovecot-uidlist %q, want next UID 7", got)
	}
	if got := uidlistHeader(t, tr.path("home/ann/Maildir/.Sent")); got != "3 V1700000002 N10" {
		t.Errorf("ann's Sent after the second run: dovecot-uidlist %q, want next UID 10", got)
	}
}
