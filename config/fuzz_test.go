package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzParse checks that Parse never panics, that every failure is Errors
// placed inside the file, and that whatever it accepts is a usable model.
// The seeds in testdata/fuzz/FuzzParse (examples and broken files) run as
// part of the normal tests.
func FuzzParse(f *testing.F) {
	examples, err := filepath.Glob("../examples/*.toml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range examples {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		topo, err := Parse("f.toml", src)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T is not Errors: %v", err, err)
			}
			if len(es) == 0 {
				t.Fatal("empty Errors returned as an error")
			}
			if len(es) > MaxErrors+1 {
				t.Errorf("%d errors, more than MaxErrors and a summary", len(es))
			}
			lines := bytes.Count(src, []byte("\n")) + 1
			for _, e := range es {
				if len(e.Msg) > maxMsg+3 {
					t.Errorf("a %d-byte message", len(e.Msg))
				}
				if e.File != "f.toml" || e.Line < 1 || e.Col < 1 || e.Line > lines {
					t.Errorf("error placed outside the %d-line file: %#v", lines, e)
				}
			}
			if !slices.IsSortedFunc(es, func(a, b Error) int {
				if a.Line != b.Line {
					return a.Line - b.Line
				}
				return a.Col - b.Col
			}) {
				t.Errorf("errors not sorted by position:\n%v", es)
			}
			return
		}
		if topo == nil || topo.Path != "f.toml" {
			t.Fatalf("Parse returned %v and no error", topo)
		}
		names := map[string]bool{}
		for _, s := range topo.Services {
			if s.Name == "" || names[s.Name] {
				t.Errorf("accepted empty or duplicate service name %q", s.Name)
			}
			names[s.Name] = true
			if s.Address.IsValid() == (s.FWMark != 0) {
				t.Errorf("service %q: want exactly one of address and fwmark", s.Name)
			}
			if s.Check != nil && (s.Check.Type == "" || s.Check.Timeout > s.Check.Interval) {
				t.Errorf("service %q: accepted check %+v", s.Name, s.Check)
			}
			for _, b := range s.Backends {
				if !b.Address.IsValid() || b.Weight < 0 || b.Weight > 65535 || b.Forwarding == "" {
					t.Errorf("service %q: accepted backend %+v", s.Name, b)
				}
			}
		}
	})
}

// FuzzShape checks the shape check against the real TOML parser: what it
// lets through, and BurntSushi accepts, nests no deeper than the limits
// allow (each container level holding at most a dotted key's parts of
// tables). A miss here would let a nested file reach a parser's recursion.
// The FuzzParse seeds run through it too.
func FuzzShape(f *testing.F) {
	seeds, err := filepath.Glob("testdata/fuzz/FuzzParse/*")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		// The seed files' one value, a Go-quoted []byte.
		_, lit, _ := bytes.Cut(b, []byte("[]byte("))
		s, err := strconv.Unquote(string(bytes.TrimSuffix(bytes.TrimSpace(lit), []byte(")"))))
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if checkShape("f.toml", src) != nil {
			return
		}
		var raw map[string]any
		if _, err := toml.Decode(string(src), &raw); err != nil {
			return
		}
		if d, limit := depthOf(raw, 0), (MaxNesting+1)*MaxKeyParts; d > limit {
			t.Errorf("accepted a document %d deep (limit %d)", d, limit)
		}
	})
}

// depthOf is how deep v nests; it stops counting past 10,000.
func depthOf(v any, d int) int {
	if d > 10000 {
		return d
	}
	deepest := d
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			deepest = max(deepest, depthOf(e, d+1))
		}
	case []map[string]any:
		for _, e := range v {
			deepest = max(deepest, depthOf(e, d+1))
		}
	case []any:
		for _, e := range v {
			deepest = max(deepest, depthOf(e, d+1))
		}
	}
	return deepest
}
