/*
Maildirmig moves the mail of every user on a Postfix/Dovecot server from mbox files into
Maildir, gives new users a Maildir, and checks from cron that every Maildir stays healthy.

Usage:

	maildirmig preflight before the night: what Postfix and Dovecot must still change
	maildirmig users     print the migration plan: users, sources, sizes, destinations, free space
	maildirmig record    record what Dovecot shows each user: record FILE [USER...]
	maildirmig mbox      migrate every user's /var/spool/mail/USER to ~USER/Maildir
	maildirmig Mailbox   migrate every user's ~USER/Mailbox to ~USER/Maildir
	maildirmig convert   one mbox into one Maildir: convert [--from FILE] MAILDIR (stdin by default)
	maildirmig verify    prove every migrated message is in the Maildir, byte for byte
	maildirmig compare   compare two recordings: would any client download again? compare BEFORE AFTER
	maildirmig skel      create Maildir/{cur,new,tmp} (0700) in /etc/skel; --existing for users lacking one
	maildirmig check     integrity check for cron and monitoring

users, mbox, Mailbox, verify, check, skel --existing and record (after its FILE) take user
names as arguments:
"maildirmig mbox alice bob" works on those two only, as --user alice --user bob does, and
names given both ways add up. A name that is not in passwd is a usage error and nothing is
done. Flags go before the arguments. A mistyped command, flag or flag value is a usage error
(exit 2) with a hint towards the command's --help; "maildirmig help CMD" is "maildirmig CMD
--help".

# Reading mbox

A message starts at a From_ line: "From ", a sender and an asctime date, as Postfix, Dovecot,
UW c-client and sendmail write it, normally after an empty line (a valid From_ line with no empty
line before it starts a message too, as in Dovecot). A "From " line whose date does not parse is
body text. Content-Length is trusted only when it points at the next From_ line or the end of the
file. A file whose first From_ line has no date (Thunderbird's "From - ", Gmail Takeout) is read
in loose mode, with a warning. Line ends and >From quoting are kept as stored (--unescape mboxrd
or mboxo undoes the quoting of mailboxes known to be quoted). A file that is not an mbox is an
error and nothing is written.

# Writing Maildir

Each message is written into tmp/ (mode 0600, its mtime the From_ date: Dovecot's received
date), made durable, then renamed into new/ or cur/ without ever replacing a file. Status and
X-Status become Maildir flags (R→S, A→R, F→F, T→D, D→T), X-Keywords become Dovecot keywords, and
X-IMAPbase, X-IMAP and X-UID become dovecot-uidlist, so IMAP UIDs and POP3 UIDLs do not change.
These mbox-internal headers are removed from the messages unless --keep-headers is given. File
names are the same on every run for the same message, so a second run writes nothing: a name
holds only a date read from the message itself, and a message dated by the mbox file's mtime is
named with the time 0, so that a touch or a delivery between two runs changes nothing.

# Recovery

A run may die at any point (SIGKILL, power loss). While it writes a Maildir, each run holds a
lock on a marker of its own in tmp/ (.maildirmig.P<pid>I<id>.<host>), which the kernel drops
when the process dies; its tmp/ files carry the same P<pid>I<id>. The next run on the same host
removes the tmp/ files of runs whose marker is unlocked or gone, and takes over at once the
dovecot-uidlist.lock such a run held (the marker records which). It never touches what a live
run, another host, Dovecot or an MDA is writing: a foreign lock is waited for, and reported as
"held by maildirmig pid N" or "held by another process (Dovecot?) since HH:MM:SS"; foreign tmp/
files are left to the 36-hour rule of check --fix. A run also removes the temporary state files
of runs that died, and starts its audit lines on a new line after a line cut short. Each
clean-up is a "recovered" notice in the audit log.

# Workers, stalls and interrupts

Root does the work inside a home through a worker: maildirmig again, running as the user. So do
check, check --fix and skel --existing. Root watches each worker, and one that reads and stores
no message (for check and skel, looks at nothing) for --stall-timeout (default 2m; stopped by
its user with SIGSTOP, blocked on a FIFO, looping, on a hung NFS home) is killed: that user
fails with the reason ("worker made no progress for 2m0s (stopped); killed"), the spool's locks
are released, the other users go on, and the run exits 3 (check reports the user unchecked,
status 3). Time a worker spends waiting for a
lock, up to --lock-timeout, is allowed on top. A killed worker may leave files in its
Maildir's tmp/; the next run removes them.

SIGINT and SIGTERM end a run within a few seconds with exit code 130: each worker is asked to
abort, removes the files of the batch it was writing and exits; one that has not done so after
2 seconds is killed. Root releases every lock it holds, and the last line says whether files
were left in tmp/ for the next run to remove.

# Exit codes

	0    all done
	1    fatal error: nothing usable could be done (the message says why)
	2    usage error: a mistyped command, flag, value or user name; nothing was done
	3    some users failed; the others were done ("2 of 40 users failed")
	75   a spool lock could not be taken in time (EX_TEMPFAIL): run again later
	130  interrupted: locks released, no half-written message left behind

maildirmig check and maildirmig preflight follow the Nagios plugin convention instead:
0 healthy (check), ready (preflight), 1 warnings, 2 critical, 3 could not check (a usage error
too).

maildirmig compare exits as diff does: 0 nothing that matters differs, 1 something that
matters differs, 2 usage error, 3 some users or a whole recording could not be compared.

# Proving it on the server

maildirmig record FILE records what Dovecot shows every user, read through doveadm as root with
Dovecot's own configuration: every mailbox with its UIDVALIDITY, UIDNEXT and message count, the
subscriptions, and every message's UID, flags and keywords, received date, size and POP3 UIDL
(from Dovecot's POP3 server itself, doveadm exec pop3, so whatever pop3_uidl_format says). Taken
before Dovecot stops on the night and again once it serves the Maildirs, the two recordings are
compared by maildirmig compare BEFORE AFTER, which lists what differs and says in its last line
whether any client would download mail again: a UIDVALIDITY, UID or UIDL that changed, or
messages that are gone. A recording is JSON Lines, mode 0600, and never replaces a file unless
--force is given.

# Output

Results go to stdout, diagnostics to stderr, prefixed "maildirmig: error:", "maildirmig:
warning:" or "maildirmig: hint:". On a terminal (stderr), a progress line
below the results shows the bytes done of the total, the messages read, the users done, the
users being migrated and the time left; the results are printed above it whether stdout is the
terminal or a file. It is not drawn while maildirmig runs in the shell's background (started
with &, or after ^Z and bg), and comes back in the foreground. In cron or a pipe, there is one
line per user and a summary, nothing else.

# Manual and completion

The man page (maildirmig man) and the bash, zsh and fish completion scripts (maildirmig
completion bash|zsh|fish) are generated from the command definitions; the copies under
packaging/ are checked against them by the tests (go test ./cmd/maildirmig -update rewrites
them).
*/
package main
