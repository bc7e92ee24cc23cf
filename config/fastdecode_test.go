package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// checkFast is the property fastDecode must keep: when it takes the fast
// path, BurntSushi accepts the same input and decodes it to a deeply equal
// map. It reports whether the fast path was taken.
func checkFast(t testing.TB, src []byte) bool {
	t.Helper()
	got, ok := fastDecode(src)
	if !ok {
		if got != nil {
			t.Fatalf("fastDecode gave up but returned a map: %q", src)
		}
		return false
	}
	var want map[string]any
	if _, err := toml.Decode(string(src), &want); err != nil {
		t.Fatalf("fastDecode accepted what BurntSushi rejects (%v):\n%q", err, src)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fastDecode disagrees with BurntSushi on\n%q\n fast: %#v\n want: %#v", src, got, want)
	}
	return true
}

// corpus reads the seed files of a fuzz target (the `go test fuzz v1`
// format with a single []byte argument).
func corpus(t testing.TB, target string) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a one-argument go test fuzz v1 file", name)
		}
		arg, ok := strings.CutPrefix(lines[1], "[]byte(")
		if ok {
			arg, ok = strings.CutSuffix(arg, ")")
		}
		if !ok {
			t.Fatalf("%s: argument is not []byte(...): %s", name, lines[1])
		}
		s, err := strconv.Unquote(arg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = []byte(s)
	}
	return out
}

func examples(t testing.TB) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("../examples/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no examples found")
	}
	out := map[string][]byte{}
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = src
	}
	return out
}

// fastCases are inputs the fast path must take.
var fastCases = []string{
	"",
	"\n\n\t \n",
	"# only a comment",
	"# comment\n  # indented comment\n",
	"a = 1",
	"a=1\nb=2\n",
	"\t a \t = \t 1 \t # trailing comment\n",
	"a = 1#comment",
	"1-a_B = 2\n-- = 3\n_ = 4",
	"a = 0\nb = -0\nc = +0\nd = +5\ne = -17\nf = 1_000\ng = 1_2_3\n",
	"max = 9223372036854775807\nmin = -9223372036854775808\n",
	"a = true\nb = false\nc=true#x\n",
	`a = "x"`,
	`a = ""` + "\nb = ''\n",
	`a = "héllo wörld ✓"`,
	`a = "has # inside" # real comment`,
	`a = 'C:\path\to' # literal: no escapes`,
	`a = 'say "hi"'`,
	`a = "q\"q\\q\bq\tq\nq\fq\rq"`,
	`a = "\u00e9\u00E9\U0001F600\u0000\u007f\uFFFF\U0010FFFF"`,
	`a = "ends with escape\\"`,
	"a = []\nb = [ ]\nc = [\n]\n",
	"a = [1, 2, 3]\nb = [\"x\", 'y']\nc = [true, 1, \"mixed\"]\n",
	"a = [[1, 2], [\"a\"], [], [[]]]",
	"a = [\n  1, # one\n  2,\n  # a comment line\n  3,   # trailing comma next\n]\n",
	"a = [1,]\nb = [\n1\n,\n2\n]",
	"[a]\nx = 1\n[b]\ny = \"z\"\n",
	"[ a . b ]\nx = 1\n[\ta\t.\tc\t]\n",
	"[a]\n[a.b]\n[a.c.d]\n[a.c.e]\n",
	"[x.y.z]\nk = 1\n[x.y.w]\n",
	"[[a]]\n[[a]]\nk = 1\n[[a]]\n",
	"[[ a ]]\nk = 1\n[[ a . b ]]\n",
	"[[a.b]]\nk = 1\n[[a.b]]\nk = 2\n[a.c]\n",
	"[[s]]\nn = 1\n[s.check]\nt = 1\n[[s.b]]\nx = 1\n[[s.b]]\nx = 2\n[[s]]\nn = 2\n[s.check]\n[[s.b]]\n",
	"[[s]]\n[s.c.d]\n[[s]]\n[s.c]\n",
	"[[s]]\n[[s.b]]\n[[s.b.c]]\n[[s.b.c]]\n[[s]]\n[[s.b.c]]\n",
	"top = 1\n[t]\nk = [1]\n",
	"[t] # comment\n[[u]]# comment\n",
	"[director]\ninterface = \"eth0\"\n[[service]]\nname = \"web\"\nport = 80\n[[service.backend]]\naddress = \"10.0.0.1\"\nweight = 1\n",
}

