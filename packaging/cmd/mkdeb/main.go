// Command mkdeb builds the golvs Debian package (`make deb`):
// golvs_<version>_amd64.deb with both binaries, both systemd units and the
// conffiles, using nfpm as a library. The version comes from git: the
// newest vX.Y.Z tag, or 0.0~git<commit date>.<hash> before the first one.
//
//	go run ./packaging/cmd/mkdeb [-o DIR] [-version V] [-commit C]
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	var o options
	flag.StringVar(&o.outDir, "o", "bin", "directory to write the .deb to")
	flag.StringVar(&o.version, "version", "", "package version (default: from git)")
	flag.StringVar(&o.commit, "commit", "", "commit to stamp (default: from git)")
	flag.Parse()
	path, err := build(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkdeb: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(path)
}
