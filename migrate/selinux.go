package migrate

// SELinux. Where it is enabled, the policy gives ~/Maildir a mail type that Postfix and
// Dovecot may use, and a Maildir written by the user's worker carries the label of the home
// instead: Dovecot is denied. With Config.Restorecon, each user's Maildir is relabelled as the
// policy says, by restorecon running as the user (internal/selinux), once this run wrote into
// it.

import (
	"context"
	"errors"

	"github.com/maildirmig/maildirmig/internal/selinux"
	"github.com/maildirmig/maildirmig/users"
)

// EventRelabelled is the notice of a Maildir relabelled for SELinux.
const EventRelabelled = "selinux-relabelled"

// relabel relabels the user's Maildir dst when Config.Restorecon is set and this run wrote
// into it, and returns err, the user's outcome so far, with a failed relabelling joined to it:
// Dovecot could not read the Maildir.
func (r *runner) relabel(ctx context.Context, u users.User, dst string, res *UserResult, err error, with func(...any) map[string]any, log func(string, map[string]any)) error {
	if r.cfg.Restorecon == "" || res.Outcome != OutcomeMigrated && res.Total().Written == 0 || ctx.Err() != nil {
		return err
	}
	rerr := selinux.Relabel(ctx, r.cfg.Restorecon, selinux.Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}, dst)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	log(EventNotice, with("kind", EventRelabelled, "message", -1, "detail", selinux.Command(dst)))
	return err
}
