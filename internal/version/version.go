// Package version says which build of golvs is running: `director version`
// and `realserver version` print it, and the package build stamps it.
//
// A release build sets both variables with the linker:
//
//	go build -ldflags "-X github.com/golvs/golvs/internal/version.Version=0.1.0
//	                   -X github.com/golvs/golvs/internal/version.Commit=abc1234"
//
// A plain `go build` in a checkout leaves them empty; the version control
// stamp Go embeds (vcs.revision, vcs.modified) then names the commit.
package version

import (
	"fmt"
	"runtime/debug"
)

// Set by -ldflags "-X ...". Empty in an unstamped build.
var (
	Version string
	Commit  string
)

// Info is the version and commit of this binary.
type Info struct {
	Version string // e.g. "0.1.0" or "(devel)"
	Commit  string // full or short hash; "+dirty" when built from a modified tree; "unknown" without a stamp
}

// Get returns the stamped version, else what the Go toolchain recorded.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(Version, Commit, bi)
}

// resolve prefers the linker stamp and falls back to the build info: a
// module version when installed with `go install mod@vX`, vcs settings when
// built in a checkout.
func resolve(ver, commit string, bi *debug.BuildInfo) Info {
	in := Info{Version: ver, Commit: commit}
	if bi != nil {
		if in.Version == "" && bi.Main.Version != "" {
			in.Version = bi.Main.Version
		}
		if in.Commit == "" {
			var rev string
			var dirty bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if rev != "" {
				in.Commit = rev
				if dirty {
					in.Commit += "+dirty"
				}
			}
		}
	}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	return in
}

// String is the line the version commands print: "PROG VERSION (commit C)".
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s)", i.Version, i.Commit)
}
