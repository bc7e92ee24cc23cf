package config

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzStateLike feeds the check of an existing state_file arbitrary
// contents (the path may name any file on the host: check refuses to let
// the director replace one that is not a state file). No panic; on
// well-formed JSON it answers exactly "an object with a services key";
// and a state file cut short anywhere (a crash mid-write) is still taken
// for one, so the director can set it aside rather than be refused.
func FuzzStateLike(f *testing.F) {
	for _, s := range []string{
		`{"services":[{"Family":2,"Protocol":6,"Address":"192.0.2.1","Port":80,"FWMark":0}],"drains":[{"service":"web","backend":"10.0.1.2:80"}]}`,
		`{"drains":[],"services":[]}`,
		`{"services":null}`,
		`{"x":{"services":1},"y":[1,2]}`,
		`["services"]`,
		`"services"`,
		"root:x:0:0:root:/root:/bin/bash\n",
		"",
		"  \n",
		`{"serv`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := stateLike(bytes.NewReader(b))
		if !json.Valid(b) {
			return
		}
		var obj map[string]json.RawMessage
		isObj := json.Unmarshal(b, &obj) == nil && obj != nil
		_, has := obj["services"]
		if want := isObj && has; got != want {
			t.Fatalf("stateLike(%q) = %v, want %v", b, got, want)
		}
		if !got || len(b) > 512 {
			return
		}
		for i := range b {
			if !stateLike(bytes.NewReader(b[:i])) {
				t.Fatalf("a state file cut at %d is not taken for one: %q", i, b[:i])
			}
		}
	})
}
