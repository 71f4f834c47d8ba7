// Package maildirmig holds the README, so that the manual page (maildirmig man) takes its
// runbook, rollback and audit-log examples from it and the two never say different things.
// The program itself is cmd/maildirmig.
package maildirmig

import _ "embed"

// README is README.md, as built into the program.
//
//go:embed README.md
var README string
