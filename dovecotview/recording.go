// Package dovecotview records what Dovecot shows each user, and compares two recordings: the
// one taken on the night before the switch (Dovecot serving mbox) and the one taken after it
// (Dovecot serving the Maildirs). A difference that matters is one a user would notice; those
// that make a client download mail again are named as such.
//
// A recording holds, per user, the mailboxes Dovecot lists (with UIDVALIDITY, UIDNEXT and the
// message count of each selectable one), the subscriptions, and per message the UID, the flags
// and keywords, the received date (INTERNALDATE), the size IMAP clients are told (RFC822.SIZE)
// and the UIDL Dovecot's POP3 server gives it; with Recorder.Hash, also a SHA-256 of the
// message as IMAP clients receive it. \Recent is left out: it belongs to a session, and the
// recording's own session takes it, as a client's login would.
//
// Everything is read through Dovecot itself, as root and without passwords, with the server's
// own configuration: doveadm -u USER for the IMAP view, and Dovecot's POP3 server started by
// doveadm exec pop3 -u USER for the UIDLs, which it computes from pop3_uidl_format as it does
// for clients (doveadm fetch pop3.uidl gives only a UIDL stored by the mail storage, empty for
// mbox and for Maildirs that never had one). Reading a mailbox is what a client's login does:
// Dovecot may update its indexes and, on mbox, its X-UID headers. doveadm -u looks users up
// through Dovecot's auth service, so Dovecot must be running.
//
// The file is JSON Lines (see Writer), one line per user, mailbox and message, so that an
// administrator can read it, grep it, feed it to jq and diff two recordings.
package dovecotview

import "time"

// FormatVersion is the version of the file format Writer writes and Open reads.
const FormatVersion = 1

// HashSHA256 names the message hash: SHA-256 of the message as IMAP clients receive it, with
// every line ending in CRLF (Dovecot sends mbox headers with bare LFs, stored or not).
const HashSHA256 = "sha256-crlf"

// Header is what a recording was made with: when, where, by which Dovecot, and the settings
// that decide what clients see.
type Header struct {
	Kind    string    `json:"kind"` // "recording"
	Format  int       `json:"format"`
	Time    time.Time `json:"time"`
	Host    string    `json:"host"`
	Dovecot string    `json:"dovecot"`          // dovecot --version
	Config  string    `json:"config,omitempty"` // the -c FILE given to doveconf and doveadm; "" = Dovecot's own

	// The settings, as doveconf reports them.
	MailLocation   string `json:"mail_location"`
	Separator      string `json:"separator"` // of the inbox namespace
	POP3UIDLFormat string `json:"pop3_uidl_format"`
	// POP3 says whether POP3 UIDLs were recorded: not when pop3 is not among Dovecot's protocols.
	POP3 bool `json:"pop3"`
	// Hash names the message hash recorded (HashSHA256), "" for none.
	Hash string `json:"hash,omitempty"`

	Maildirmig string `json:"maildirmig,omitempty"` // the version of maildirmig that recorded
}

// User is what Dovecot showed one user. At most one of Unknown and Error is set; with either,
// nothing else was recorded.
type User struct {
	Name string
	// MailLocation is the mail location Dovecot used for this user (doveadm user's "mail").
	MailLocation string
	// Unknown says why Dovecot knows no such user (its userdb has none, or refuses the uid).
	Unknown string
	// Error says why the user could not be recorded.
	Error string
	// Subscribed are the subscriptions (LSUB), in Dovecot's order; a name may have no mailbox.
	Subscribed []string
	// POP3Error says why Dovecot's POP3 server could not list the UIDLs; the rest was recorded.
	POP3Error string
	Mailboxes []Mailbox
}

// Mailbox is one mailbox Dovecot lists. A \Noselect one (a parent that holds no messages,
// such as an mbox directory) has only its name.
type Mailbox struct {
	Name        string
	NoSelect    bool
	UIDValidity uint32
	UIDNext     uint32
	Count       int // STATUS MESSAGES
	Messages    []Message
}

// Message is one message, as IMAP and POP3 clients see it.
type Message struct {
	UID      uint32
	Flags    []string // system flags and keywords, sorted, without \Recent
	Received time.Time
	Size     int64  // RFC822.SIZE: the size with CRLF line ends
	UIDL     string // POP3 UIDL; INBOX only, when POP3 was recorded
	SHA256   string // hex, when recorded with a hash
}

// mailbox returns the mailbox called name, or nil.
func (u *User) mailbox(name string) *Mailbox {
	for i := range u.Mailboxes {
		if u.Mailboxes[i].Name == name {
			return &u.Mailboxes[i]
		}
	}
	return nil
}
