// Package ui owns maildirmig's console: every line a command prints, on stdout or stderr,
// goes through one Console, and so does the status line that shows how far a long job is.
//
// The policy, for every command:
//
//   - stdout carries results (summaries, plans, check reports); stderr carries diagnostics,
//     which start "maildirmig: error: ", "maildirmig: warning: " or "maildirmig: hint: ",
//     are lower case, have no final period and are one line each.
//   - Both streams escape control characters (package escape): a name a user chose must not
//     retitle or rewrite the administrator's screen, nor add a line of its own.
//   - The status line is drawn on stderr, and only when stderr is a terminal (progressbar
//     writes carriage returns and syncs its writer on every frame, which a pipe or a cron log
//     must not get) and the process is in the terminal's foreground. While it is shown, a
//     line printed on either stream clears it, is written whole, and the status line is drawn
//     again below it, so no line is lost or overdrawn.
//
// A Console is safe for concurrent use: a worker pool's callbacks print through it.
package ui

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/maildirmig/maildirmig/internal/escape"
)

// Console is where a command writes. Tests drive it with buffers.
type Console struct {
	prog   string
	out    io.Writer // escaped stdout
	err    io.Writer // escaped stderr
	term   io.Writer // the raw stderr, where the status line is drawn
	mu     sync.Mutex
	status *Progress // shown below the lines printed; nil: none

	// Quiet drops warnings and tells commands to print nothing but errors. Set it before
	// the command starts printing.
	Quiet bool
}

// New returns a Console writing results to stdout and diagnostics, prefixed with prog, to
// stderr.
func New(prog string, stdout, stderr io.Writer) *Console {
	return &Console{prog: prog, out: escape.Writer(stdout), err: escape.Writer(stderr), term: stderr}
}

// Printf writes a result on stdout, above the status line.
func (c *Console) Printf(format string, args ...any) {
	c.print(c.out, fmt.Sprintf(format, args...))
}

// Errorf writes an error diagnostic: "maildirmig: error: ..." on one line.
func (c *Console) Errorf(format string, args ...any) {
	c.diagnostic("error", format, args)
}

// Warningf writes a warning unless the Console is quiet: cron mails whatever lands on stderr.
func (c *Console) Warningf(format string, args ...any) {
	if c.Quiet {
		return
	}
	c.diagnostic("warning", format, args)
}

// Hintf writes a hint, the likely fix of the error before it.
func (c *Console) Hintf(format string, args ...any) {
	c.diagnostic("hint", format, args)
}

// diagnostic writes one line on stderr: a newline or other control inside it (from a file
// name a user chose, say) is escaped, so that no user can add a line of their own to root's
// console.
func (c *Console) diagnostic(kind, format string, args []any) {
	c.print(c.err, c.prog+": "+kind+": "+escape.Line(fmt.Sprintf(format, args...))+"\n")
}

// Out returns stdout as a writer for reports written in pieces: each write lands above the
// status line, escaped.
func (c *Console) Out() io.Writer { return lineWriter{c, c.out} }

// Err returns stderr as Out returns stdout.
func (c *Console) Err() io.Writer { return lineWriter{c, c.err} }

type lineWriter struct {
	c *Console
	w io.Writer
}

func (l lineWriter) Write(p []byte) (int, error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	l.c.clear()
	defer l.c.draw()
	return l.w.Write(p)
}

// print writes text, whole lines, to w above the status line.
func (c *Console) print(w io.Writer, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
	_, _ = io.WriteString(w, text)
	c.draw()
}

// clear takes the status line off the screen, if it is on it. The caller holds c.mu.
func (c *Console) clear() {
	if c.status != nil {
		c.status.clear()
	}
}

// draw draws the status line, if there is one. The caller holds c.mu.
func (c *Console) draw() {
	if c.status != nil {
		c.status.draw()
	}
}

// Progress modes, the values of --progress.
const (
	ProgressAuto   = "auto"   // only when stderr is a terminal
	ProgressAlways = "always" // even in a pipe
	ProgressNever  = "never"
)

// ProgressModes lists the progress modes, the default first.
var ProgressModes = []string{ProgressAuto, ProgressAlways, ProgressNever}

// ShowProgress says whether a command in mode (one of ProgressModes) draws a status line: never
// when quiet; in ProgressAuto mode only when stderr is a terminal.
func (c *Console) ShowProgress(mode string) bool {
	if c.Quiet {
		return false
	}
	switch mode {
	case ProgressAlways:
		return true
	case ProgressNever:
		return false
	}
	return IsTerminal(c.term)
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// width is the number of columns of the terminal w, 80 when it cannot be told.
func width(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	return 80
}

// foreground reports whether this process may draw on the terminal w: not while it runs in
// the background of the shell that started it (maildirmig mbox &, or after ^Z and bg), where
// its status line would be drawn over the administrator's next command. A terminal that is
// not ours to control (a file, a pipe, a terminal that is not the controlling one) has no
// foreground to respect.
func foreground(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return true
	}
	pgrp, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	if err != nil {
		return true
	}
	return pgrp == unix.Getpgrp()
}
