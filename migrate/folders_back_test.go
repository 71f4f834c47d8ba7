package migrate

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/maildir"
)

func TestMboxFolderPath(t *testing.T) {
	t.Parallel()
	for dir, want := range map[string]string{
		".Archive.2019":     "Archive/2019",
		".Entw&APw-rfe.Alt": "Entw&APw-rfe/Alt",
		".&ANw-ber":         "&ANw-ber",
		".amp&-er":          "amp&-er",
		".Über":             "Über", // raw UTF-8 from another tool: Dovecot shows it literally in both
		".sp ace %#":        "sp ace %#",
		".INBOX.sub":        "INBOX/sub", // as discoverFolders maps ~/mail/INBOX/sub
		".Sent":             "Sent",
	} {
		if got, err := MboxFolderPath(dir); got != want || err != nil {
			t.Errorf("MboxFolderPath(%q) = %q, %v; want %q", dir, got, err, want)
		}
	}
	for _, dir := range []string{
		"", ".", "Archive", "..a", ".a.", ".a..b", ".~x", ".a.~b", ".INBOX", ".inbox", ".a/b", ".a\x00",
		".tab\there", ".bad\xff", ".dovecot-uidlist", ".x.dovecot-keywords", ".dovecot-uidvalidity",
		"." + strings.Repeat("l.", 16) + "l",
	} {
		if got, err := MboxFolderPath(dir); err == nil {
			t.Errorf("MboxFolderPath(%q) = %q, want an error", dir, got)
		}
	}
}

func TestMboxFolderPaths(t *testing.T) {
	t.Parallel()
	paths, err := MboxFolderPaths([]string{".a.b", ".a.c", ".a b", ".ab", ".x"})
	if want := []string{"a/b", "a/c", "a b", "ab", "x"}; err != nil || !reflect.DeepEqual(paths, want) {
		t.Errorf("MboxFolderPaths = %q, %v; want %q", paths, err, want)
	}
	for _, dirs := range [][]string{{".a", ".a.b"}, {".x.y.z", ".a", ".x.y"}, {".a.b.c", ".a"}} {
		if _, err := MboxFolderPaths(dirs); err == nil || !strings.Contains(err.Error(), "beneath") {
			t.Errorf("MboxFolderPaths(%q): %v, want the folder with folders beneath it refused", dirs, err)
		}
	}
	if _, err := MboxFolderPaths([]string{".ok", ".~bad"}); err == nil {
		t.Error("a bad name accepted among good ones")
	}
}

// TestFolderRoundTrip takes every folder discoverFolders finds in a folder root through
// maildirFolderName and back through MboxFolderPath: Dovecot must show the same folder name
// for the mbox path that comes back (with the '.' inside a name a level, as Maildir++ made it),
// the path must be the original byte for byte where its levels are modified UTF-7 without a
// '.', and forward again gives the same Maildir++ folder.
func TestFolderRoundTrip(t *testing.T) {
	t.Parallel()
	root := folderTree(t, map[string]string{
		"Plain": oneMessage, "Archive/2019": oneMessage, "Archive/2020/Q1": oneMessage,
		"Entw&APw-rfe/Alt": oneMessage, "amp&-er": oneMessage, "&ZeVnLIqe-": oneMessage,
		"Über": oneMessage, "bad&mutf": oneMessage, "&AGE-": oneMessage, "a.b": oneMessage,
		"sp ace %#\"\\": oneMessage, "smile &2D3eAA-": oneMessage, "INBOX/sub": oneMessage,
	})
	folders, _, err := discoverFolders(openDir(t, root))
	if err != nil {
		t.Fatal(err)
	}
	if len(folders) != 13 {
		t.Fatalf("%d folders found, want 13: %+v", len(folders), folders)
	}
	for _, f := range folders {
		checkFolderRoundTrip(t, f.Name, f.Source, f.Maildir)
	}
}

