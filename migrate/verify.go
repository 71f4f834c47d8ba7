package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/maildirmig/maildirmig/internal/worker"
	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
	"github.com/maildirmig/maildirmig/users"
)

func newSHA256() hash.Hash { return sha256.New() }

// verifyMaildir re-reads src[0:size) and proves every message is in d exactly once: the
// records of the last pass (req.Prior) name, in source order, the file of each message, whose
// name must carry the message's identity and whose bytes must be what the message's become
// in a Maildir. So each message has a file of its own, and no file serves two. A file of ours
// that no record names (nor the user's other source's, req.Foreign) holds a message whose
// source message is gone, or one stored twice: either fails the proof while the Maildir is
// not live. Flags and keywords that differ from the source's are reported.
//
// What it reads, of the source and of the files, counts as work (nil: not counted).
func verifyMaildir(ctx context.Context, req *workerRequest, src io.ReaderAt, size int64, d *maildir.Dir, work *workMeter) (VerifyResult, error) {
	var res VerifyResult
	src = work.readerAt(src)
	loc, err := requestLocation(req)
	if err != nil {
		return res, err
	}
	mr := &mirrorer{req: req, d: d, own: map[string]*ownFile{}, bySeq: map[int64][]string{}}
	if err := mr.look(); err != nil {
		return res, err
	}
	foreign := req.Foreign.in(mr.bySeq)
	prior, err := parsePrior(req.Prior, mr.bySeq, mr.own, foreign)
	if err != nil {
		return res, err
	}
	// Without records (a version that kept none, or lost), each message is matched with a
	// file of ours by its identity instead.
	var byKey *matcher
	if req.Prior == "" {
		byKey = newMatcher(unrecorded(mr.own, req.StartIndex, foreign))
		prior = byKey.prior
	}
	kw, err := d.ReadKeywords()
	if err != nil {
		return res, err
	}
	recorded := make(map[string]bool, len(prior))
	for _, p := range prior {
		recorded[p.base] = true
	}
	r := mbox.NewReader(src, size, mbox.Options{Unescape: mbox.Unescape(req.Unescape), Location: loc, Loose: req.Loose, LooseFrom: req.LooseFrom})
	h := sha256.New()
	i := 0
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, fmt.Errorf("migrate: verify: %w", err)
		}
		header := m.Header
		if !req.KeepHeaders {
			header = mbox.StripMeta(header)
		}
		h.Reset()
		h.Write(header)
		n, err := io.Copy(h, m.Body)
		if err != nil {
			return res, fmt.Errorf("migrate: verify: message at offset %d: %w", m.Offset, err)
		}
		if m.Pseudo {
			continue
		}
		res.Messages++
		var sum [32]byte
		h.Sum(sum[:0])
		at := fmt.Sprintf("message %d at offset %d", res.Messages, m.Offset)
		date, _, _ := messageDate(m, time.Time{})
		key := maildir.OwnKeyOf(0, 0, sum, int64(len(header))+n)
		if !date.IsZero() {
			key = maildir.OwnKeyOf(date.Unix(), int64(date.Nanosecond()/1000), sum, int64(len(header))+n)
		}
		var p priorMsg
		switch {
		case byKey != nil:
			j := byKey.match(key, 0, date.IsZero())
			if j < 0 {
				res.Missing = append(res.Missing, at)
				continue
			}
			p = prior[j]
		case i >= len(prior):
			res.Missing = append(res.Missing, at+": not recorded as migrated")
			continue
		default:
			p = prior[i]
			i++
		}
		f := mr.own[p.base]
		if f == nil {
			res.Lost = append(res.Lost, lostMessage{Pos: p.seq, Missing: len(res.Missing)})
			res.Missing = append(res.Missing, at)
			continue
		}
		f.claimed, f.msg = true, res.Messages
		if key != p.key && !(date.IsZero() && bodyKey(key) == bodyKey(p.key)) {
			res.Bad = append(res.Bad, fmt.Sprintf("message %d (%s/%s): its name is another message's", res.Messages, f.sub, f.name))
			continue
		}
		if ok, err := sameContent(d, f, sum, int64(len(header))+n, work); !ok {
			res.Bad = append(res.Bad, badMessage(res.Messages, f.sub, f.name, err))
			continue
		}
		res.Found++
		flags, isNew := messageFlags(m.Meta)
		sub, name, missing, err := kw.NameFor(p.base, &maildir.Message{Flags: flags, Keywords: m.Meta.Keywords, New: isNew})
		if err == nil && (missing || sub != f.sub || name != f.name) {
			res.Flags = append(res.Flags, fmt.Sprintf("%s: %s/%s, where the source gives %s/%s", at, f.sub, f.name, sub, name))
		}
	}
	// A file of the same sequence number, content and size as a message's is that message
	// stored twice (by a version whose names differed in their date part).
	type twinKey struct {
		seq  int64
		sum  string
		size int64
	}
	var claimed map[twinKey]*ownFile
	for ; i < len(prior) && byKey == nil; i++ {
		// Recorded, but no longer in the source.
		if f := mr.own[prior[i].base]; f != nil && f.ours && mr.live == "" {
			res.Orphans = append(res.Orphans, f.sub+"/"+f.name)
		}
	}
	for base, f := range mr.own {
		if !f.ours || f.claimed || recorded[base] || foreign[base] || f.own.Seq < req.StartIndex {
			continue
		}
		if claimed == nil {
			claimed = map[twinKey]*ownFile{}
			for _, g := range mr.own {
				if g.claimed && g.ours {
					claimed[twinKey{g.own.Seq, g.own.Sum, g.own.Size}] = g
				}
			}
		}
		switch twin, ok := claimed[twinKey{f.own.Seq, f.own.Sum, f.own.Size}]; {
		case ok:
			res.Duplicate = append(res.Duplicate, fmt.Sprintf("message %d (%s/%s, %s/%s)", twin.msg, twin.sub, twin.name, f.sub, f.name))
		case req.Interrupted && f.own.Seq >= req.NextSeq && mr.live == "":
			// Written by a pass that was interrupted, for a message the source no longer has;
			// files of ours older than the records are not known to be this source's.
			res.Orphans = append(res.Orphans, f.sub+"/"+f.name)
		}
	}
	sort.Strings(res.Duplicate)
	sort.Strings(res.Orphans)
	if len(res.Lost) > 0 {
		res.Listing = readUIDListing(d)
	}
	return res, nil
}

