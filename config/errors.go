package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
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
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

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
