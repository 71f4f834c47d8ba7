package check

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/maildirmig/maildirmig/internal/escape"
)

// WriteText writes one line per listed problem, repairs included, then, unless quiet, a summary
// line. A healthy quiet report writes nothing, so cron mails only on trouble. What a user chose
// (the names in paths and details) is escaped, so that each problem is one line and no user
// can write a line of their own, such as a forged summary.
func WriteText(w io.Writer, r *Report, quiet bool) error {
	var b strings.Builder
	for _, p := range r.Problems {
		sev := p.Severity.String()
		if p.Fixed != "" {
			sev = "fixed"
		}
		b.WriteString(sev)
		b.WriteString(": ")
		if p.User != "" {
			b.WriteString("user " + escape.Line(p.User) + ": ")
		}
		fmt.Fprintf(&b, "%s: %s [%s]", escape.Line(p.Path), escape.Line(p.Detail), p.Kind)
		if p.Fixed != "" {
			b.WriteString(" (" + escape.Line(p.Fixed) + ")")
		}
		b.WriteByte('\n')
	}
	// One line per kind and severity: a roll-up of warnings is no critical, whatever else
	// the report holds.
	unlisted := slices.Clone(r.UnlistedKinds)
	slices.SortStableFunc(unlisted, func(a, b Unlisted) int {
		return cmp.Or(cmp.Compare(rollupRank(a), rollupRank(b)), cmp.Compare(slices.Index(Kinds, a.Kind), slices.Index(Kinds, b.Kind)))
	})
	for _, u := range unlisted {
		sev := u.Severity.String()
		if u.Fixed {
			sev = "fixed"
		}
		fmt.Fprintf(&b, "%s: %d more not listed [%s]\n", sev, u.Count, u.Kind)
	}
	if !quiet {
		b.WriteString(Summary(r))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// rollupRank orders the unlisted problems as their severities are ordered (Worse), the worst
// first, repairs last.
func rollupRank(u Unlisted) int {
	if u.Fixed {
		return 4
	}
	for i, s := range []Severity{Critical, Unknown, Warning, OK} {
		if u.Severity == s {
			return i
		}
	}
	return 3
}

// Summary is the report in one line, starting with its status as Nagios plugins do.
func Summary(r *Report) string {
	s := fmt.Sprintf("%s: %d users, %d maildirs, %d folders, %d messages, %d bytes: ",
		strings.ToUpper(r.Status().String()), r.Users, r.Maildirs, r.Folders, r.Messages, r.Bytes)
	if r.Error != "" {
		return strings.ToUpper(Unknown.String()) + ": could not check: " + escape.Line(r.Error)
	}
	if r.Criticals+r.Warnings+r.Unknowns == 0 {
		s += "no problems"
	} else {
		s += fmt.Sprintf("%d critical, %d warning, %d unknown", r.Criticals, r.Warnings, r.Unknowns)
	}
	if r.Fixed > 0 {
		s += fmt.Sprintf(", %d fixed", r.Fixed)
	}
	return s
}

// WriteJSON writes the report as one JSON object with its status and exit code.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WritePrometheus writes the report in the Prometheus text format, for node_exporter's textfile
// collector. Every kind gets a sample, zero included, so that alerts see a problem go away; a
// report that could not be made (Failed) has its status, 3, and its time and nothing else, so
// that a failing check reaches the alerts instead of leaving an empty file, and no count of
// zero problems claims a health nobody looked at.
func WritePrometheus(w io.Writer, r *Report, now time.Time) error {
	var b strings.Builder
	gauge := func(name, help string, v any) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %v\n", name, help, name, name, v)
	}
	gauge("maildirmig_check_status", "Nagios status of the last check: 0 ok, 1 warning, 2 critical, 3 unknown.", int(r.Status()))
	if !r.failed {
		gauge("maildirmig_check_users", "Users checked.", r.Users)
		gauge("maildirmig_check_maildirs", "Maildirs checked, folders excluded.", r.Maildirs)
		gauge("maildirmig_check_folders", "Maildir++ folders checked.", r.Folders)
		gauge("maildirmig_check_messages", "Message files in cur/ and new/.", r.Messages)
		gauge("maildirmig_check_bytes", "Bytes of message files in cur/ and new/.", r.Bytes)
		b.WriteString("# HELP maildirmig_check_problems Problems left after the last check, by kind.\n")
		b.WriteString("# TYPE maildirmig_check_problems gauge\n")
		for _, k := range Kinds {
			fmt.Fprintf(&b, "maildirmig_check_problems{kind=%q} %d\n", string(k), r.Counts[k])
		}
		gauge("maildirmig_check_fixed", "Problems repaired by the last check with --fix.", r.Fixed)
	}
	gauge("maildirmig_check_last_run_timestamp_seconds", "When the last check ran.", now.Unix())
	_, err := io.WriteString(w, b.String())
	return err
}
