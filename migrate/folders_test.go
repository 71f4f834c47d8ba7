package migrate

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/maildir"
)

// The expected encodings below are what Dovecot 2.3.19 wrote on disk for these names.
func TestMUTF7(t *testing.T) {
	t.Parallel()
	tests := []struct{ utf8, mutf7 string }{
		{"INBOX", "INBOX"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"Ünïcödé", "&ANw-n&AO8-c&APY-d&AOk-"},
		{"amp&er", "amp&-er"},
		{"&", "&-"},
		{"日本語", "&ZeVnLIqe-"}, // RFC 3501's example
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"smile 😀", "smile &2D3eAA-"},
		{`sp ace %*"\`, `sp ace %*"\`},
		{"tab\there", "tab&AAk-here"},
	}
	for _, tt := range tests {
		t.Run(tt.utf8, func(t *testing.T) {
			t.Parallel()
			if got := encodeMUTF7(tt.utf8); got != tt.mutf7 {
				t.Errorf("encodeMUTF7(%q) = %q, want %q", tt.utf8, got, tt.mutf7)
			}
			got, err := DecodeMUTF7(tt.mutf7)
			if err != nil || got != tt.utf8 {
				t.Errorf("DecodeMUTF7(%q) = %q, %v, want %q", tt.mutf7, got, err, tt.utf8)
			}
		})
	}
}

func TestDecodeMUTF7Invalid(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"bad&mutf",  // unterminated shift
		"&AGE-",     // encodes 'a', which must stand for itself
		"Über",      // raw 8-bit
		"a\tb",      // raw control character
		"&2D0-",     // lone high surrogate
		"&ZeVnLIq-", // stray bits
		"&Z-",       // less than one UTF-16 unit
		"&\r-",      // Go's base64 would skip the CR
	} {
		if got, err := DecodeMUTF7(s); err == nil {
			t.Errorf("DecodeMUTF7(%q) = %q, want an error", s, got)
		}
	}
}

