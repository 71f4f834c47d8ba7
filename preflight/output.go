package preflight

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/maildirmig/maildirmig/check"
)

// WriteText writes the report for a person: what must change first, with the lines to
// apply, then what is fine, then the commands of the night (none once the switch is done).
// With quiet, findings that are fine and the plan are left out.
func WriteText(w io.Writer, r *Report, quiet bool) error {
	var b strings.Builder
	for _, sev := range []check.Severity{check.Critical, check.Unknown, check.Warning, check.OK} {
		for _, f := range r.Findings {
			if f.Severity != sev || (quiet && sev == check.OK) {
				continue
			}
			fmt.Fprintf(&b, "%s: %s: %s\n", strings.ToUpper(sev.String()), f.Topic, f.Message)
			for _, line := range f.Fix {
				fmt.Fprintf(&b, "    %s\n", line)
			}
		}
	}
	if !quiet {
		fmt.Fprintf(&b, "plan: %d users, %d to migrate, %d bytes\n", r.Users, r.Migrate, r.Bytes)
		if len(r.Commands) > 0 {
			b.WriteString("the night's commands:\n")
		}
		for _, c := range r.Commands {
			fmt.Fprintf(&b, "    %s\n", c)
		}
	}
	fmt.Fprintf(&b, "PREFLIGHT %s\n", strings.ToUpper(r.Status().String()))
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as one JSON object, with its status.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Status check.Severity `json:"status"`
		*Report
	}{r.Status(), r})
}

// WriteJSONError writes the object of a preflight that could not run, so that monitoring
// always reads a status.
func WriteJSONError(w io.Writer, err error) error {
	return json.NewEncoder(w).Encode(struct {
		Status check.Severity `json:"status"`
		Error  string         `json:"error"`
	}{check.Unknown, err.Error()})
}
