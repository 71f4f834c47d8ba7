package migrate

// The way back for folders: the inverse of maildirFolderName and of the subscriptions
// conversion (folders.go), for writing a user's Maildir++ folders back as mbox files beneath
// ~/mail.
//
// Maildir++ keeps the levels of a folder between dots, in modified UTF-7: ".Entw&APw-rfe.Alt"
// is the folder Dovecot shows as "Entwürfe/Alt" (with the namespace separator '/'), and mbox
// keeps it as the file Entw&APw-rfe/Alt, the same levels between slashes. So the inverse
// keeps every level's bytes and only changes the separator. The forward mapping is not
// one-to-one: a '.' inside an mbox folder name becomes a hierarchy level (mbox "a.b" and
// "a/b" are both Maildir++ ".a.b"), and a level stored in raw UTF-8 ("Über") becomes modified
// UTF-7 (".&ANw-ber"). The inverse gives "a/b" and "&ANw-ber": the folder Dovecot showed for
// the Maildir, which is what a rollback must give back. For every mbox path whose levels are
// modified UTF-7 without '.', forward then inverse gives the path back byte for byte.
//
// Subscriptions need no mapping: both storages keep one name per line after the "V\t2\n\n"
// header, with a tab between hierarchy levels, each in modified UTF-7 (Maildir++ levels are
// the mbox levels). MboxSubscriptions only brings a Maildir file from before that header
// (levels between dots) to it.

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// MboxFolderPath returns the path, beneath the mbox folder root (~/mail), of the mbox file
// Dovecot shows as the folder it shows for the Maildir++ directory dirName (".Archive.2019" →
// "Archive/2019"). It refuses a name that is not a Maildir++ folder (no leading '.', an empty
// level), INBOX, and levels an mbox folder root cannot hold as Dovecot would show them: one
// that begins with '~', holds a control character, is neither modified UTF-7 nor UTF-8, or
// is the name of a file Dovecot or the migration keep for themselves (dovecot-uidlist...);
// and more than 16 levels.
func MboxFolderPath(dirName string) (string, error) {
	if len(dirName) < 2 || dirName[0] != '.' || strings.ContainsAny(dirName, "/\x00") {
		return "", fmt.Errorf("migrate: %q is not a Maildir++ folder name", dirName)
	}
	levels := strings.Split(dirName[1:], ".")
	if len(levels) > maxFolderDepth {
		return "", fmt.Errorf("migrate: Maildir++ folder %q has more than %d levels", dirName, maxFolderDepth)
	}
	for i, level := range levels {
		switch {
		case level == "":
			return "", fmt.Errorf("migrate: Maildir++ folder %q has an empty level", dirName)
		case strings.HasPrefix(level, "~"):
			return "", fmt.Errorf("migrate: Maildir++ folder %q has a level beginning with '~', which Dovecot refuses", dirName)
		case controlFile(level, i):
			return "", fmt.Errorf("migrate: Maildir++ folder %q has a level named like a file Dovecot keeps beside mbox folders", dirName)
		}
		name, err := folderLevel(level)
		if err != nil {
			return "", fmt.Errorf("migrate: Maildir++ folder %q: %w", dirName, err)
		}
		if i == 0 && len(levels) == 1 && strings.EqualFold(name, "INBOX") {
			return "", errors.New("migrate: the Maildir++ folder .INBOX has no mbox equivalent beside the INBOX")
		}
	}
	return strings.Join(levels, "/"), nil
}

// MboxFolderPaths returns MboxFolderPath of every Maildir++ folder of dirNames, in the same
// order, and refuses a set an mbox folder root cannot hold: a folder with folders beneath it
// (".a" and ".a.b"), since the mbox file "a" cannot also be the directory "a/".
func MboxFolderPaths(dirNames []string) ([]string, error) {
	paths, refused := mboxFolderPathsEach(dirNames)
	for _, err := range refused {
		if err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// mboxFolderPathsEach is MboxFolderPaths folder by folder, for a rollback that refuses only
// the folders it cannot write: the mbox path of each Maildir++ folder of dirNames ("" for a
// name MboxFolderPath refuses), and why each refused one is. Of a folder and one beneath it
// (".a" and ".a.b"), the one beneath is refused.
func mboxFolderPathsEach(dirNames []string) ([]string, []error) {
	paths := make([]string, len(dirNames))
	refused := make([]error, len(dirNames))
	set := map[string]bool{}
	for i, d := range dirNames {
		if paths[i], refused[i] = MboxFolderPath(d); refused[i] == nil {
			set[paths[i]] = true
		}
	}
	for i, p := range paths {
		for j := strings.IndexByte(p, '/'); j >= 0 && refused[i] == nil; j = nextSlash(p, j) {
			if set[p[:j]] {
				refused[i] = fmt.Errorf("migrate: folder %s holds mail and has folder %s beneath it, which an mbox folder root cannot hold (a file cannot be a directory)", p[:j], p)
			}
		}
	}
	return paths, refused
}

// nextSlash returns the index of the first '/' of p after i, -1 when there is none.
func nextSlash(p string, i int) int {
	j := strings.IndexByte(p[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// MboxSubscriptions returns the ~/mail/.subscriptions that subscribes an mbox account to what
// the Maildir subscriptions file data subscribes: the same names, in Dovecot's "V 2" format,
// each once, in order. A Maildir file from before that format (levels between dots) is
// brought to it.
func MboxSubscriptions(data []byte) []byte {
	var lines []string
	if rest, ok := bytes.CutPrefix(data, []byte(subscriptionsV2)); ok {
		lines = strings.Split(string(rest), "\n")
	} else if rest, ok := bytes.CutPrefix(data, []byte("V\t2\n")); ok {
		lines = strings.Split(string(rest), "\n")
	} else {
		lines = strings.Split(string(data), "\n")
		for i, l := range lines {
			lines[i] = strings.ReplaceAll(l, ".", "\t")
		}
	}
	var out bytes.Buffer
	out.WriteString(subscriptionsV2)
	seen := map[string]bool{}
	for _, l := range lines {
		if l == "" || seen[l] {
			continue
		}
		seen[l] = true
		out.WriteString(l)
		out.WriteByte('\n')
	}
	return out.Bytes()
}
