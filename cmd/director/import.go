package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/golvs/golvs/config/keepalived"
)

// Exit codes of `director import`.
const (
	importOK         = 0
	importInvalid    = 1 // not valid keepalived syntax, or unreadable
	importUsage      = 2
	importIncomplete = 3 // converted, but something was not
)

// cmdImport is `director import [-o FILE] keepalived.conf`: the topology
// goes to stdout (or FILE), everything not converted to stderr as
// FILE:LINE: not converted: WHAT (WHY).
func cmdImport(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("import", stderr)
	out := fs.String("o", "", "write the topology to this file instead of standard output")
	// The file may come before or after -o.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return importUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: director import [-o FILE] keepalived.conf")
		return importUsage
	}
	nodes, warnings, err := keepalived.Read(pos[0])
	for _, w := range warnings {
		fmt.Fprintf(stderr, "%s: warning: %s\n", w.Pos, w.Msg)
	}
	if err != nil {
		var se *keepalived.SyntaxError
		if errors.As(err, &se) {
			fmt.Fprintln(stderr, se.Error())
		} else {
			fmt.Fprintf(stderr, "director import: %v\n", err)
		}
		return importInvalid
	}
	res, err := keepalived.Convert(pos[0], nodes)
	if err != nil {
		fmt.Fprintf(stderr, "director import: %v\n", err)
		return importInvalid
	}
	for _, n := range res.Notes {
		fmt.Fprintln(stderr, n.String())
	}
	if *out != "" {
		if err := os.WriteFile(*out, []byte(res.TOML), 0o644); err != nil {
			fmt.Fprintf(stderr, "director import: %v\n", err)
			return importInvalid
		}
	} else if _, err := io.WriteString(stdout, res.TOML); err != nil {
		fmt.Fprintf(stderr, "director import: %v\n", err)
		return importInvalid
	}
	if !res.Complete() {
		return importIncomplete
	}
	return importOK
}