// slowCases are inputs the fast path must leave to BurntSushi, valid TOML
// or not.
var slowCases = []string{
	// Characters.
	"a = 1\r\n",
	"a = 1\r",
	"a = 1\x00",
	"# \x01\n",
	"a = \"\x7f\"",
	"a = \"\x1b\"",
	"# \xff\n",
	"a = \"\xc3\"",
	"\xef\xbb\xbfa = 1",
	"é = 1",
	"a\v= 1",
	// Keys and headers outside the subset.
	"a.b = 1",
	"a . b = 1",
	`"a" = 1`,
	`'a' = 1`,
	`"" = 1`,
	`["a"]`,
	`[a."b"]`,
	`[a.'b']`,
	`[[ "a" ]]`,
	// Values outside the subset.
	`a = """x"""`,
	`a = """` + "\nx\n" + `"""`,
	`a = '''x'''`,
	"a = 1.5",
	"a = 1e3",
	"a = 1_0e3",
	"a = -1.0",
	"a = inf",
	"a = +inf",
	"a = -nan",
	"a = nan",
	"a = 0x1F",
	"a = 0o17",
	"a = 0b101",
	"a = 1979-05-27",
	"a = 07:32:00",
	"a = 1979-05-27T07:32:00Z",
	"a = 1979-05-27 07:32:00",
	"a = {}",
	"a = {b = 1}",
	"a = [{b = 1}]",
	"a = [1, {b = 1}]",
	"a = " + strings.Repeat("[", 40) + strings.Repeat("]", 40),
	// Integers TOML or int64 rejects.
	"a = 01",
	"a = 00",
	"a = -01",
	"a = +00",
	"a = 0_1",
	"a = 1__2",
	"a = _1",
	"a = 1_",
	"a = +_1",
	"a = -",
	"a = +",
	"a = 9223372036854775808",
	"a = -9223372036854775809",
	"a = 99999999999999999999999",
	"a = 1x",
	"a = 1-",
	"a = 1:",
	// Escapes.
	`a = "\e"`,
	`a = "\x41"`,
	`a = "\q"`,
	`a = "\ "`,
	`a = "\/"`,
	`a = "\uD800"`,
	`a = "\uDFFF"`,
	`a = "\U00110000"`,
	`a = "\UFFFFFFFF"`,
	`a = "\u12"`,
	`a = "\u12G4"`,
	`a = "\U0001F60"`,
	`a = "\`,
	`a = "\"`,
	"a = \"\\\n\"",
	// Redefinitions and type clashes.
	"a = 1\na = 2",
	"a = 1\na = [1]",
	"[t]\na = 1\na = 1",
	"[a]\n[a]",
	"[a.b]\n[a]",
	"[a.b]\n[a.b]",
	"[a]\nb = 1\n[a.b]",
	"[a]\nb = 1\n[a.b.c]",
	"[a]\nb = [1]\n[[a.b]]",
	"[[a]]\n[a]",
	"[a]\n[[a]]",
	"[a.b]\n[[a]]",
	"a = 1\n[a]",
	"a = 1\n[a.b]",
	"a = 1\n[[a]]",
	"a = []\n[[a]]",
	"a = []\n[a.b]",
	"a = [1]\n[[a.b]]",
	"[[a]]\n[[a.b]]\n[a.b]",
	"[[a]]\nb = 1\n[[a.b]]",
	"[[a]]\nb = 1\n[a.b]",
	"[[a.b]]\n[[a]]",
	// Syntax errors.
	"a",
	"a =",
	"a = ",
	"a = \n1",
	"a\n= 1",
	"= 1",
	"a b = 1",
	"a = 1 2",
	"a = 1,",
	"a = \"x\" y",
	"a = truex",
	"a = true1",
	"a = tru",
	"a = False",
	"a = \"x",
	"a = \"x\ny\"",
	"a = 'x",
	"a = 'x\ny'",
	"a = [1,,2]",
	"a = [,]",
	"a = [,1]",
	"a = [1 2]",
	"a = [1",
	"a = [1,",
	"a = [1 # c",
	"a = [1]]",
	"[a",
	"[a.",
	"[a.]",
	"[.a]",
	"[a..b]",
	"[]",
	"[ ]",
	"[[]]",
	"[a b]",
	"[a]x",
	"[a]]",
	"[[a]",
	"[[a] ]",
	"[[a]]]",
	"[ [a]]",
	"[a]\n]",
}

