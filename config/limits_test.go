package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// quick bounds what a refused hostile file may cost. The nesting attack
// took 60 s and 3.3 GB at depth 20,000 (and overflowed the stack at
// 3,000,000); refusing it is one pass over a few MB, so a loaded machine
// is well inside this.
const quick = 3 * time.Second

// wantErr checks that err is one Errors entry at line:col containing msg.
func wantErr(t *testing.T, err error, line, col int, msg string) {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v is not Errors", err)
	}
	if len(es) != 1 || es[0].Line != line || es[0].Col != col || !strings.Contains(es[0].Msg, msg) {
		t.Fatalf("errors = %v, want one at %d:%d containing %q", es, line, col, msg)
	}
}

// TestDeepNestingRefused mounts issue 18's attack: a small file of nested
// arrays (and inline tables, and dotted keys) must give a quick, clear
// error placed where the limit is crossed, before any parser recurses.
func TestDeepNestingRefused(t *testing.T) {
	for _, tt := range []struct {
		name      string
		src       string
		line, col int
		msg       string
	}{
		{"arrays 20,000", "x = " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n", 1, 5 + MaxNesting, "nest deeper than 32"},
		{"arrays 3,000,000 unclosed", "x = " + strings.Repeat("[", 3000000), 1, 5 + MaxNesting, "nest deeper than 32"},
		{"inline tables", "[director]\nx = " + strings.Repeat("{a=", 50000) + "1" + strings.Repeat("}", 50000) + "\n", 2, 5 + 3*MaxNesting, "nest deeper"},
		{"mixed, after a service", svc + "y = [" + strings.Repeat("{a=[", 10000), 8, 5 + 4*(MaxNesting/2), "nest deeper"},
		{"dotted key", "a" + strings.Repeat(".a", 1000000) + " = 1\n", 1, 2 + 2*(MaxKeyParts-1), "more than 32 dotted parts"},
		{"dotted header", "[a" + strings.Repeat(".a", 1000000) + "]\n", 1, 3 + 2*(MaxKeyParts-1), "more than 32 dotted parts"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse("t.toml", []byte(tt.src))
			took := time.Since(start)
			wantErr(t, err, tt.line, tt.col, tt.msg)
			if took > quick {
				t.Errorf("refusing took %v, want under %v", took, quick)
			}
			t.Logf("%d bytes refused in %v: %v", len(tt.src), took, err)
		})
	}
}

// TestNestingInStringsAllowed: brackets, braces and dots inside strings
// and comments are not nesting.
func TestNestingInStringsAllowed(t *testing.T) {
	deep := strings.Repeat("[{.", 100)
	src := svc + "# " + deep + "\n[service.check]\ntype = \"http\"\npath = \"/" + deep + "\"\nhost = '" + deep + "'\n" +
		"expect_body = \"\"\"\n" + deep + "\\\"\"\"\n" + deep + "\"\"\"\n" +
		"[realserver]\n\"agent.address.with.many.dots." + strings.Repeat("x.", 40) + "\" = 1\n"
	_, err := Parse("t.toml", []byte(src))
	// The only error is the quoted key's being unknown.
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 || !strings.Contains(es[0].Msg, "unknown key") {
		t.Fatalf("err = %v, want just the unknown quoted key", err)
	}
	// Exactly at the limits is fine.
	ok := "x = " + strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting) + "\n" +
		strings.Repeat("a.", MaxKeyParts-1) + "a = 1\n"
	if err := checkShape("t.toml", []byte(ok)); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}

// TestPositionIndexLinear: the position index alone, given a nesting the
// shape check would refuse, is still linear and recursion-free. The old
// index (a map of joined key paths) allocated a path per element, the
// square of the depth in bytes: 1.2 s at depth 4,000, gigabytes at 20,000.
// Bytes allocated do not depend on the machine's load; time does.
func TestPositionIndexLinear(t *testing.T) {
	const n = 200000
	src := []byte("x = " + strings.Repeat("[", n) + "1" + strings.Repeat("]", n) + "\ny = 2\n")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	idx := indexPositions(src)
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	perLevel := (after.TotalAlloc - before.TotalAlloc) / n
	if perLevel > 512 {
		t.Errorf("indexing depth %d allocated %d bytes per level, want a constant under 512", n, perLevel)
	}
	if p := idx.at([]string{"y"}); p != (pos{2, 1}) {
		t.Errorf("y at %v, want 2:1", p)
	}
	if p := idx.at([]string{"x", "0", "0", "0"}); p != (pos{1, 8}) {
		t.Errorf("x[0][0][0] at %v, want 1:8", p)
	}
	t.Logf("depth %d indexed in %v, %d bytes per level", n, took, perLevel)
}

// TestReloadRefusesDeepNesting: the attack through Reload (SIGHUP of a
// running director), on both the fast path (one service edited) and the
// full one: an error, and prev, the topology in force, untouched.
func TestReloadRefusesDeepNesting(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.toml")
	good := string(genServices(50))
	if err := os.WriteFile(p, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	prev, err := Options{SkipFiles: true}.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	before := len(prev.Services)
	for _, bad := range []string{
		// One service gains a deep array: the fast path's piece.
		strings.Replace(good, "name = \"s7\"\n", "name = \"s7\"\nx = "+strings.Repeat("[", 3000000)+"\n", 1),
		// The whole file replaced.
		"x = " + strings.Repeat("[", 3000000) + strings.Repeat("]", 3000000) + "\n",
	} {
		if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		topo, err := Options{SkipFiles: true}.Reload(p, prev)
		took := time.Since(start)
		if topo != nil || err == nil || !strings.Contains(err.Error(), "nest deeper than 32") {
			t.Fatalf("Reload = %v, %v; want the nesting error", topo, err)
		}
		if took > quick {
			t.Errorf("refusing took %v, want under %v", took, quick)
		}
		t.Logf("reload refused in %v: %v", took, err)
	}
	if len(prev.Services) != before || prev.Services[7].Name != "s7" {
		t.Error("the topology in force was changed by a refused reload")
	}
}

// TestOversizedFileRefused: a file over MaxFileSize is refused without
// reading it (a sparse file), and an endless one (/dev/zero) once past the
// limit (here 1 MiB, to keep the test cheap).
func TestOversizedFileRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "huge.toml")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than 64 MiB") {
		t.Errorf("Load(%s) = %v, want the size error", p, err)
	}
	if _, err := Reload(p, nil); err == nil || !strings.Contains(err.Error(), "larger than 64 MiB") {
		t.Errorf("Reload(%s) = %v, want the size error", p, err)
	}
	if _, err := readFile("/dev/zero", 1<<20); err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Errorf("reading /dev/zero: %v, want the size error", err)
	}
	// A FIFO is read like a pipe: what a writer sends, bounded.
	fifo := filepath.Join(t.TempDir(), "fifo.toml")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			w.WriteString(dir)
			w.Close()
		}
	}()
	if _, err := (Options{SkipFiles: true}).Load(fifo); err != nil {
		t.Errorf("Load(fifo) = %v", err)
	}
}
