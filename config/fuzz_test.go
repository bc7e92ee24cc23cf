package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
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
			lines := bytes.Count(src, []byte("\n")) + 1
			for _, e := range es {
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