func TestFastDecodeCases(t *testing.T) {
	for _, c := range fastCases {
		if !checkFast(t, []byte(c)) {
			t.Errorf("fastDecode gave up on %q", c)
		}
	}
	for _, c := range slowCases {
		if checkFast(t, []byte(c)) {
			t.Errorf("fastDecode took the fast path on %q", c)
		}
	}
}

// TestFastDecodeTypes pins the Go types down independently of BurntSushi.
func TestFastDecodeTypes(t *testing.T) {
	src := "n = -5\ns = \"a\\tb\"\nl = 'x'\nb = true\ne = []\nv = [1, [\"x\"]]\n" +
		"[[svc]]\nname = \"w\"\n[svc.check]\ntype = \"tcp\"\n[[svc.backend]]\nport = 80\n[[svc]]\n[x.y]\n"
	got, ok := fastDecode([]byte(src))
	if !ok {
		t.Fatal("gave up")
	}
	want := map[string]any{
		"n": int64(-5),
		"s": "a\tb",
		"l": "x",
		"b": true,
		"e": []any{},
		"v": []any{int64(1), []any{"x"}},
		"svc": []map[string]any{
			{
				"name":    "w",
				"check":   map[string]any{"type": "tcp"},
				"backend": []map[string]any{{"port": int64(80)}},
			},
			{},
		},
		"x": map[string]any{"y": map[string]any{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	checkFast(t, []byte(src))
}

// TestFastDecodeExamples: the shipped examples are the realistic files and
// must take the fast path.
func TestFastDecodeExamples(t *testing.T) {
	for name, src := range examples(t) {
		if !checkFast(t, src) {
			t.Errorf("%s: fastDecode gave up", name)
		}
	}
	if !checkFast(t, genServices(50)) {
		t.Error("generated topology: fastDecode gave up")
	}
}

// TestFastDecodeCorpus runs the property over the FuzzParse seeds (its
// own seeds run as part of FuzzFastDecode).
func TestFastDecodeCorpus(t *testing.T) {
	for name, src := range corpus(t, "FuzzParse") {
		ok := checkFast(t, src)
		if strings.Contains(name, "example-") && !ok {
			t.Errorf("%s: fastDecode gave up", name)
		}
	}
}

// FuzzFastDecode checks that whatever fastDecode accepts, BurntSushi
// decodes to the same map.
func FuzzFastDecode(f *testing.F) {
	for _, src := range examples(f) {
		f.Add(src)
	}
	for _, src := range corpus(f, "FuzzParse") {
		f.Add(src)
	}
	for _, c := range fastCases {
		f.Add([]byte(c))
	}
	for _, c := range slowCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		checkFast(t, src)
	})
}

// genServices writes n services the way a large topology file looks.
func genServices(n int) []byte {
	var b bytes.Buffer
	b.WriteString("[director]\ninterface = \"eth0\"\nresync_interval = \"1h\"\n")
	for i := range n {
		fmt.Fprintf(&b, "\n[[service]]\nname = \"s%d\"\naddress = \"192.0.2.1\"\nport = %d\n"+
			"protocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n", i, 10000+i)
		for j := range 4 {
			fmt.Fprintf(&b, "[[service.backend]]\naddress = \"10.2.0.%d\"\nport = %d\nweight = 1\n", j+1, 10000+i)
		}
	}
	return b.Bytes()
}

func BenchmarkDecode5000(b *testing.B) {
	src := genServices(5000)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := fastDecode(src); !ok {
				b.Fatal("fastDecode gave up")
			}
		}
	})
	b.Run("BurntSushi", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			var raw map[string]any
			if _, err := toml.Decode(string(src), &raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Parse end to end, and what it cost before the fast path.
	b.Run("Parse", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse("x.toml", src); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseBurntSushi", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			var raw map[string]any
			if _, err := toml.Decode(string(src), &raw); err != nil {
				b.Fatal(err)
			}
			d := &decoder{file: "x.toml", src: src}
			d.topology(raw)
			if len(d.errs) > 0 {
				b.Fatal(d.errs)
			}
		}
	})
}
