package main

import (
	"fmt"
	"regexp"
	"strings"
)

// The manual page carries parts of the README: the runbook of the night, the rollback and the
// audit log's jq examples. They are written once, in README.md, and turned into roff here
// from the README built into the program, so that an administrator reading man maildirmig on
// the server reads what the README says, and a change to those sections reaches the manual by
// regenerating it (TestGeneratedFiles says when).

// manReadme returns the sections of readme (the README's Markdown) the manual carries, as
// roff: .SH RUNBOOK (the runbook section up to its first subsection) and .SH ROLLBACK (its
// subsection whose title starts with Rollback).
func manReadme(readme string) string {
	runbook := markdownSection(readme, "## ", "The night of the switch")
	body, subs := splitSubsections(runbook)
	var b strings.Builder
	if body != "" {
		b.WriteString(".SH RUNBOOK\n" + markdownRoff(body))
	}
	for _, s := range subs {
		if strings.HasPrefix(s.title, "Rollback") {
			b.WriteString(".SH ROLLBACK\n" + markdownRoff(s.body))
		}
	}
	return b.String()
}

// manAuditExamples returns the jq examples of readme's audit log section, as roff.
func manAuditExamples(readme string) string {
	s := markdownSection(readme, "## ", "The audit log")
	m := regexp.MustCompile("(?s)```sh\n(.*?)```\n").FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return markdownRoff("Examples with jq:\n\n```\n" + m[1] + "```\n")
}

// markdownSection returns the body of the section of md whose heading (at level, "## ") starts
// with title, up to the next heading of that level or higher; "" when there is none. A line of
// a fenced code block ("# a comment" in a shell example) is no heading.
func markdownSection(md, level, title string) string {
	lines := strings.Split(md, "\n")
	start, fenced := -1, false
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
		}
		if fenced {
			continue
		}
		if start < 0 && strings.HasPrefix(l, level+title) {
			start = i + 1
			continue
		}
		if h := headingLevel(l); start >= 0 && h > 0 && h <= len(level)-1 {
			return strings.Join(lines[start:i], "\n")
		}
	}
	if start < 0 {
		return ""
	}
	return strings.Join(lines[start:], "\n")
}

// headingLevel is the level of a Markdown heading line (1 for "# "), 0 for another line.
func headingLevel(l string) int {
	n := len(l) - len(strings.TrimLeft(l, "#"))
	if n == 0 || n > 6 || !strings.HasPrefix(l[n:], " ") {
		return 0
	}
	return n
}

type subsection struct{ title, body string }

// splitSubsections splits a section's body at its "### " headings.
func splitSubsections(body string) (string, []subsection) {
	parts := regexp.MustCompile(`(?m)^### `).Split(body, -1)
	var subs []subsection
	for _, p := range parts[1:] {
		title, rest, _ := strings.Cut(p, "\n")
		subs = append(subs, subsection{strings.TrimSpace(title), rest})
	}
	return parts[0], subs
}

// markdownRoff turns the Markdown the README's runbook is written in into roff: paragraphs,
// numbered and bulleted lists whose items hold paragraphs and code, code blocks (indented or
// fenced), tables (kept as they are, in a code block), and inline `code`, **bold** and links.
func markdownRoff(md string) string {
	var b strings.Builder
	writeBlocks(&b, strings.Split(strings.Trim(md, "\n"), "\n"), false)
	return b.String()
}

var (
	listItem = regexp.MustCompile(`^(\d+\.|[-*]) +`)
	mdLink   = regexp.MustCompile(`\[([^]]+)\]\([^)]*\)`)
	mdBold   = regexp.MustCompile(`\*\*([^*]+)\*\*`)
)

