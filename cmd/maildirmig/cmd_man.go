package main

import "github.com/urfave/cli/v2"

func init() {
	commandFactories = append(commandFactories, manCommand)
}

// manCommand prints the man page, generated from the command definitions so that it never
// drifts from --help: maildirmig man > /usr/local/share/man/man8/maildirmig.8
func manCommand(u *ui) *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the manual page (roff)",
		Hidden: true,
		Action: func(c *cli.Context) error {
			page, err := c.App.ToMan()
			if err != nil {
				return err
			}
			u.printf("%s", page)
			return nil
		},
	}
}
