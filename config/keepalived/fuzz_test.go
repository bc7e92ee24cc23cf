package keepalived

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzImport feeds arbitrary text to the reader and the converter: no
// panic, a syntax error placed in the file, bounded time, and whatever is
// read converts into a topology config accepts (Convert checks that and
// errs otherwise). The corpus files are the seeds.
func FuzzImport(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.conf")
	inc, _ := filepath.Glob("testdata/include/*.conf")
	for _, name := range append(files, inc...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("include inc*.conf\ninclude k.conf\n"))
	f.Add([]byte("virtual_server_group g {\n 192.0.2.0/20 80\n 2001:db8::1-ffff 80\n}\nvirtual_server group g {\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		start := time.Now()
		fsys := memSource{
			"/k/k.conf":   string(src),
			"/k/inc.conf": "virtual_server 192.0.2.1 80 {\n protocol TCP\n}\n",
		}
		nodes, _, err := ReadFrom(fsys, "/k/k.conf")
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a SyntaxError: %v", err, err)
			}
			if se.Pos.Line < 1 || !strings.HasPrefix(se.Pos.File, "/k/") {
				t.Fatalf("syntax error not placed in a file: %v", err)
			}
			return
		}
		if _, err := Convert("/k/k.conf", nodes); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("took %s for %d bytes", d, len(src))
		}
	})
}
