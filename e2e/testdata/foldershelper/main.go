// Command foldershelper does, as the user, the folder part of a migration that the per-folder
// continuity test cannot do with `maildirmig convert`: it finds the mbox folders of
// $HOME/mail, creates their Maildir++ folders in $HOME/Maildir with the migrate package,
// carries the subscriptions over, and prints the folders as JSON for the test to convert.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/migrate"
)

func main() {
	if err := run(os.Getenv("HOME")); err != nil {
		fmt.Fprintln(os.Stderr, "foldershelper:", err)
		os.Exit(1)
	}
}

func run(home string) error {
	root, err := unix.Open(filepath.Join(home, "mail"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	folders, skipped, err := migrate.DiscoverFolders(root)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintf(os.Stderr, "foldershelper: skipped %s: %s\n", s.Source, s.Reason)
	}
	inbox, err := maildir.Open(filepath.Join(home, "Maildir"), true)
	if err != nil {
		return err
	}
	defer inbox.Close()
	for _, f := range folders {
		d, err := migrate.OpenFolder(inbox, f.Maildir)
		if err != nil {
			return err
		}
		d.Close()
	}
	f, err := migrate.OpenBeneath(root, ".subscriptions")
	switch {
	case err == nil:
		names, err := migrate.ReadSubscriptions(f)
		f.Close()
		if err != nil {
			return err
		}
		if err := migrate.WriteSubscriptions(inbox, names); err != nil {
			return err
		}
	case !errors.Is(err, unix.ENOENT):
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(folders)
}
