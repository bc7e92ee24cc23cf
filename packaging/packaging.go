// Package packaging holds what the Debian package ships besides the
// binaries: the systemd units, the conffiles, the maintainer scripts and
// the copyright file. cmd/mkdeb builds the package from them.
package packaging

import "embed"

// Files is debian/ (conffiles, maintainer scripts, copyright) and
// systemd/ (the units).
//
//go:embed debian systemd
var Files embed.FS
