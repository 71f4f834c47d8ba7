package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/maildirmig/maildirmig/internal/worker"
	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
	"github.com/maildirmig/maildirmig/users"
)

func newSHA256() hash.Hash { return sha256.New() }

// verifyMaildir re-reads src[0:size) and proves every message is in d exactly once: it
// recomputes what Convert stored for each message and finds the file whose base name carries
// that message's position and content hash (the deterministic part of the names the writer
// gives), then re-reads the file and compares the whole hash.
//
// Two files with the same position and content hash are one source message stored twice (by
// a run whose names differed from an earlier run's in their date or host part): a duplicate.
// Identical messages at two positions of the source are two messages, each with its file.
//
// What it reads, of the source and of the files, counts as work (nil: not counted).
func verifyMaildir(ctx context.Context, req *workerRequest, src io.ReaderAt, size int64, d *maildir.Dir, work *workMeter) (VerifyResult, error) {
	var res VerifyResult
	src = work.readerAt(src)
	entries, err := d.Messages()
	if err != nil {
		return res, err
	}
	byKey := make(map[string]maildir.Entry, len(entries))
	// A run forced to start again after messages were deleted from the source matched those
	// already in the Maildir whatever their position (maildir.Options.AnyPosition): their
	// names carry the position they had then.
	byHash := make(map[string]maildir.Entry, len(entries))
	// twice holds, for a key more than one file has, all those files.
	var twice map[string][]maildir.Entry
	for _, e := range entries {
		if k, ok := nameKey(e.Name); ok {
			if prev, dup := byKey[k]; dup {
				if twice == nil {
					twice = map[string][]maildir.Entry{}
				}
				if len(twice[k]) == 0 {
					twice[k] = []maildir.Entry{prev}
				}
				twice[k] = append(twice[k], e)
			}
			byKey[k] = e
			byHash[k[strings.IndexByte(k, ':')+1:]] = e
		}
	}
	loc := time.Local
	if req.Location != "" && req.Location != "Local" {
		if l, err := time.LoadLocation(req.Location); err == nil {
			loc = l
		}
	}
	r := mbox.NewReader(src, size, mbox.Options{Unescape: mbox.Unescape(req.Unescape), Location: loc, Loose: req.Loose, LooseFrom: req.LooseFrom})
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		m, err := r.Next()
		if err == io.EOF {
			if len(res.Lost) > 0 {
				res.Listing = readUIDListing(d)
			}
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("migrate: verify: %w", err)
		}
		if m.Pseudo {
			continue
		}
		pos := req.StartIndex + int64(m.Index)
		header := m.Header
		if !req.KeepHeaders {
			header = mbox.StripMeta(header)
		}
		h := sha256.New()
		h.Write(header)
		body, err := io.Copy(h, m.Body)
		if err != nil {
			return res, fmt.Errorf("migrate: verify: message %d: %w", pos+1, err)
		}
		sum := hex.EncodeToString(h.Sum(nil))
		res.Messages++
		key := fmt.Sprintf("%d:%s", pos, sum[:16])
		e, ok := byKey[key]
		if files := twice[key]; len(files) > 1 {
			names := make([]string, len(files))
			for i, f := range files {
				names[i] = f.Sub + "/" + f.Name
			}
			res.Duplicate = append(res.Duplicate, fmt.Sprintf("message %d (%s)", pos+1, strings.Join(names, ", ")))
		}
		if !ok {
			e, ok = byHash[sum[:16]]
		}
		if !ok {
			res.Lost = append(res.Lost, lostMessage{Pos: pos, Missing: len(res.Missing)})
			res.Missing = append(res.Missing, fmt.Sprintf("message %d at offset %d", pos+1, m.Offset))
			continue
		}
		f, err := d.OpenMessage(e.Sub, e.Name)
		if err != nil {
			res.Missing = append(res.Missing, fmt.Sprintf("message %d (%s/%s): %v", pos+1, e.Sub, e.Name, err))
			continue
		}
		got, err := hashMessageFile(f, int64(len(header))+body, work)
		f.Close()
		if err != nil || got != sum {
			res.Bad = append(res.Bad, badMessage(pos+1, e.Sub, e.Name, err))
			continue
		}
		res.Found++
	}
}

// nameKey extracts "position:hash prefix" from a name the writer gave
// (<secs>.M<usecs>Q<position>X<16 hex>.<host>,S=...), ok false for other names.
func nameKey(name string) (string, bool) {
	base := baseName(name)
	dot := strings.IndexByte(base, '.')
	if dot < 0 {
		return "", false
	}
	rest := base[dot+1:]
	q := strings.IndexByte(rest, 'Q')
	if q < 0 {
		return "", false
	}
	rest = rest[q+1:]
	x := strings.IndexByte(rest, 'X')
	if x < 0 || len(rest) < x+1+16 {
		return "", false
	}
	pos, err := strconv.ParseInt(rest[:x], 10, 64)
	if err != nil {
		return "", false
	}
	return fmt.Sprintf("%d:%s", pos, rest[x+1:x+17]), true
}

// UserVerify is the outcome of verifying one user.
type UserVerify struct {
	User  string
	Src   string
	Dst   string
	State bool // false: the user was never migrated, nothing to verify
	// Unmigrated lists, when State is false, the user's spool and ~/Mailbox that hold mail
	// (non-empty regular files) although no run migrated them.
	Unmigrated []string
	Result     VerifyResult
	Err        error
	Folders    []FolderVerify // the user's migrated mbox folders (none with Config.NoFolders)
}

