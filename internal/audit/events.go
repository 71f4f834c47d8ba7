package audit

import (
	"fmt"
	"slices"
	"sort"
	"testing"
)

// The events of the audit log. Events below says, for each, the fields its lines carry and
// what it means; the man page is made from it and the README's table is checked against it.
const (
	EventRunStart       = "run-start"
	EventRunEnd         = "run-end"
	EventUserStart      = "user-start"
	EventUserDone       = "user-done"
	EventUserSkipped    = "user-skipped"
	EventUserFailed     = "user-failed"
	EventFolderStart    = "folder-start"
	EventFolderDone     = "folder-done"
	EventFolderFailed   = "folder-failed"
	EventFolderRemoved  = "folder-removed"
	EventNotice         = "notice"
	EventMessage        = "message"
	EventMessageChanged = "message-changed"
	EventSourceAfter    = "source-after"
	EventRolledBack     = "rolled-back"
	EventCheckFix       = "check-fix"
)

// EventSpec describes one event of the audit log.
type EventSpec struct {
	Name    string
	Fields  []string // beyond time, run and event; a line leaves out those that do not apply
	Meaning string   // one line, for the manual
}

// The fields of the lines about one user's mailbox, and about one of their folders.
var (
	userFields   = []string{"user", "uid", "src", "dst"}
	folderFields = []string{"folder_src", "folder"}
	statsFields  = []string{"messages", "written", "existed", "skipped", "bytes", "end_offset", "uidvalidity", "next_uid", "renumbered", "loose"}
)

func fields(groups ...[]string) []string { return slices.Concat(groups...) }

// Events is the registry of the audit log's events, in the order a run writes them.
var Events = []EventSpec{
	{EventRunStart, []string{"argv", "version", "command", "users", "jobs", "root", "after"},
		"a run begins: its command line, version, command (mbox, Mailbox, rollback), number of users, jobs, --root and --after"},
	{EventUserStart, userFields,
		"a user's migration begins: source and destination"},
	{EventFolderStart, fields(userFields, folderFields, []string{"size"}),
		"one of the user's mbox folders begins"},
	{EventNotice, fields(userFields, folderFields, []string{"kind", "message", "offset", "detail"}),
		"an oddity worked around or a correction made, which kind names: loose mode, a date fallback, a Content-Length ignored, a skipped folder entry, the log's own mode fixed"},
	{EventMessage, fields(userFields, folderFields, []string{"index", "offset", "size", "sha256", "stored_sha256", "name", "sub", "uid_imap", "existed", "skipped"}),
		"with --audit-messages, one per message: its offset and size in the source, its sha256, the Maildir file it is in"},
	{EventMessageChanged, fields(userFields, folderFields, []string{"change", "name", "to", "why"}),
		"a file a pass renamed for its flags (change flags, name, to) or removed because its source message is gone (change removed, name), and why"},
	{EventFolderDone, fields(userFields, folderFields, []string{"outcome"}, statsFields),
		"a folder's migration ended: messages written and already there, bytes"},
	{EventFolderFailed, fields(userFields, folderFields, []string{"outcome", "err"}),
		"a folder's migration failed; err says why"},
	{EventFolderRemoved, fields(userFields, []string{"folder_src"}),
		"a Maildir++ folder removed because its mbox folder is gone"},
	{EventSourceAfter, fields(userFields, []string{"action", "result"}),
		"what --after did to a source: action asked, result done"},
	{EventRolledBack, fields(userFields, folderFields, []string{"messages", "bytes", "kept", "uidvalidity", "next_uid", "changed"}),
		"a rollback wrote a source back as Dovecot would have shown it (or found it written): messages, bytes, the bytes that arrived since and were kept, the UIDs"},
	{EventUserDone, fields(userFields, []string{"outcome", "folders", "total_messages", "total_written"}, statsFields, []string{"kept", "after", "seconds"}),
		"a user's migration or rollback ended: messages written and already there, bytes, the UIDs the INBOX goes on with"},
	{EventUserSkipped, fields(userFields, []string{"reason"}),
		"a user with nothing to do"},
	{EventUserFailed, fields(userFields, []string{"outcome", "err"}),
		"a user's migration failed; err says why"},
	{EventRunEnd, []string{"users", "migrated", "up_to_date", "no_mailbox", "failed", "lock_timeouts", "messages", "written", "existed", "bytes", "seconds", "interrupted"},
		"the run's totals: users migrated, up to date, failed; messages and bytes written"},
	{EventCheckFix, []string{"user", "path", "kind", "fixed"},
		"a repair check --fix made"},
}

// Spec returns the registry's entry for the event name.
func Spec(name string) (EventSpec, bool) {
	i := slices.IndexFunc(Events, func(e EventSpec) bool { return e.Name == name })
	if i < 0 {
		return EventSpec{}, false
	}
	return Events[i], true
}

// Registered reports whether event is in the registry and every key of fields is one of its
// fields.
func Registered(event string, fields map[string]any) error {
	spec, ok := Spec(event)
	if !ok {
		return fmt.Errorf("audit: event %q is not in the registry (audit.Events)", event)
	}
	for k := range fields {
		if !slices.Contains(spec.Fields, k) {
			return fmt.Errorf("audit: event %q has no field %q in the registry (audit.Events)", event, k)
		}
	}
	return nil
}

// strict refuses, in a test binary, an event the registry does not describe: each test that
// writes one fails, so that the manual and the README, made from and checked against the
// registry, cannot miss an event or a field. A program in production writes it all the same.
var strict = testing.Testing()

// FieldOrder sorts keys in the order a line carries them: user, uid, src and dst first, the
// others in alphabetical order.
func FieldOrder(keys []string) {
	first := map[string]int{"user": 0, "uid": 1, "src": 2, "dst": 3}
	sort.SliceStable(keys, func(i, j int) bool {
		ri, oki := first[keys[i]]
		rj, okj := first[keys[j]]
		switch {
		case oki && okj:
			return ri < rj
		case oki != okj:
			return oki
		}
		return keys[i] < keys[j]
	})
}
