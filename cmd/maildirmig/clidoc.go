package main

import (
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// The man page and the shell completions are generated from the command definitions, through
// this one model of them, so that neither drifts from --help.

// docFlag is one option as the documentation shows it.
type docFlag struct {
	names       []string // long name first, then aliases
	placeholder string   // DIR, FILE, N, ...; "" for a switch
	usage       string   // with the placeholder's backquotes removed
	def         string   // default value as --help shows it; "" when none
	enum        []string // the values of an enumerated flag
}

// docCommand is one visible command.
type docCommand struct {
	name, usage, args, description string
	flags                          []docFlag
}

// docCommands returns the visible commands of app, in --help order.
func docCommands(app *cli.App) []docCommand {
	var out []docCommand
	for _, c := range app.Commands {
		if c.Hidden {
			continue
		}
		dc := docCommand{name: c.Name, usage: c.Usage, args: c.ArgsUsage, description: c.Description}
		for _, f := range c.Flags {
			if df, ok := docFlagOf(f); ok {
				dc.flags = append(dc.flags, df)
			}
		}
		out = append(out, dc)
	}
	return out
}

// docGlobalFlags returns the options of maildirmig itself (--help, --version).
func docGlobalFlags() []docFlag {
	return []docFlag{
		{names: []string{"help", "h"}, usage: "show help: maildirmig --help, or maildirmig COMMAND --help"},
		{names: []string{"version", "v"}, usage: "print the version"},
	}
}

func docFlagOf(f cli.Flag) (docFlag, bool) {
	if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
		return docFlag{}, false
	}
	// Every command's --help is documented once, among maildirmig's own options.
	if f.Names()[0] == "help" {
		return docFlag{}, false
	}
	g, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return docFlag{}, false
	}
	names := append([]string(nil), f.Names()...)
	sort.SliceStable(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	df := docFlag{names: names, usage: g.GetUsage()}
	if g.TakesValue() {
		df.placeholder, df.usage = unquote(df.usage)
		if df.placeholder == "" {
			df.placeholder = "VALUE"
		}
		df.def = strings.Trim(g.GetDefaultText(), `"`)
		if _, slice := f.(*cli.StringSliceFlag); slice {
			df.def = ""
		}
		if ef, ok := f.(*enumFlag); ok {
			df.enum = ef.choices
		}
	}
	return df, true
}

// unquote takes the `PLACEHOLDER` out of a flag's usage, as urfave/cli does for --help.
func unquote(usage string) (name, rest string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name = usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+2+j:]
}

// flagSpelling is how the option is typed: --name, or -n for a one-letter name.
func flagSpelling(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}