// checkFolderRoundTrip checks the inverse on one folder the forward mapping made: its IMAP
// name, its mbox path ("" when it has none) and its Maildir++ directory.
func checkFolderRoundTrip(t *testing.T, name, source, dir string) {
	t.Helper()
	back, err := MboxFolderPath(dir)
	if err != nil {
		t.Errorf("%q (%s): MboxFolderPath: %v", name, dir, err)
		return
	}
	if got, want := imapNameOf(strings.Split(back, "/")), strings.ReplaceAll(name, ".", "/"); got != want {
		t.Errorf("%q (%s): back to %q, shown as %q, want %q", name, dir, back, got, want)
	}
	exact := source != "" && !strings.Contains(source, ".")
	for _, l := range strings.Split(source, "/") {
		if _, err := DecodeMUTF7(l); err != nil {
			exact = false
		}
	}
	if exact && back != source {
		t.Errorf("%q: back to %q, want the path %q", name, back, source)
	}
	if again, err := maildirFolderName(imapNameOf(strings.Split(back, "/"))); again != dir || err != nil {
		t.Errorf("%q: forward again gives %q, %v; want %q", name, again, err, dir)
	}
}

// FuzzFolderRoundTrip checks the round trip on every IMAP name maildirFolderName accepts and
// the migration would find in a folder root (no level named like a control file, at most 16
// levels once dots are levels).
func FuzzFolderRoundTrip(f *testing.F) {
	for _, s := range []string{"Archive/2019", "Entwürfe/Alt", "a.b/c", "日本語", "amp&er", "x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		dir, err := maildirFolderName(name)
		if err != nil {
			return
		}
		levels := strings.Split(strings.ReplaceAll(name, ".", "/"), "/")
		if len(levels) > maxFolderDepth {
			return
		}
		for i, l := range levels {
			if controlFile(encodeMUTF7(l), i) {
				return
			}
		}
		stored := make([]string, len(levels))
		for i, l := range levels {
			stored[i] = encodeMUTF7(l)
		}
		checkFolderRoundTrip(t, name, strings.Join(stored, "/"), dir)
	})
}

// TestSubscriptionsRoundTrip writes subscriptions into a Maildir as the migration does,
// brings the file back to mbox with MboxSubscriptions, reads it as the migration reads an mbox
// account's, and writes those into a new Maildir: the same file must come out, and the mbox
// one must subscribe to what Dovecot showed subscribed on the Maildir.
func TestSubscriptionsRoundTrip(t *testing.T) {
	t.Parallel()
	names := []string{"INBOX", "Archive/2019", "Entwürfe", "a.b", "Gone", "amp&er", "日本語/x"}
	first := subscriptionsFile(t, names)
	mboxFile := MboxSubscriptions(first)
	if want := "V\t2\n\nINBOX\nArchive\t2019\nEntw&APw-rfe\na\tb\nGone\namp&-er\n&ZeVnLIqe-\tx\n"; string(mboxFile) != want {
		t.Errorf("mbox subscriptions:\n got %q\nwant %q", mboxFile, want)
	}
	back, err := readSubscriptions(strings.NewReader(string(mboxFile)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"INBOX", "Archive/2019", "Entwürfe", "a/b", "Gone", "amp&er", "日本語/x"}; !reflect.DeepEqual(back, want) {
		t.Errorf("read back %q, want %q", back, want)
	}
	if again := subscriptionsFile(t, back); string(again) != string(first) {
		t.Errorf("forward again:\n got %q\nwant %q", again, first)
	}
	// A Maildir file from before the "V 2" header, levels between dots, and repeats.
	if got, want := string(MboxSubscriptions([]byte("INBOX\nArchive.2019\n\nINBOX\n"))), "V\t2\n\nINBOX\nArchive\t2019\n"; got != want {
		t.Errorf("old format: %q, want %q", got, want)
	}
	if got, want := string(MboxSubscriptions(nil)), "V\t2\n\n"; got != want {
		t.Errorf("no subscriptions: %q, want %q", got, want)
	}
}

// subscriptionsFile returns the subscriptions file the migration writes for names in a new
// Maildir.
func subscriptionsFile(t *testing.T, names []string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Maildir")
	d, err := maildir.Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := writeSubscriptions(d, names, true); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(path, "subscriptions"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
