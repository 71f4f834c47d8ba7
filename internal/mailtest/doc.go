// Package mailtest runs the real mail servers that maildirmig has to satisfy, for tests.
//
// Dovecot (dovecot-imapd, dovecot-pop3d) and Postfix (local(8) delivery into a spool directory)
// from the Debian packages are started with their own configuration under a temporary
// directory, listening on 127.0.0.1 only or not at all, and stopped by t.Cleanup. The host's
// /etc/dovecot and /etc/postfix are never read for settings nor written.
//
// Dovecot is the judge of a migration: Fetch records what it reports for every message of a
// mailbox through doveadm (UID, flags, received date, sizes, header and body), and the IMAP and
// POP3 helpers record what a client sees (folders, subscriptions, UIDVALIDITY, UIDNEXT, FLAGS,
// INTERNALDATE, UIDL). Two recordings, one over the mbox and one over the Maildir made from it,
// must then be equal.
//
// Everything here needs root (to act as other users) and the packages; the Require functions
// skip a test with a clear message when either is missing.
//
// Dovecot rewrites the mbox files it reads (it adds X-IMAPbase, X-UID, Status...), so tests
// must always hand it a copy of a corpus file, never the original.
package mailtest
