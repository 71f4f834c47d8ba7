package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
)

func newSHA256() hash.Hash { return sha256.New() }

// verifyMaildir re-reads src[0:size) and proves every message is in d: it recomputes what
// Convert stored for each message and finds the file whose base name carries that message's
// position and content hash (the deterministic part of the names the writer gives), then
// re-reads the file and compares the whole hash.
func verifyMaildir(ctx context.Context, req *workerRequest, src io.ReaderAt, size int64, d *maildir.Dir) (VerifyResult, error) {
	var res VerifyResult
	entries, err := d.Messages()
	if err != nil {
		return res, err
	}
	byKey := make(map[string]maildir.Entry, len(entries))
	for _, e := range entries {
		if k, ok := nameKey(e.Name); ok {
			byKey[k] = e
		}
	}
	loc := time.Local
	if req.Location != "" && req.Location != "Local" {
		if l, err := time.LoadLocation(req.Location); err == nil {
			loc = l
		}
	}
	r := mbox.NewReader(src, size, mbox.Options{Unescape: mbox.Unescape(req.Unescape), Location: loc})
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		m, err := r.Next()
		if err == io.EOF {
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
		if _, err := io.Copy(h, m.Body); err != nil {
			return res, fmt.Errorf("migrate: verify: message %d: %w", pos+1, err)
		}
		sum := hex.EncodeToString(h.Sum(nil))
		res.Messages++
		e, ok := byKey[fmt.Sprintf("%d:%s", pos, sum[:16])]
		if !ok {
			res.Missing = append(res.Missing, fmt.Sprintf("message %d at offset %d", pos+1, m.Offset))
			continue
		}
		f, err := d.OpenMessage(e.Sub, e.Name)
		if err != nil {
			res.Missing = append(res.Missing, fmt.Sprintf("message %d (%s/%s): %v", pos+1, e.Sub, e.Name, err))
			continue
		}
		got, err := fileSHA256(f)
		f.Close()
		if err != nil || got != sum {
			res.Bad = append(res.Bad, fmt.Sprintf("message %d (%s/%s)", pos+1, e.Sub, e.Name))
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

// VerifyAs proves, as the user cred, that every message of src[0:size) is in the Maildir
// maildirName under home, reading the source with the options it was migrated with.
func VerifyAs(ctx context.Context, cred Credentials, src *os.File, size int64, home, maildirName string, startIndex int64, keepHeaders bool, unescape mbox.Unescape) (VerifyResult, error) {
	req := &workerRequest{Op: opVerify, Home: home, Owner: cred.UID, Maildir: maildirName, Size: size,
		StartIndex: startIndex, KeepHeaders: keepHeaders, Unescape: int(unescape)}
	if os.Geteuid() != 0 {
		req.Owner = os.Geteuid()
	}
	var res VerifyResult
	var got bool
	err := runWorker(ctx, cred, req, src, func(m workerMsg) {
		if m.T == "verified" && m.Verified != nil {
			res, got = *m.Verified, true
		}
	})
	if err == nil && !got {
		err = fmt.Errorf("migrate: the worker ended without a result")
	}
	return res, err
}