// writeBlocks writes the blocks of lines (their common indentation already taken off);
// inItem says they are the content of a list item, whose first paragraph is written already.
func writeBlocks(b *strings.Builder, lines []string, inItem bool) {
	para := ".PP\n"
	if inItem {
		para = ".IP\n"
	}
	for i := 0; i < len(lines); {
		l := lines[i]
		switch {
		case strings.TrimSpace(l) == "":
			i++
		case strings.HasPrefix(l, "```"):
			j := i + 1
			for j < len(lines) && !strings.HasPrefix(lines[j], "```") {
				j++
			}
			writeCode(b, lines[i+1:min(j, len(lines))], inItem)
			i = j + 1
		case strings.HasPrefix(l, "    "):
			j := i
			for j < len(lines) && (strings.HasPrefix(lines[j], "    ") || strings.TrimSpace(lines[j]) == "") {
				j++
			}
			for j > i && strings.TrimSpace(lines[j-1]) == "" {
				j--
			}
			code := make([]string, 0, j-i)
			for _, c := range lines[i:j] {
				code = append(code, strings.TrimPrefix(c, "    "))
			}
			writeCode(b, code, inItem)
			i = j
		case strings.HasPrefix(l, "|"):
			j := i
			for j < len(lines) && strings.HasPrefix(lines[j], "|") {
				j++
			}
			writeCode(b, lines[i:j], inItem)
			i = j
		case headingLevel(l) > 0:
			fmt.Fprintf(b, ".SS %s\n", roffQuoted(inline(strings.TrimSpace(strings.TrimLeft(l, "#")))))
			i++
		case listItem.MatchString(l):
			m := listItem.FindString(l)
			marker, width := strings.TrimSpace(m), len(m)
			first := []string{l[width:]}
			j := i + 1
			for j < len(lines) && !isBlockStart(lines[j]) && strings.TrimSpace(lines[j]) != "" && !strings.HasPrefix(lines[j], " ") {
				first = append(first, lines[j])
				j++
			}
			var rest []string
			for j < len(lines) {
				if strings.TrimSpace(lines[j]) == "" {
					// A blank line stays in the item when the item goes on after it.
					k := j
					for k < len(lines) && strings.TrimSpace(lines[k]) == "" {
						k++
					}
					if k == len(lines) || !strings.HasPrefix(lines[k], strings.Repeat(" ", width)) {
						break
					}
				} else if !strings.HasPrefix(lines[j], strings.Repeat(" ", width)) {
					break
				}
				rest = append(rest, strings.TrimPrefix(lines[j], strings.Repeat(" ", width)))
				j++
			}
			// The item's own lines before its first blank or code line are its first paragraph.
			k := 0
			for k < len(rest) && strings.TrimSpace(rest[k]) != "" && !strings.HasPrefix(rest[k], "    ") && !isBlockStart(rest[k]) {
				first = append(first, rest[k])
				k++
			}
			tag := marker
			if marker == "-" || marker == "*" {
				tag = `\(bu`
			}
			fmt.Fprintf(b, ".IP %s %d\n%s\n", tag, width+1, roffLine(inline(joinLines(first))))
			writeBlocks(b, rest[k:], true)
			i = j
			para = ".PP\n"
			if inItem {
				para = ".IP\n"
			}
		default:
			j := i
			for j < len(lines) && strings.TrimSpace(lines[j]) != "" && !isBlockStart(lines[j]) && !(j > i && strings.HasPrefix(lines[j], "    ")) {
				j++
			}
			b.WriteString(para + roffLine(inline(joinLines(lines[i:j]))) + "\n")
			i = j
		}
	}
}

// isBlockStart reports whether l starts a block other than a paragraph.
func isBlockStart(l string) bool {
	return strings.HasPrefix(l, "```") || strings.HasPrefix(l, "|") || headingLevel(l) > 0 || listItem.MatchString(l)
}

func joinLines(lines []string) string {
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, " ")
}

// writeCode writes lines as an example, kept as they are.
func writeCode(b *strings.Builder, lines []string, inItem bool) {
	if inItem {
		b.WriteString(".IP\n")
	} else {
		b.WriteString(".PP\n")
	}
	b.WriteString(".RS\n.EX\n")
	for _, l := range lines {
		b.WriteString(roffLine(roff(l)) + "\n")
	}
	b.WriteString(".EE\n.RE\n")
}

// inline turns a line of Markdown into roff text: `code` and **bold** in bold, a link as its
// text, the rest escaped.
func inline(s string) string {
	var b strings.Builder
	for i, part := range strings.Split(s, "`") {
		if i%2 == 1 {
			b.WriteString(`\fB` + roff(part) + `\fR`)
			continue
		}
		part = roff(part)
		part = mdLink.ReplaceAllString(part, "$1")
		part = mdBold.ReplaceAllString(part, `\fB$1\fR`)
		b.WriteString(part)
	}
	return b.String()
}

// roffLine keeps a line of text from being read as a request.
func roffLine(s string) string {
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		return `\&` + s
	}
	return s
}

// roffQuoted quotes a macro argument.
func roffQuoted(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `\(dq`) + `"`
}