func FuzzMUTF7(f *testing.F) {
	for _, s := range []string{"Entwürfe/Alt", "a&b", "日本語", "😀x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !strings.ContainsRune(s, 0xfffd) && utf8Valid(s) {
			enc := encodeMUTF7(s)
			got, err := DecodeMUTF7(enc)
			if err != nil || got != s {
				t.Fatalf("round trip of %q through %q gave %q, %v", s, enc, got, err)
			}
		}
		// Whatever decodes must encode back to the same bytes: names are compared encoded.
		if dec, err := DecodeMUTF7(s); err == nil {
			if enc := encodeMUTF7(dec); enc != s {
				t.Fatalf("%q decodes to %q, which encodes to %q", s, dec, enc)
			}
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\x00invalid") == s }

// The expected directories are those Dovecot 2.3.19 created with maildir:~/Maildir for the
// same names given with its separator, '.'.
func TestMaildirFolderName(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, want string }{
		{"Archive", ".Archive"},
		{"Archive/2019", ".Archive.2019"},
		{"x/y", ".x.y"},
		{"a.b", ".a.b"},
		{"ti~lde", ".ti~lde"},
		{"amp&er", ".amp&-er"},
		{"Ünïcödé", ".&ANw-n&AO8-c&APY-d&AOk-"},
		{"Entwürfe/Alt", ".Entw&APw-rfe.Alt"},
		{"sp ace", ".sp ace"},
		{"%star", ".%star"},
		{`back\slash`, `.back\slash`},
		{`quo"te`, `.quo"te`},
		{"inbox2", ".inbox2"},
		{"Archive/INBOX", ".Archive.INBOX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := maildirFolderName(tt.name)
			if err != nil || got != tt.want {
				t.Errorf("maildirFolderName(%q) = %q, %v, want %q", tt.name, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "INBOX", "inbox", "~x", "a/~b", "a.~b", ".hidden", "a.", "a..b", "a//b", "/a", "a/",
		"new\nline", "\xff", strings.Repeat("x", 255)} {
		if got, err := maildirFolderName(bad); err == nil {
			t.Errorf("maildirFolderName(%q) = %q, want an error", bad, got)
		}
	}
}

// folderTree builds a folder root: names ending in "/" are directories, "@target" makes a
// symlink, "|" a FIFO, anything else a file holding that text.
func folderTree(t *testing.T, entries map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range entries {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(name, "/"):
			err = os.MkdirAll(p, 0o700)
		case strings.HasPrefix(content, "@"):
			err = os.Symlink(content[1:], p)
		case content == "|":
			err = unix.Mkfifo(p, 0o600)
		default:
			err = os.WriteFile(p, []byte(content), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func openDir(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

const oneMessage = "From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\nhi\n"

func TestDiscoverFolders(t *testing.T) {
	t.Parallel()
	root := folderTree(t, map[string]string{
		"Plain":                            oneMessage,
		"Archive/2019":                     oneMessage,
		"Archive/2020":                     "",
		"Archive/.imap/2019/dovecot.index": "x",
		"Entw&APw-rfe/Alt":                 oneMessage,
		"amp&-er":                          oneMessage,
		"Über":                             oneMessage, // raw UTF-8: Dovecot lists it as such
		"bad&mutf":                         oneMessage, // not modified UTF-7: Dovecot lists it literally
		"a.b":                              oneMessage,
		"a/b":                              oneMessage, // the same Maildir++ folder as "a.b"
		"INBOX":                            oneMessage,
		"~tilde":                           oneMessage,
		".hidden":                          oneMessage,
		".dotdir/in":                       oneMessage,
		".imap/dovecot.list.index.log":     "x",
		".imap/Plain/dovecot.index":        "x",
		".subscriptions":                   "V\t2\n\nPlain\n",
		".mailboxlist":                     "mail/Plain\n",
		"Plain.lock":                       "123",
		".temp.host.123.abc":               "x",
		"dovecot.index.log":                "x",
		"dovecot-uidvalidity.6b032ca3":     "",
		"Empty/":                           "",
		"link":                             "@Plain",
		"dirlink":                          "@Archive",
		"fifo":                             "|",
		"bad\xffname":                      oneMessage,
	})
	folders, skipped, err := discoverFolders(openDir(t, root))
	if err != nil {
		t.Fatal(err)
	}
	wantFolders := []Folder{
		{Name: "Archive/2019", Source: "Archive/2019", Maildir: ".Archive.2019", Size: int64(len(oneMessage))},
		{Name: "Archive/2020", Source: "Archive/2020", Maildir: ".Archive.2020", Size: 0},
		{Name: "Entwürfe/Alt", Source: "Entw&APw-rfe/Alt", Maildir: ".Entw&APw-rfe.Alt", Size: int64(len(oneMessage))},
		{Name: "Plain", Source: "Plain", Maildir: ".Plain", Size: int64(len(oneMessage))},
		{Name: "a.b", Source: "a.b", Maildir: ".a.b", Size: int64(len(oneMessage))},
		{Name: "amp&er", Source: "amp&-er", Maildir: ".amp&-er", Size: int64(len(oneMessage))},
		{Name: "bad&mutf", Source: "bad&mutf", Maildir: ".bad&-mutf", Size: int64(len(oneMessage))},
		{Name: "Über", Source: "Über", Maildir: ".&ANw-ber", Size: int64(len(oneMessage))},
	}
	if !reflect.DeepEqual(folders, wantFolders) {
		t.Errorf("folders:\n got %+v\nwant %+v", folders, wantFolders)
	}
	var gotSkipped []string
	for _, s := range skipped {
		if s.Reason == "" {
			t.Errorf("%s skipped without a reason", s.Source)
		}
		gotSkipped = append(gotSkipped, s.Source)
	}
	wantSkipped := []string{".dotdir", ".hidden", "INBOX", "a/b", "bad\xffname", "dirlink", "fifo", "link", "~tilde"}
	if !reflect.DeepEqual(gotSkipped, wantSkipped) {
		t.Errorf("skipped:\n got %q\nwant %q\n(%+v)", gotSkipped, wantSkipped, skipped)
	}
}

func TestDiscoverFoldersKeepsCallerOffset(t *testing.T) {
	t.Parallel()
	root := folderTree(t, map[string]string{"A": oneMessage, "B": oneMessage})
	fd := openDir(t, root)
	for i := 0; i < 2; i++ {
		folders, _, err := discoverFolders(fd)
		if err != nil {
			t.Fatal(err)
		}
		if len(folders) != 2 {
			t.Fatalf("run %d: %d folders, want 2", i, len(folders))
		}
	}
}

func TestOpenBeneath(t *testing.T) {
	t.Parallel()
	root := folderTree(t, map[string]string{
		"Archive/2019": oneMessage,
		"file":         oneMessage,
		"link":         "@file",
		"dirlink":      "@Archive",
		"fifo":         "|",
		"dir/":         "",
	})
	fd := openDir(t, root)
	for _, ok := range []string{"Archive/2019", "file"} {
		f, err := openBeneath(fd, ok)
		if err != nil {
			t.Errorf("openBeneath(%q): %v", ok, err)
			continue
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != oneMessage {
			t.Errorf("openBeneath(%q) read %q, %v", ok, b, err)
		}
	}
	for _, bad := range []string{"link", "dirlink/2019", "fifo", "dir", "../x", "Archive/../file", "", "missing"} {
		f, err := openBeneath(fd, bad)
		if err == nil {
			f.Close()
			t.Errorf("openBeneath(%q) succeeded, want an error", bad)
		}
	}
	if _, err := openBeneath(fd, "link"); !errors.Is(err, maildir.ErrUnsafe) {
		t.Errorf("openBeneath(link) = %v, want ErrUnsafe", err)
	}
}

func TestOpenFolder(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	parent, err := maildir.Open(filepath.Join(home, "Maildir"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	for i := 0; i < 2; i++ { // the second run finds it all there
		d, err := openFolder(parent, ".Archive.2019")
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		d.Close()
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		st, err := os.Lstat(filepath.Join(home, "Maildir", ".Archive.2019", sub))
		if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v", sub, st, err)
		}
	}
	st, err := os.Lstat(filepath.Join(home, "Maildir", ".Archive.2019", "maildirfolder"))
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 || st.Size() != 0 {
		t.Errorf("maildirfolder: %v, %v", st, err)
	}

	for _, bad := range []string{"Archive", ".", "..", "", ".a/b"} {
		if d, err := openFolder(parent, bad); err == nil {
			d.Close()
			t.Errorf("openFolder(%q) succeeded, want an error", bad)
		}
	}

	trap := filepath.Join(home, "Maildir", ".Trap")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(trap, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(home, "target")
	if err := os.Symlink(target, filepath.Join(trap, "maildirfolder")); err != nil {
		t.Fatal(err)
	}
	if d, err := openFolder(parent, ".Trap"); !errors.Is(err, maildir.ErrUnsafe) {
		if err == nil {
			d.Close()
		}
		t.Errorf("openFolder with a symlinked maildirfolder = %v, want ErrUnsafe", err)
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("the symlink's target was created: %v", err)
	}
	if err := os.Symlink(filepath.Join(home, "Maildir", ".Archive.2019"), filepath.Join(home, "Maildir", ".Link")); err != nil {
		t.Fatal(err)
	}
	if d, err := openFolder(parent, ".Link"); !errors.Is(err, maildir.ErrUnsafe) {
		if err == nil {
			d.Close()
		}
		t.Errorf("openFolder on a symlinked folder = %v, want ErrUnsafe", err)
	}
}

func TestReadSubscriptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file string
		want       []string
	}{
		// As Dovecot 2.3.19 wrote it after subscribing a.b, x/y, Ünïcödé, amp&er, INBOX, nonexist.
		{"v2", "V\t2\n\na.b\nx\ty\n&ANw-n&AO8-c&APY-d&AOk-\namp&-er\nINBOX\nnonexist\n",
			[]string{"a.b", "x/y", "Ünïcödé", "amp&er", "INBOX", "nonexist"}},
		{"v1", "Archive/2019\nSent\n\n", []string{"Archive/2019", "Sent"}},
		{"empty", "", nil},
		{"v2 empty", "V\t2\n\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := readSubscriptions(strings.NewReader(tt.file))
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestReadMailboxList(t *testing.T) {
	t.Parallel()
	names, others, err := readMailboxList(strings.NewReader("INBOX\nmail/Sent\nmail/Archive/2019\n~/mail/Entw&APw-rfe\nnews/comp\nmail/\n"), "mail")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"INBOX", "Sent", "Archive/2019", "Entwürfe"}; !reflect.DeepEqual(names, want) {
		t.Errorf("names = %q, want %q", names, want)
	}
	if want := []string{"news/comp", "mail/"}; !reflect.DeepEqual(others, want) {
		t.Errorf("others = %q, want %q", others, want)
	}
}

func TestWriteSubscriptions(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "Maildir")
	d, err := maildir.Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	read := func() string {
		b, err := os.ReadFile(filepath.Join(path, "subscriptions"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	if err := writeSubscriptions(d, []string{"INBOX", "Archive/2019", "Entwürfe", "a.b", "~bad", "Sent"}, false); err != nil {
		t.Fatal(err)
	}
	want := "V\t2\n\nINBOX\nArchive\t2019\nEntw&APw-rfe\na\tb\nSent\n"
	if got := read(); got != want {
		t.Errorf("first write:\n got %q\nwant %q", got, want)
	}
	st, err := os.Lstat(filepath.Join(path, "subscriptions"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode: %v, %v", st, err)
	}

	// What the Maildir already had is kept; nothing is repeated.
	if err := writeSubscriptions(d, []string{"Sent", "Trash"}, false); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), want+"Trash\n"; got != want {
		t.Errorf("second write:\n got %q\nwant %q", got, want)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".subscriptions") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}

	// The same V2 format reads back, with "a.b" now two levels as Maildir++ holds it.
	got, err := readSubscriptions(strings.NewReader(read()))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"INBOX", "Archive/2019", "Entwürfe", "a/b", "Sent", "Trash"}; !reflect.DeepEqual(got, want) {
		t.Errorf("read back %q, want %q", got, want)
	}
}

func TestWriteSubscriptionsRefusesSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "Maildir")
	d, err := maildir.Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(path, "subscriptions")); err != nil {
		t.Fatal(err)
	}
	if err := writeSubscriptions(d, []string{"Sent"}, false); err == nil {
		t.Error("writeSubscriptions through a symlink succeeded")
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("the symlink's target changed: %q", b)
	}
}
