package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestManReadme: the manual's RUNBOOK and ROLLBACK are the README's, whatever they say: a
// README whose runbook gained a step and whose rollback was rewritten (bullets, a fenced code
// block, a table, a command of its own) gives a manual with exactly that, and groff renders it
// without a warning. Nothing but the README has to change for the manual to follow.
func TestManReadme(t *testing.T) {
	t.Parallel()
	readme := "# maildirmig\n\nIntro.\n\n## The audit log\n\nLog.\n\n```sh\n# a comment, no heading\njq -r '.user' /var/log/maildirmig/audit.jsonl\n```\n\n" +
		"## The night of the switch: runbook\n\nOn the night:\n\n" +
		"1. **Record.** `maildirmig record before.json` before Dovecot stops, as\n   [the recording](#record) says:\n\n       maildirmig record /root/before.json\n\n   Keep the file.\n" +
		"2. **Migrate.** `maildirmig mbox --audit-messages`.\n\n" +
		"### Rollback, the next morning\n\n- Run `maildirmig rollback --dry-run`, then:\n\n  ```\n  maildirmig rollback alice\n  ```\n- .dotted line stays text\n\n" +
		"| before | after |\n| --- | --- |\n| mbox | Maildir |\n\n" +
		"### Coming from perfect_maildir.pl\n\nNot in the manual.\n\n## Exit codes\n\nNot either.\n"
	got := manAuditExamples(readme) + manReadme(readme)
	for _, want := range []string{
		"Examples with jq:\n.PP\n.RS\n.EX\n# a comment, no heading\njq \\-r '.user' /var/log/maildirmig/audit.jsonl\n.EE\n.RE\n",
		".SH RUNBOOK\n.PP\nOn the night:\n",
		".IP 1. 4\n\\fBRecord.\\fR \\fBmaildirmig record before.json\\fR before Dovecot stops, as the recording says:\n",
		".IP\n.RS\n.EX\nmaildirmig record /root/before.json\n.EE\n.RE\n.IP\nKeep the file.\n",
		".IP 2. 4\n\\fBMigrate.\\fR \\fBmaildirmig mbox \\-\\-audit\\-messages\\fR.\n",
		".SH ROLLBACK\n.IP \\(bu 3\nRun \\fBmaildirmig rollback \\-\\-dry\\-run\\fR, then:\n.IP\n.RS\n.EX\nmaildirmig rollback alice\n.EE\n.RE\n",
		".IP \\(bu 3\n\\&.dotted line stays text\n",
		".PP\n.RS\n.EX\n| before | after |\n| \\-\\-\\- | \\-\\-\\- |\n| mbox | Maildir |\n.EE\n.RE\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the manual lacks\n%s\nin\n%s", want, got)
		}
	}
	for _, not := range []string{"Not in the manual", "Not either", "Intro"} {
		if strings.Contains(got, not) {
			t.Errorf("the manual took %q from a section it does not carry", not)
		}
	}
	if bare := regexp.MustCompile(`(^|[^\\])-`).FindString(got); bare != "" {
		t.Errorf("a hyphen not written as \\-: %q", bare)
	}
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("groff not installed")
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(".TH T 8\n" + got)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff: %v\n%s", err, out)
	}
}

// TestManCarriesReadme: the manual built into the program carries the README's runbook and
// rollback steps, each numbered step with its bold title.
func TestManCarriesReadme(t *testing.T) {
	page := string(generate(t, "man"))
	steps := 0
	for _, title := range []string{"The night of the switch", "Rollback"} {
		section := readme(t)
		i := strings.Index(section, "## "+title)
		if i < 0 {
			t.Fatalf("README has no section %q", title)
		}
		section = section[i:]
		if j := strings.Index(section[3:], "\n##"); j >= 0 {
			section = section[:j+3]
		}
		for _, m := range regexp.MustCompile(`(?m)^\d+\. \*\*([^*]+)\*\*`).FindAllStringSubmatch(section, -1) {
			steps++
			if !strings.Contains(page, `\fB`+roff(m[1])+`\fR`) {
				t.Errorf("the manual lacks the README's step %q", m[1])
			}
		}
	}
	if steps < 7 {
		t.Errorf("found %d titled steps in the README's runbook, want the 7 of the night at least", steps)
	}
}
