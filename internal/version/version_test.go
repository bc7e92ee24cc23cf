package version

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{
		Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	for _, tc := range []struct {
		name, ver, commit string
		bi                *debug.BuildInfo
		want              Info
	}{
		{"stamped wins", "0.1.0", "feed", vcs, Info{"0.1.0", "feed"}},
		{"checkout build", "", "", vcs, Info{"(devel)", "0123abcd+dirty"}},
		{"go install", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}}, Info{"v0.2.0", "unknown"}},
		{"nothing", "", "", nil, Info{"(devel)", "unknown"}},
	} {
		if got := resolve(tc.ver, tc.commit, tc.bi); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if s := (Info{"0.1.0", "feed"}).String(); s != "0.1.0 (commit feed)" {
		t.Errorf("String() = %q", s)
	}
}
