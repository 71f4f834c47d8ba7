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
// # State and resuming
//
// The state directory (root's, 0700) holds per source its device, inode and size, how many
// bytes and messages are migrated, and the SHA-256 of that prefix, with the destination, the
// conversion options and the zone From_ dates without one were read in. Every state file is
// read without following a symlink and replaced atomically (a crash leaves the old or the new
// one). A run resumes a source where its state ends when the prefix is unchanged and the
// destination and options are the same; otherwise the source is refused (ErrSourceChanged,
// ErrStateMismatch) unless Force, which migrates it again from the start and matches the
// messages already in the Maildir wherever they now are. A resumed source keeps the zone of
// its earlier runs, so that the names of the messages still to migrate do not depend on who
// runs us. The state is saved at each resume point the worker reports once its messages are
// durable, so an interrupted run loses nothing and the next one writes nothing twice.
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
