package keepalived

import (
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
)

// memSource is a file system in memory; Glob matches with path.Match.
type memSource map[string]string

func (m memSource) ReadFile(name string) ([]byte, error) {
	s, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return []byte(s), nil
}

func (m memSource) Glob(pattern string) ([]string, error) {
	var out []string
	for name := range m {
		ok, err := path.Match(pattern, name)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// dump renders a tree as "FILE:LINE word|word {...}" lines for comparison.
func dump(nodes []*Node, indent string) string {
	var b strings.Builder
	for _, n := range nodes {
		b.WriteString(indent + n.Pos.String() + " " + strings.Join(n.Words, "|"))
		if n.HasBlock {
			b.WriteString(" {\n" + dump(n.Block, indent+"  ") + indent + "}")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestReadGrammar(t *testing.T) {
	src := memSource{
		"/etc/keepalived/keepalived.conf": `! a comment
# another
global_defs {   # trailing comment
  router_id "my router"   ! quoted, with a space
}
virtual_server 192.0.2.1 80
{
  real_server 192.0.2.11 80 { weight 2 }
  quorum_up "/bin/echo \"up # not a comment\""
  a\#b c\!d
}
include conf.d/*.conf
include /abs/{x,y}.conf
include conf.d/none-*.conf
`,
		"/etc/keepalived/conf.d/b.conf": "b_second 2\n",
		"/etc/keepalived/conf.d/a.conf": "a_first 1 {\n  inner\n}\n",
		"/abs/x.conf":                   "x\n",
		"/abs/y.conf":                   "y\r\n",
	}
	nodes, warnings, err := ReadFrom(src, "/etc/keepalived/keepalived.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := `/etc/keepalived/keepalived.conf:3 global_defs {
  /etc/keepalived/keepalived.conf:4 router_id|my router
}
/etc/keepalived/keepalived.conf:6 virtual_server|192.0.2.1|80 {
  /etc/keepalived/keepalived.conf:8 real_server|192.0.2.11|80 {
    /etc/keepalived/keepalived.conf:8 weight|2
  }
  /etc/keepalived/keepalived.conf:9 quorum_up|/bin/echo \|up|#|not|a|comment\|
  /etc/keepalived/keepalived.conf:10 a#b|c!d
}
/etc/keepalived/conf.d/a.conf:1 a_first|1 {
  /etc/keepalived/conf.d/a.conf:2 inner
}
/etc/keepalived/conf.d/b.conf:1 b_second|2
/abs/x.conf:1 x
/abs/y.conf:1 y
`
	if got := dump(nodes, ""); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0].Msg, "none-*.conf") || warnings[0].Pos.Line != 14 {
		t.Errorf("warnings = %+v, want one for the include that matched nothing, at line 14", warnings)
	}
	// The script is re-read with quotes and escapes, as keepalived does.
	argv, err := scriptArgv(nodes[1].Block[1])
	if err != nil || !slices.Equal(argv, []string{"/bin/echo", "up # not a comment"}) {
		t.Errorf("scriptArgv = %q, %v", argv, err)
	}
}

func TestReadSyntaxErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unclosed block", "a {\n b\n", "k.conf:1: block of \"a\" is never closed"},
		{"extra brace", "a {\n}\n}\n", "k.conf:3: extra '}'"},
		{"brace without keyword", "{\n", "k.conf:1: '{' does not follow a keyword"},
		{"second brace", "a {\n} {\n", "k.conf:2: '{' does not follow a keyword"},
		{"unterminated quote", "a \"b\n", "k.conf:1: unterminated quote"},
		{"missing include", "include /nope/x.conf\n", ""},
		{"include loop", "include k.conf\n", "includes nested deeper than"},
		{"seq", "~SEQ(i,1,3) x\n", "k.conf:1: ~SEQ"},
		{"nul", "a\x00\n", "k.conf:1: line has a NUL byte"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadFrom(memSource{"k.conf": tc.src}, "k.conf")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want none (a glob matching nothing is not an error)", err)
				}
				return
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a SyntaxError", err)
			}
			if !strings.Contains(se.Error(), tc.want) {
				t.Errorf("err = %q, want it to contain %q", se.Error(), tc.want)
			}
		})
	}
}

func TestReadDefinitionsAndConfigIDs(t *testing.T) {
	src := memSource{"k.conf": `$VIP=192.0.2.100
$PORT = 80
virtual_server $VIP ${PORT} {
  @other lb_algo wrr
  @^other lb_algo rr
  x $UNKNOWN
}
`}
	nodes, warnings, err := ReadFrom(src, "k.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := `k.conf:3 virtual_server|192.0.2.100|80 {
  k.conf:5 lb_algo|rr
  k.conf:6 x|$UNKNOWN
}
`
	if got := dump(nodes, ""); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	if len(warnings) != 1 || warnings[0].Pos.Line != 4 {
		t.Errorf("warnings = %+v, want the skipped @other line", warnings)
	}
}

func TestExpandBraces(t *testing.T) {
	got := expandBraces("/a/{b,c{d,e}}/f{1,2}")
	want := []string{"/a/b/f1", "/a/b/f2", "/a/cd/f1", "/a/cd/f2", "/a/ce/f1", "/a/ce/f2"}
	if !slices.Equal(got, want) {
		t.Errorf("expandBraces = %q, want %q", got, want)
	}
}