// unrecorded stands in for the records of a source migrated by a version that kept none:
// the files of ours from sequence number first on, in their order, but for those the records
// of the user's other INBOX source name (foreign), which are that source's.
func unrecorded(own map[string]*ownFile, first int64, foreign map[string]bool) []priorMsg {
	var out []priorMsg
	for base, f := range own {
		if f.ours && f.own.Seq >= first && !foreign[base] {
			out = append(out, priorMsg{seq: f.own.Seq, uid: f.uid, base: base, key: f.own.Key()})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].seq < out[j].seq || out[i].seq == out[j].seq && out[i].base < out[j].base
	})
	return out
}

// sameContent reports whether the file f holds size bytes of SHA-256 sum; err says why not
// when it could not be read whole. A file of another size is not read (hashMessageFile).
func sameContent(d *maildir.Dir, f *ownFile, sum [32]byte, size int64, work *workMeter) (bool, error) {
	file, err := d.OpenMessage(f.sub, f.name)
	if err != nil {
		return false, err
	}
	defer file.Close()
	got, err := hashMessageFile(file, size, work)
	return err == nil && got == hex.EncodeToString(sum[:]), err
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
	store := StateStore{Dir: cfg.State()}
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
			foreign, err := cfg.foreign(store, u, source, st.Maildir)
			if err != nil {
				v.Err = err
				break
			}
			res, err := verifyUser(ctx, u, owner(u), st, home, store, foreign)
			v.State = true
			srcs = append(srcs, st.Source)
			v.Dst = st.Maildir
			v.Result.Messages += res.Messages
			v.Result.Found += res.Found
			v.Result.Missing = append(v.Result.Missing, res.Missing...)
			v.Result.Bad = append(v.Result.Bad, res.Bad...)
			v.Result.Deleted = append(v.Result.Deleted, res.Deleted...)
			v.Result.Duplicate = append(v.Result.Duplicate, res.Duplicate...)
			v.Result.Orphans = append(v.Result.Orphans, res.Orphans...)
			v.Result.Flags = append(v.Result.Flags, res.Flags...)
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

func verifyUser(ctx context.Context, u users.User, want int, st *State, home string, store StateStore, foreign foreignFiles) (VerifyResult, error) {
	if st.Offset == 0 {
		return VerifyResult{}, nil
	}
	f, fst, err := openSpool(st.Source, want)
	if err != nil {
		return VerifyResult{}, err
	}
	defer f.Close()
	if _, _, _, err := st.Resume(f, fst); err != nil {
		if errors.Is(err, ErrSourceChanged) {
			err = fmt.Errorf("%w (run a pass first: maildirmig %s)", err, st.Kind)
		}
		return VerifyResult{}, err
	}
	return verifyState(ctx, Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}, want, f, st.Offset, home, st, false, store, st.Kind, foreign)
}

// verifyRequest is a request for op that reads a source as st records it was migrated:
// from its first message's position, with its options, zone and mode. The INBOX's proof
// and each folder's are made from it.
func (st *State) verifyRequest(op string) *workerRequest {
	return &workerRequest{Op: op, StartIndex: st.BaseIndex, NextSeq: st.Messages, Interrupted: st.Open, KeepHeaders: st.KeepHeaders, Unescape: int(unescapeValue(st.Unescape)),
		Location: loadableZone(st.Zone), Loose: st.Loose, LooseFrom: st.LooseFrom}
}

// verifyState proves, as cred, that every message of src[0:size) is in the Maildir st
// records, read with the options and zone st records, each in the file its records (in
// store, of kind) name; with uidlist, that Maildir's dovecot-uidlist must exist with
// st.UIDValidity too. foreign names the files the user's other source recorded in the same
// Maildir.
//
// A message with no file is counted Deleted, not Missing, when the user deleted it through
// Dovecot, by its recorded UID (see sortDeleted).
func verifyState(ctx context.Context, cred Credentials, owner int, src *os.File, size int64, home string, st *State, uidlist bool, store StateStore, kind string, foreign foreignFiles) (VerifyResult, error) {
	name, err := filepath.Rel(home, st.Maildir)
	if err != nil || name == "." || strings.HasPrefix(name, "..") {
		return VerifyResult{}, fmt.Errorf("migrate: verify: %s is not beneath %s", st.Maildir, home)
	}
	req := st.verifyRequest(opVerify)
	req.Home, req.Owner, req.Maildir, req.Size, req.Foreign = home, owner, name, size, foreign
	if req.Prior, err = store.readRecords(st.User, kind, st.Source, st); err != nil {
		return VerifyResult{}, err
	}
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
		err = sortDeleted(&res, func(want map[int64]bool) (map[int64]uint32, error) {
			return store.lookupUIDs(st.User, kind, st.Source, st, want)
		}, st.UIDValidity)
	}
	return res, err
}
