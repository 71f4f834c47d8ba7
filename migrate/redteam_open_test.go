//go:build redteam

package migrate

// Findings left open, as tests that fail on what maildirmig does today. Run them with
//
//	go test -tags redteam ./migrate -run TestRedteamOpen

import (
	"testing"
)

// Anyone who can send mail can make a user's migration fail for good: the first message of an
// empty spool carries "X-IMAPbase: 1 4294967294" (Postfix's local(8) keeps it), which leaves
// no UID for any message. Dovecot, meeting it, logs "Out of UIDs, renumbering them in mbox"
// and shows the mailbox under a new UIDVALIDITY with UIDs from 1 (seen with doveadm on this
// Dovecot); maildirmig fails the user on every pass: "no UIDs left under UIDVALIDITY 1".
func TestRedteamOpenForgedIMAPBase(t *testing.T) {
	tr := newTree(t, "ib")
	forged := "From evil@example.org Mon Jan  1 09:00:00 2024\nX-IMAPbase: 1 4294967294\nFrom: evil@example.org\nSubject: forged\n\nhi\n\n"
	tr.write("var/mail/ib", forged+msgA+msgB, "ib")
	_, res := run(t, tr.config())
	if r := res["ib"]; r.Err != nil || r.Stats.Written != 3 || r.Stats.UIDValidity == 1 {
		t.Errorf("a spool whose first message forges X-IMAPbase: %+v; want its 3 messages migrated, renumbered under a new UIDVALIDITY as Dovecot shows them", r)
	}
}
