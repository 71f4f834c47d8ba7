package maildir

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// smallFS mounts a tmpfs of size bytes on a new directory and returns it;
// it needs root, and skips otherwise.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+size+",mode=0755"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// TestENOSPCNamesPathOnce: a message that does not fit on the file system
// fails with ENOSPC, an error that names its tmp/ file once, and leaves
// nothing in tmp/.
func TestENOSPCNamesPathOnce(t *testing.T) {
	t.Parallel()
	md := filepath.Join(smallFS(t, "64k"), "Maildir")
	_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
	defer w.Close()
	big := bytes.Repeat([]byte("a line of a message that will not fit\n"), 8192)
	_, err := w.Add(&Message{Date: testDate, New: true, Content: bytes.NewReader(big)})
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Add on a full file system: %v, want ENOSPC", err)
	}
	tmp := filepath.Join(md, "tmp") + "/"
	if n := strings.Count(err.Error(), tmp); n != 1 {
		t.Errorf("error names a tmp/ path %d times, want once: %v", n, err)
	}
	if !strings.HasPrefix(err.Error(), "maildir: write "+tmp) || !strings.HasSuffix(err.Error(), ": no space left on device") {
		t.Errorf("error %q, want \"maildir: write %s...: no space left on device\"", err, tmp)
	}
	if n := countFiles(t, md, "tmp"); n != 0 {
		t.Errorf("%d files left in tmp/", n)
	}
}
