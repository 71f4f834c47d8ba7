package main

import (
	"runtime/debug"
	"strings"
)

// versionStamp is the version a package build stamps into the binary:
//
//	go build -ldflags "-X main.versionStamp=1.2.0" ./cmd/maildirmig
//
// packaging/build.sh does. Without it, the module version of go install or the VCS revision
// of a build in a checkout is reported.
var versionStamp string

// version says what the binary was built from: the stamped or module version, then the VCS
// revision and its date and the Go version, as far as the build recorded them.
func version() string {
	info, ok := debug.ReadBuildInfo()
	return describeVersion(versionStamp, info, ok)
}

func describeVersion(stamp string, info *debug.BuildInfo, ok bool) string {
	v := stamp
	var details []string
	if ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		var rev, when string
		dirty := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if dirty {
				rev += " with local changes"
			}
			if d, _, found := strings.Cut(when, "T"); found {
				rev += " of " + d
			}
			details = append(details, "revision "+rev)
		}
		if info.GoVersion != "" {
			details = append(details, info.GoVersion)
		}
	}
	if v == "" {
		v = "unreleased"
		if len(details) == 0 || !strings.HasPrefix(details[0], "revision") {
			details = append([]string{"no version stamp and no VCS information: build with packaging/build.sh"}, details...)
		}
	}
	if len(details) == 0 {
		return v
	}
	return v + " (" + strings.Join(details, ", ") + ")"
}
