// Package migrate moves users' mail from mbox files into their Maildirs, resumably and
// verifiably, and proves afterwards that every migrated message is there.
//
// # Sources
//
// A user has up to three kinds of source, all converted by one routine: the spool
// (<spool dir>/USER, the mbox command), ~/Mailbox (the Mailbox command), and each mbox
// folder beneath ~/mail, which becomes a Maildir++ folder of the same Maildir. Run migrates
// the INBOX source of every selected user and then the user's folders; Plan says what Run
// would do; Verify proves what earlier runs did; Convert and ConvertAs convert one mbox.
//
// # Trust boundary
//
// Root keeps what a user must not touch: the user list, the spool's locks (dotlock, OFD and
// flock, as Postfix and Dovecot take them), the state directory and the audit log. Root opens
// the spool without following a symlink and refuses it unless it is a regular file of the
// user's with one link. Everything done inside a home is done by a worker: maildirmig run
// again as the user (uid, gid and groups), non-dumpable, given a JSON request on stdin and
// the locked source as fd 3 when there is one, answering with JSON lines. The worker opens
// the home by safefs's rule (no symlink, the user's, writable by nobody else) and every
// file beneath it through safefs, so that a symlink the user planted hands it nothing the
// user could not reach already. ~/Mailbox is locked by a worker too, and mbox folders are
// opened, locked and read only by the worker: root never opens a file in a home.
//
// Root believes nothing the worker says without a check it can make: a resume point the
// worker reports for the INBOX must lie in the part not yet recorded and start a From_ line
// (or be the end of the source) in root's own descriptor before the state records it.
// Root never opens a folder, so for folders the worker applies the same check to its own
// descriptor; a lying worker can then only misstate the progress of the user's own mail.
// A worker that makes no progress for StallTimeout is killed, and only its user fails.
//
// # Passes, identity and state
//
// A migration is a series of passes: users keep reading their mbox through Dovecot until the
// switch, so each pass makes the Maildir mirror the source as it is then. A pass over a source
// whose migrated part is unchanged converts only what was appended since; one whose migrated
// part changed (flags and keywords Dovecot rewrote in Status, X-Status and X-Keywords, the
// X-UID and X-IMAPbase it added, expunges, a POP3 client's deletions) reads the whole source
// again (mirror.go): new messages are written, messages gone are removed, flags and keywords
// follow by renaming the file, and dovecot-uidlist is written anew with the source's
// UIDVALIDITY and UIDs. A pass with nothing changed writes nothing.
//
// What identifies a message across passes is its stored bytes (the message without the
// mbox-internal headers, which Dovecot rewrites whenever a flag changes) and its own date
// (the From_ line's, else its Date:), which are what its file's name carries (maildir.Own):
// neither changes when the mbox is rewritten, while a message's place does, as earlier ones
// are expunged. Identical messages are still separate messages: the records of the last pass
// (one line per message in source order: its sequence number, UID and file) are matched
// with the source in order, the one with the X-UID the source gives first, so that each
// message keeps a file of its own and no file serves two. verify zips the source with the
// same records, so it counts rather than looks up.
//
// Once Dovecot or a delivery agent has used the Maildir (its index files there, a file
// maildirmig did not write), it belongs to its user: a pass then only adds what newly
// arrived in the source, changes and removes nothing, and says so once. A pass removes only
// files this source's records name, or that a pass of this source interrupted before they
// were recorded (State.Open), never another source's (a spool and ~/Mailbox migrated into
// one Maildir) and never a file of unknown origin.
//
// The state directory (root's, 0700) holds per source its device, inode and size, how many
// bytes and messages are migrated, the SHA-256 of that prefix and the records' generation,
// with the destination, the conversion options and the zone From_ dates without one were
// read in. Every state file is read without following a symlink and replaced atomically (a
// crash leaves the old or the new one). A source migrated into another Maildir or with other
// options is refused (ErrStateMismatch) unless Force. A source passed over again keeps the
// zone of its earlier runs, so that the names of its messages do not depend on who runs us.
// The state is saved at each resume point the worker reports once its messages are durable,
// and at the end of a mirror pass, so an interrupted run loses nothing and the next one
// writes nothing twice.
//
// # After
//
// After (keep, rename or truncate) is applied to the spool or ~/Mailbox only, never to a
// folder (the user's own file), and only when the whole source is migrated in this run's
// lock and proved: what this run converted is checked against its files as they became
// durable, and what earlier runs migrated is re-read and proved by a worker before the
// source may go. The intended action is saved in the state first, so that a run after a
// crash knows whether it happened.
//
// # Audit log and console
//
// Every run, user, folder, fallback and (with AuditMessages) message is a line of the
// audit log; a failed write to it stops the run. The console gets results through the
// Config callbacks; this package never prints or exits.
package migrate
