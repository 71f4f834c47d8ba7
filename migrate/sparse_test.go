package migrate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/maildir"
)

// tebibyte is the apparent size of the sparse files the tests plant: hashing one whole would
// take about an hour, and the test would hit go test's timeout.
const tebibyte = 1 << 40

// plantSparse replaces the file at p (or makes one) with an empty file of a tebibyte's apparent
// size, as a user can in their own Maildir; it skips the test where the file system refuses it.
func plantSparse(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	must(t, err)
	defer f.Close()
	if err := f.Truncate(tebibyte); errors.Is(err, unix.EFBIG) || errors.Is(err, unix.EINVAL) {
		t.Skipf("the file system of %s holds no file of a tebibyte: %v", p, err)
	} else if err != nil {
		t.Fatal(err)
	}
}

// convertInto converts the mbox text src into the Maildir d, naming files on host
// test.example, and returns the records.
func convertInto(t *testing.T, d *maildir.Dir, src string) []MessageRecord {
	t.Helper()
	var recs []MessageRecord
	opts := ConvertOptions{Location: time.UTC, Maildir: maildir.Options{Host: "test.example"}, OnMessage: func(r MessageRecord) { recs = append(recs, r) }}
	if _, err := Convert(context.Background(), strings.NewReader(src), int64(len(src)), time.Now(), d, opts); err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestVerifySparseFile: the user replaces a migrated message's file with a sparse file of a
// tebibyte under the same name. verify must call it bad at once, from its size, not hash it
// for an hour while every user behind waits.
func TestVerifySparseFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "Maildir")
	d, err := maildir.Open(dir, true)
	must(t, err)
	defer d.Close()
	src := msgA + msgB
	recs := convertInto(t, d, src)
	victim := recs[0]
	plantSparse(t, filepath.Join(dir, victim.Sub, victim.Name))
	res, err := verifyMaildir(context.Background(), &workerRequest{Location: "UTC"}, strings.NewReader(src), int64(len(src)), d, nil)
	must(t, err)
	n, err := maildir.ParseName(victim.Name)
	must(t, err)
	want := "message 1 (" + victim.Sub + "/" + victim.Name + "): 1099511627776 bytes, not " + strconv.FormatInt(n.Size, 10)
	if res.Found != 1 || len(res.Bad) != 1 || res.Bad[0] != want || len(res.Missing) != 0 {
		t.Errorf("verify: found %d, bad %q, missing %q; want 1 found and bad %q", res.Found, res.Bad, res.Missing, want)
	}
}

// TestConvertSparseFileUnderFutureName: names are predictable, so the user plants a sparse
// file of a tebibyte under the name the next message will get. The run finds "its" file
// there and re-reads it against what it should hold: it must refuse it from its size at once,
// and fail the user, not hash it for an hour.
func TestConvertSparseFileUnderFutureName(t *testing.T) {
	t.Parallel()
	// The names a conversion of both messages gives, learned in a Maildir of its own.
	scratch, err := maildir.Open(filepath.Join(t.TempDir(), "Maildir"), true)
	must(t, err)
	defer scratch.Close()
	future := convertInto(t, scratch, msgA+msgB)[1]

	dir := filepath.Join(t.TempDir(), "Maildir")
	d, err := maildir.Open(dir, true)
	must(t, err)
	defer d.Close()
	convertInto(t, d, msgA)
	plantSparse(t, filepath.Join(dir, future.Sub, future.Name))

	p := filepath.Join(t.TempDir(), "mbox")
	must(t, os.WriteFile(p, []byte(msgA+msgB), 0o600))
	src, err := os.Open(p)
	must(t, err)
	defer src.Close()
	req := &workerRequest{Location: "UTC", Host: "test.example"}
	_, err = convertChecked(context.Background(), req, src, int64(len(msgA+msgB)), time.Now(), d, "", func(workerMsg) {})
	n, perr := maildir.ParseName(future.Name)
	must(t, perr)
	want := "migrate: verification after writing failed: 1 with wrong content (first: message 2 (" + future.Sub + "/" + future.Name +
		"): 1099511627776 bytes, not " + strconv.FormatInt(n.Size, 10) + ")"
	if err == nil || err.Error() != want {
		t.Errorf("conversion with a planted sparse file: %v, want %q", err, want)
	}
}
