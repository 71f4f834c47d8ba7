// Package fault is the fault-injection seam of maildirmig's tests: named points in the
// write paths where a test build can make a call fail with an errno or kill the process.
//
// In a normal build every hook is an empty function the compiler inlines away: a site costs
// nothing, not even a branch. A binary built with -tags faultinject reads
//
//	MAILDIRMIG_FAULT=POINT:N:ACTION
//
// and acts at the N-th time (counted from 1, in each process) this process passes POINT.
// ACTION is one of
//
//	eio, enospc, edquot  the call at POINT fails with that errno, at the N-th pass and every
//	                     later one, as a failed disk or a full one stays so
//	kill                 SIGKILL this process (a worker only, when POINT is a worker's)
//	kill-run             SIGKILL the whole run: root kills its workers and then itself; a
//	                     worker, which may not signal root, stops itself (SIGSTOP) so that
//	                     the test that set the fault kills the run while it stands at POINT
//	stop                 stop this process (SIGSTOP) at POINT and carry on when continued:
//	                     a test stands in for a hostile user or another program there, then
//	                     sends SIGCONT
//
// Kill-only points (read, locked, batch-moved, state-saved, look) take no errno. An injected
// errno comes after the real call did its work (the bytes were written, the file was
// renamed): the harder case, where the caller must not trust what the call did. A worker
// inherits the variable (Environ). A malformed value stops the process before it does anything.
package fault

// Env names the variable a faultinject build reads.
const Env = "MAILDIRMIG_FAULT"

// Point is a place where a fault can be injected.
type Point uint8

// The points. Those of maildir and of the spool reader are passed in the worker, the state
// and audit points in root.
const (
	Write          Point = iota + 1 // a message's content written into tmp/
	Fsync                           // fsync of a message file in tmp/
	Close                           // close of a message file in tmp/
	Move                            // rename (or link) of a message from tmp/ into cur/ or new/
	UIDListAppend                   // lines appended to dovecot-uidlist
	UIDListRewrite                  // a new dovecot-uidlist written into dovecot-uidlist.lock
	State                           // a state file's content written into its temporary file
	Audit                           // one line written to the audit log
	Restate                         // rename of a message file for its flags, or between new/ and cur/
	Remove                          // removal of a message file whose source message is gone
	Export                          // a rollback's new mbox written beside the old one
	Swap                            // a rollback's new mbox exchanged with the old one
	Aside                           // a rollback's mbox of a folder gone from the Maildir moved aside
	Subscriptions                   // a rollback's .subscriptions: 1 written, 2 renamed into place
	Read                            // kill only: a message read from the source
	Locked                          // kill only: a control file's dotlock (dovecot-uidlist.lock) taken
	BatchMoved                      // kill only: a batch moved into cur/ and new/, not yet listed
	StateSaved                      // kill only: a state file renamed into place
	Look                            // kill only: an entry looked at in a home by check or skel
	numPoints
)

var names = [numPoints]string{
	Write: "write", Fsync: "fsync", Close: "close", Move: "move",
	UIDListAppend: "uidlist-append", UIDListRewrite: "uidlist-rewrite",
	State: "state", Audit: "audit", Restate: "restate", Remove: "remove",
	Export: "export", Swap: "swap", Aside: "aside", Subscriptions: "subscriptions",
	Read: "read", Locked: "locked", BatchMoved: "batch-moved", StateSaved: "state-saved",
	Look: "look",
}

// String returns the point's name in MAILDIRMIG_FAULT.
func (p Point) String() string {
	if p < numPoints && names[p] != "" {
		return names[p]
	}
	return "unknown"
}

// killOnly reports whether p takes only the kill actions.
func (p Point) killOnly() bool { return p >= Read }
