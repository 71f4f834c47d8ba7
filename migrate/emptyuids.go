package migrate

// Empty mailboxes. An mbox that holds no message carries no X-IMAPbase: Dovecot keeps its
// UIDVALIDITY and next UID in its index (~/mail/.imap/NAME), and shows those. The Maildir of
// an empty source (the INBOX, or a folder) gets a dovecot-uidlist with them, so that Dovecot
// on the Maildir shows the same UIDVALIDITY and UIDNEXT: no client synchronises the mailbox
// afresh, and no new message gets a UID that a client saw before under that UIDVALIDITY (a
// POP3 client that remembers UIDLs would take it for one it already has). The index is read by
// the user's worker, through descriptors beneath the folder root (internal/dovecotindex), as
// every other file in a home.

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/dovecotindex"
	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/users"
)

// Notice kinds of empty mailboxes.
const (
	EventUIDsFromIndex   = "uids-from-index"  // UIDVALIDITY and next UID kept from Dovecot's index
	EventIndexUnreadable = "index-unreadable" // Dovecot's index could not be read: they were not kept
)

// emptyInbox returns the conversion of an empty INBOX source of which nothing was ever
// migrated: a worker reads the index Dovecot keeps for the INBOX and, when there is one,
// makes the Maildir with its UIDVALIDITY and next UID (outcome becomes migrated). Without an
// index nothing is made, as for any source without mail.
func (r *runner) emptyInbox(ctx context.Context, u users.User, home string, outcome *string, with func(...any) map[string]any, log func(string, map[string]any)) func(func(int64, Stats) error) (Stats, error) {
	return func(func(int64, Stats) error) (Stats, error) {
		req := r.request(opEmptyInbox, u, home)
		req.FolderRoot = r.cfg.folderRoot()
		var st Stats
		handle := func(m workerMsg) {
			r.dispatch(u.Name, m, with, "", func(MessageRecord) {}, log)
			if m.T == msgStats && m.Stats != nil {
				st = *m.Stats
			}
		}
		cred := Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}
		if err := runWorker(ctx, cred, req, nil, handle); err != nil {
			return Stats{}, err
		}
		if st.UIDValidity != 0 {
			*outcome = OutcomeMigrated
		}
		return st, nil
	}
}

// serveEmptyInbox is the worker's side of opEmptyInbox: a missing home or folder root, or no
// index, leaves everything as it is; the UIDs kept come back as msgStats.
func serveEmptyInbox(_ context.Context, req *workerRequest, _ *os.File, emit func(workerMsg)) error {
	home, err := openFolderHome(req)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		// No message can lose its UID in an empty mailbox: an unsafe home keeps the user
		// from nothing here, and the folders refuse it for themselves.
		emit(indexNotice(EventIndexUnreadable, "", fmt.Sprintf("Dovecot's index of the INBOX was not read: %v", err)))
		return nil
	}
	defer unix.Close(home)
	root, err := openDirBeneath(home, req.FolderRoot)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("migrate: folders: %w", err)
	}
	defer unix.Close(root)
	var d *maildir.Dir
	defer func() {
		if d != nil {
			d.Close()
		}
	}()
	uids, err := keepIndexUIDs(root, "INBOX", "", req, func() (*maildir.Dir, error) {
		var err error
		d, err = maildir.OpenAt(home, req.Maildir, true)
		return d, err
	}, emit)
	if err != nil || uids == (dovecotindex.UIDs{}) {
		return err
	}
	emit(workerMsg{T: msgStats, Stats: &Stats{UIDValidity: uids.UIDValidity, NextUID: uids.NextUID}})
	return nil
}

// keepIndexUIDs reads the index Dovecot keeps for the mbox mailbox name beneath the folder
// root rootfd and, when there is one, gives the Maildir that open returns its UIDVALIDITY
// and next UID, and returns them (zero when there was no index). folder labels the notices
// of a folder. An index that cannot be read is a notice, not an error: the mailbox has no
// message whose UID could be lost, and the Maildir then gets a UIDVALIDITY of its own, as it
// would have without an index.
func keepIndexUIDs(rootfd int, name, folder string, req *workerRequest, open func() (*maildir.Dir, error), emit func(workerMsg)) (dovecotindex.UIDs, error) {
	uids, err := dovecotindex.ReadMbox(rootfd, name)
	switch {
	case errors.Is(err, dovecotindex.ErrNoIndex):
		return dovecotindex.UIDs{}, nil
	case err != nil:
		emit(indexNotice(EventIndexUnreadable, folder, fmt.Sprintf("Dovecot's index of %s could not be read (%v): the Maildir gets a UIDVALIDITY of its own", name, err)))
		return dovecotindex.UIDs{}, nil
	}
	d, err := open()
	if err != nil {
		return dovecotindex.UIDs{}, err
	}
	w, err := maildir.NewWriter(d, maildir.Options{Fsync: maildir.Fsync(req.Fsync), Host: req.Host,
		Recovered: func(detail string) { emit(indexNotice(EventRecovered, folder, detail)) }})
	if err != nil {
		return dovecotindex.UIDs{}, err
	}
	defer w.Close()
	w.SetUIDBase(uids.UIDValidity, uids.NextUID-1)
	if err := w.Commit(); err != nil {
		return dovecotindex.UIDs{}, err
	}
	if w.UIDValidity() != uids.UIDValidity {
		// A dovecot-uidlist of the Maildir's own was there already: it stays.
		emit(indexNotice(EventIndexUnreadable, folder, fmt.Sprintf("Dovecot's index of %s has UIDVALIDITY %d, the Maildir's dovecot-uidlist %d, which stays", name, uids.UIDValidity, w.UIDValidity())))
		return dovecotindex.UIDs{}, nil
	}
	emit(indexNotice(EventUIDsFromIndex, folder, fmt.Sprintf("empty mailbox: UIDVALIDITY %d and next UID %d kept from Dovecot's index of %s", uids.UIDValidity, w.NextUID(), name)))
	return dovecotindex.UIDs{UIDValidity: w.UIDValidity(), NextUID: w.NextUID()}, nil
}

func indexNotice(kind, folder, detail string) workerMsg {
	return workerMsg{T: msgEvent, Folder: folder, Event: &Event{Kind: kind, Message: -1, Detail: detail}}
}
