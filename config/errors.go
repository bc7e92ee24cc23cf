package config

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is one problem in a topology file, placed at the key it concerns
// (or the table that lacks a required key).
type Error struct {
	File      string
	Line, Col int
	Msg       string // includes the context, e.g. `service "web": backend 2: ...`
}

func (e Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Errors is every problem found in one file, sorted by position. Load and
// Parse return it (as error) so a check can list all problems at once;
// callers get at it with errors.As.
//
// A file with more than MaxErrors problems gets the first MaxErrors, then
// one last Error, placed at the first one left out, that counts the rest
// ("... and 49900 more errors"): a generated file with one mistake per
// service must not print megabytes.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Limits on what an error list may cost to build and to print.
const (
	// MaxErrors is how many errors Load and Parse report one by one.
	MaxErrors = 100
	// maxKept is how many the decoder formats before it only counts:
	// sorting needs more than MaxErrors, but not millions.
	maxKept = 10 * MaxErrors
	// maxQuoted is how much of a value from the file a message quotes.
	maxQuoted = 128
	// maxMsg bounds a whole message, whatever built it.
	maxMsg = 1024
)

// sort orders by position; errors at the same place keep the order in which
// they were found, which follows the file.
func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b Error) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Col, b.Col)
	})
}

// capped sorts es and keeps the first MaxErrors, with a last entry that
// counts the rest (uncounted more were dropped before formatting).
func (es Errors) capped(uncounted int) Errors {
	es.sort()
	for i := range es {
		es[i].Msg = clipText(es[i].Msg, maxMsg)
	}
	if len(es) <= MaxErrors && uncounted == 0 {
		return es
	}
	n := len(es) - MaxErrors + uncounted
	first := es[min(MaxErrors, len(es)-1)]
	out := append(es[:min(MaxErrors, len(es)):min(MaxErrors, len(es))], Error{File: first.File, Line: first.Line, Col: first.Col,
		Msg: fmt.Sprintf("... and %d more errors", n)})
	return out
}

// clip is a value from the file in a message: %q and %s print at most
// maxQuoted bytes of it, then say how long it was.
type clip string

func (c clip) Format(f fmt.State, verb rune) {
	s := string(c)
	cut := len(s) > maxQuoted
	if cut {
		s = prefixUTF8(s, maxQuoted)
	}
	if verb == 'q' {
		io.WriteString(f, strconv.Quote(s))
	} else {
		io.WriteString(f, s)
	}
	if cut {
		fmt.Fprintf(f, "... (%d bytes)", len(c))
	}
}

// clipArgs wraps the string arguments of a message in clip.
func clipArgs(args []any) []any {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = clip(s)
		}
	}
	return args
}

// clipText cuts s to about n bytes on a rune boundary, marking the cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return prefixUTF8(s, n) + "..."
}

// prefixUTF8 is the longest prefix of s of at most n bytes that does not
// split a UTF-8 sequence.
func prefixUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
