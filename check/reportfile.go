package check

import (
	"bufio"
	"io"

	"github.com/maildirmig/maildirmig/internal/wholefile"
)

// ReportFileMode is the mode of a report file: node_exporter, which reads it, runs as a user
// of its own.
const ReportFileMode = 0o644

// WriteReportFile writes a report, through write, to the file path so that a reader (the
// textfile collector of node_exporter, a monitoring script) finds the old report or the new
// one, whole, and never a part (package wholefile): a run killed half-way leaves path as it
// was, and its temporary file, .NAME.PID.tmp, is not a *.prom file.
//
// The directory is guarded: no symlink is followed in any component of path, and it must be
// root's (or that of the user running the check) and writable by its owner only, or another
// user could replace the report or the directory under it. node_exporter's textfile directory
// as Debian ships it (/var/lib/prometheus/node-exporter, root's, mode 0755) is such a one.
func WriteReportFile(path string, write func(io.Writer) error) error {
	f, err := wholefile.Create(path, wholefile.Options{Mode: ReportFileMode, Replace: true, Guarded: true})
	if err != nil {
		return err
	}
	defer f.Abort()
	w := bufio.NewWriter(f)
	if err := write(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Commit()
}
