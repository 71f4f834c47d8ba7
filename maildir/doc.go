// Package maildir writes and reads Maildirs safely, through file descriptors.
//
// A [Dir] holds open descriptors on a Maildir and its cur, new and tmp
// subdirectories. Every directory and file is opened relative to one of them
// through internal/safefs, which follows no symbolic link (openat2
// RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS, or openat O_NOFOLLOW
// one component at a time on kernels without openat2), so a user who owns the
// Maildir cannot redirect the writer with a symlink, even by racing it.
//
// A [Writer] adds messages the way the Maildir convention asks: each one is
// written to tmp/ with an exclusive create, mode 0600, synced, then renamed into
// new/ or cur/ without ever replacing an existing file. In the default
// [FsyncSyncfs] mode the whole file system is synced (syncfs) once a batch,
// before it is renamed: few system calls and journal commits, at the price of
// waiting for whatever else is unwritten there. [FsyncBatch] syncs only the
// Maildir's files instead, several at a time so the journal commits them at
// once, so that a small mailbox does not wait for other processes' writes. In
// both, a batch is synced while the next one is written, and renamed in once
// that one is complete (or at [Writer.Flush]). Message names are
// deterministic: the same content, date, source position and host give the same
// base name on every run, so a second run recognises what it already wrote; the
// date in a name is only one read from the message itself, never a fallback such
// as the source's mtime, which goes into the file's mtime alone.
// The name carries S= (the file size) and W= (the size with bare LFs counted as
// CRLF), which Dovecot trusts. The writer keeps Dovecot's dovecot-uidlist
// (version 3) and dovecot-keywords, so IMAP and POP3 clients keep the UIDs,
// flags and keywords they knew from the mbox. A Writer's memory barely grows
// with the number of messages: it keeps a 24-byte key and UID per message file
// (to recognise what is there), and appends the lines of each durable batch to
// dovecot-uidlist under Dovecot's lock, as Dovecot does, so that Dovecot
// serving the Maildir meanwhile numbers our files as we do; [Writer.Commit]
// rewrites the header once at the end when it must give a higher next UID.
//
// A Writer holds an OFD lock on a run marker of its own in tmp/ until
// [Writer.Close], and its tmp/ files carry the marker's run token, so that
// NewWriter can clean up after a writer that died: it removes the tmp/ files
// of this host's runs whose marker is unlocked or gone, and takes over at
// once the dovecot-uidlist.lock such a run held, never a live run's or
// Dovecot's. [TmpInUse] tells a checker which tmp/ files are
// still being written.
//
// [ParseName], [CheckUIDList], [FileType], [Dir.Messages] and [Dir.OpenMessage]
// serve readers that check or verify a Maildir. [Dir.List] reads a Maildir as
// Dovecot shows it (UIDs, also of files dovecot-uidlist does not list yet,
// flags, keywords, dates, sizes), for writing it back to an mbox.
package maildir
