package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/maildirmig/maildirmig/check"
	"github.com/maildirmig/maildirmig/internal/worker"
)

// AsUser does the work of check and skel inside a home (a check.Home) as the home's user, the
// way a migration does its own: in a worker process with the user's uid, gid and groups when
// this process is root, under the watchdog, which kills a worker that looks at nothing for
// StallTimeout (a home on a hung mount, a user who stopped it) so that only that user fails.
// Run by a user, or for root's own home, the work is done in this process. It is the
// check.AsUser of maildirmig check and skel.
type AsUser struct {
	StallTimeout time.Duration // 0: DefaultStallTimeout
}

// Check runs h.Check as h's user; each problem found goes to h.Problem as it comes.
func (a AsUser) Check(ctx context.Context, h *check.Home) (check.HomeResult, error) {
	var res check.HomeResult
	got := false
	err := a.run(ctx, opCheckHome, h, func(m workerMsg) {
		switch {
		case m.T == msgProblem && m.Problem != nil && h.Problem != nil:
			p := *m.Problem
			// The user a problem is reported against is root's to say.
			p.User = h.User.Name
			h.Problem(p)
		case m.T == msgHomeResult && m.HomeResult != nil:
			res, got = *m.HomeResult, true
		}
	})
	if err == nil && !got {
		err = errors.New("migrate: check: the worker ended without a result")
	}
	return res, err
}

// EnsureMaildir runs h.EnsureMaildir as h's user.
func (a AsUser) EnsureMaildir(ctx context.Context, h *check.Home) (check.Ensured, error) {
	var res check.Ensured
	got := false
	err := a.run(ctx, opEnsureMaildir, h, func(m workerMsg) {
		if m.T == msgEnsured && m.Ensured != nil {
			res, got = *m.Ensured, true
		}
	})
	if err == nil && !got {
		err = errors.New("migrate: skel: the worker ended without a result")
	}
	var reported *remoteError
	if err != nil && !errors.As(err, &reported) {
		// What the work says names the user already; a worker that failed or was killed
		// does not.
		err = fmt.Errorf("user %s: home %s: %w", h.User.Name, h.User.Home, err)
	}
	return res, err
}

func (a AsUser) run(ctx context.Context, op string, h *check.Home, handle func(workerMsg)) error {
	cred := Credentials{UID: h.User.UID, GID: h.User.GID, Groups: h.User.Groups}
	req := &workerRequest{Op: op, Home: h.User.Home, Owner: h.User.UID, CheckHome: h}
	return runWorker(worker.WithStallTimeout(ctx, a.StallTimeout), cred, req, nil, handle)
}

// homeWork is the Home of req, as the worker runs it: what it finds goes back as answers,
// and each entry it looks at counts as the work the watchdog sees.
func homeWork(req *workerRequest, emit func(workerMsg)) (*check.Home, error) {
	if req.CheckHome == nil {
		return nil, errors.New("migrate: worker: no home in the request")
	}
	h := *req.CheckHome
	work := newWorkMeter(emit)
	h.Problem = func(p check.Problem) { emit(workerMsg{T: msgProblem, Problem: &p}) }
	h.Work = func(n int64) { work.add(int(n)) }
	return &h, nil
}

// serveCheckHome checks a home as its user (check.Home.Check).
func serveCheckHome(ctx context.Context, req *workerRequest, _ *os.File, emit func(workerMsg)) error {
	h, err := homeWork(req, emit)
	if err != nil {
		return err
	}
	res, err := h.Check(ctx)
	if err != nil {
		return err
	}
	emit(workerMsg{T: msgHomeResult, HomeResult: &res})
	return nil
}

// serveEnsureMaildir gives a home an empty Maildir as its user (check.Home.EnsureMaildir).
func serveEnsureMaildir(_ context.Context, req *workerRequest, _ *os.File, emit func(workerMsg)) error {
	h, err := homeWork(req, emit)
	if err != nil {
		return err
	}
	res, err := h.EnsureMaildir()
	if err != nil {
		return err
	}
	emit(workerMsg{T: msgEnsured, Ensured: &res})
	return nil
}