// Verify re-reads, for every selected user with a state, the migrated part of the source and
// proves every message is in the Maildir with the content Convert stored; done is called once
// per user. The error is for what stops the whole verification.
func Verify(ctx context.Context, cfg Config, done func(UserVerify)) error {
	cfg.defaults()
	ctx = worker.WithStallTimeout(ctx, cfg.StallTimeout)
	list, err := cfg.listUsers()
	if err != nil {
		return err
	}
	store := StateStore{Dir: cfg.resolve(cfg.StateDir)}
	for _, u := range list {
		if err := ctx.Err(); err != nil {
			return err
		}
		src, home, dst := cfg.Paths(u)
		v := UserVerify{User: u.Name, Src: src, Dst: dst}
		// The spool and ~/Mailbox each have a state of their own; verify what either migrated.
		var srcs []string
		for _, source := range []Source{SourceSpool, SourceMailbox} {
			c := cfg
			c.Source = source
			p, _, _ := c.Paths(u)
			st, err := store.Load(u.Name, source.Kind(), p)
			if err != nil {
				v.Err = err
				break
			}
			if st == nil {
				continue
			}
			uids, err := store.uidsPath(u.Name, source.Kind(), p)
			if err != nil {
				v.Err = err
				break
			}
			res, err := verifyUser(ctx, u.UID, u.GID, u.Groups, owner(u), st, home, uids)
			v.State = true
			srcs = append(srcs, st.Source)
			v.Dst = st.Maildir
			v.Result.Messages += res.Messages
			v.Result.Found += res.Found
			v.Result.Missing = append(v.Result.Missing, res.Missing...)
			v.Result.Bad = append(v.Result.Bad, res.Bad...)
			v.Result.Deleted = append(v.Result.Deleted, res.Deleted...)
			v.Result.Duplicate = append(v.Result.Duplicate, res.Duplicate...)
			if err != nil {
				v.Err = err
				break
			}
		}
		if len(srcs) > 0 {
			v.Src = strings.Join(srcs, " and ")
		}
		if !cfg.NoFolders && v.Err == nil {
			v.Folders, v.Err = verifyFolders(ctx, &cfg, u, home)
			if len(v.Folders) > 0 {
				v.State = true
			}
		}
		if !v.State && v.Err == nil {
			v.Unmigrated = unmigrated(&cfg, u)
		}
		done(v)
	}
	return nil
}

// unmigrated lists u's spool and ~/Mailbox that hold mail, looked at without following a
// symlink and never opened: for verify to tell a user nobody migrated from one with no mail.
func unmigrated(cfg *Config, u users.User) []string {
	var out []string
	for _, source := range []Source{SourceSpool, SourceMailbox} {
		c := *cfg
		c.Source = source
		p, _, _ := c.Paths(u)
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			out = append(out, p)
		}
	}
	return out
}

func verifyUser(ctx context.Context, uid, gid int, groups []int, want int, st *State, home, uids string) (VerifyResult, error) {
	if st.Offset == 0 {
		return VerifyResult{}, nil
	}
	f, fst, err := openSpool(st.Source, want)
	if err != nil {
		return VerifyResult{}, err
	}
	defer f.Close()
	if _, _, _, err := st.Resume(f, fst, false); err != nil {
		return VerifyResult{}, err
	}
	return verifyState(ctx, Credentials{UID: uid, GID: gid, Groups: groups}, want, f, st.Offset, home, st, false, uids)
}

// verifyRequest is a request for op that reads a source as st records it was migrated:
// from its first message's position, with its options, zone and mode. The INBOX's proof
// and each folder's are made from it.
func (st *State) verifyRequest(op string) *workerRequest {
	return &workerRequest{Op: op, StartIndex: st.BaseIndex, KeepHeaders: st.KeepHeaders, Unescape: int(unescapeValue(st.Unescape)),
		Location: loadableZone(st.Zone), Loose: st.Loose, LooseFrom: st.LooseFrom}
}

// verifyState proves, as cred, that every message of src[0:size) is in the Maildir st
// records, read with the options and zone st records; with uidlist, that Maildir's
// dovecot-uidlist must exist with st.UIDValidity too.
//
// A message with no file is counted Deleted, not Missing, when the user deleted it through
// Dovecot, by the UID records at uids (see sortDeleted).
func verifyState(ctx context.Context, cred Credentials, owner int, src *os.File, size int64, home string, st *State, uidlist bool, uids string) (VerifyResult, error) {
	name, err := filepath.Rel(home, st.Maildir)
	if err != nil || name == "." || strings.HasPrefix(name, "..") {
		return VerifyResult{}, fmt.Errorf("migrate: verify: %s is not beneath %s", st.Maildir, home)
	}
	req := st.verifyRequest(opVerify)
	req.Home, req.Owner, req.Maildir, req.Size = home, owner, name, size
	if uidlist {
		req.UIDValidity = st.UIDValidity
		if req.UIDValidity == 0 {
			return VerifyResult{}, fmt.Errorf("migrate: verify: no UIDVALIDITY recorded for %s", st.Maildir)
		}
	}
	var res VerifyResult
	var got bool
	err = runWorker(ctx, cred, req, src, func(m workerMsg) {
		if m.T == msgVerified && m.Verified != nil {
			res, got = *m.Verified, true
		}
	})
	if err == nil && !got {
		err = fmt.Errorf("migrate: the worker ended without a result")
	}
	if err == nil {
		err = sortDeleted(&res, uids, st.UIDValidity)
	}
	return res, err
}
