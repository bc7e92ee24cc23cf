package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLongValueClipped: a 10 MB value is quoted by its first bytes and
// its length, not whole (issue 18: a 10 MB scheduler name gave a 10 MB
// line), wherever a message quotes it.
func TestLongValueClipped(t *testing.T) {
	huge := strings.Repeat("x", 10<<20)
	big := huge[:1<<20] // the same cut at a tenth of the cost
	for _, tt := range []struct{ name, src, want string }{
		{"scheduler", svc + "scheduler = \"" + huge + "\"\n",
			`t.toml:8:1: service "web": scheduler "` + huge[:maxQuoted] + `"... (10485760 bytes) is not one of rr, wrr,`},
		{"name as context", dir + "[[service]]\nname = \"" + big + "\"\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"nat\"\nweight = 1\n",
			`t.toml:8:1: service "` + big[:maxQuoted] + `"... (1048576 bytes): unknown key "weight"`},
		{"wrong type", dir + "[failover]\nvirtual_router_id = \"" + big + "\"\n",
			`t.toml:4:1: failover: virtual_router_id must be an integer, not string "` + big[:maxQuoted] + `"... (1048576 bytes)`},
		{"unknown key", dir + "\"" + big + "\" = 1\n",
			`t.toml:3:1: director: unknown key "` + big[:maxQuoted] + `"... (1048576 bytes)`},
		{"multi-byte cut", svc + "scheduler = \"" + strings.Repeat("é", 1000) + "\"\n",
			`t.toml:8:1: service "web": scheduler "` + strings.Repeat("é", maxQuoted/2) + `"... (2000 bytes) is not`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(tt.src))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("err = %v", err)
			}
			found := false
			for _, e := range es {
				if len(e.Error()) > 2*maxMsg {
					t.Errorf("a %d-byte error line", len(e.Error()))
				}
				found = found || strings.HasPrefix(e.Error(), tt.want)
			}
			if !found {
				t.Errorf("no error starts with %.300q; got %.600q", tt.want, err.Error())
			}
		})
	}
}

// TestErrorCount: 20,000 bad services give MaxErrors lines and a summary
// placed at the first one left out, not 20,000 lines (issue 18: 50,000
// gave 28 MB).
func TestErrorCount(t *testing.T) {
	var b strings.Builder
	b.WriteString(dir)
	const n = 20000
	for i := range n {
		fmt.Fprintf(&b, "[[service]]\nname = \"s%d\"\naddress = \"192.0.2.1\"\nport = %d\nforwarding = \"nat\"\nscheduler = \"bogus\"\n", i, i+1)
	}
	_, err := Parse("t.toml", []byte(b.String()))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v", err)
	}
	if len(es) != MaxErrors+1 {
		t.Fatalf("%d errors, want %d and a summary", len(es), MaxErrors)
	}
	// Service i's scheduler is on line 8+6i.
	if got, want := es[MaxErrors-1].Error(), fmt.Sprintf(`t.toml:%d:1: service "s%d": scheduler "bogus" is not one of`, 8+6*(MaxErrors-1), MaxErrors-1); !strings.HasPrefix(got, want) {
		t.Errorf("last error %q, want %q...", got, want)
	}
	if got, want := es[MaxErrors].Error(), fmt.Sprintf("t.toml:%d:1: ... and %d more errors", 8+6*MaxErrors, n-MaxErrors); got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if size := len(err.Error()); size > 200*MaxErrors {
		t.Errorf("the whole report is %d bytes", size)
	}
}

// TestControlCharacters: NUL and other control characters are refused in
// names, interfaces, paths and HTTP check fields; relative paths for the
// control socket and state file too.
func TestControlCharacters(t *testing.T) {
	fo := "[failover]\nvirtual_router_id = 1\n"
	for _, tt := range []struct {
		name, src string
		want      []string
	}{
		{"NUL in a service name", dir + "[[service]]\nname = \"we\\u0000b\"\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"nat\"\n", []string{
			`t.toml:4:1: service "we\x00b": name "we\x00b" must not contain control characters`}},
		{"escape in a service name", dir + "[[service]]\nname = \"web\\u001b[2J\"\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"nat\"\n", []string{
			`t.toml:4:1: service "web\x1b[2J": name "web\x1b[2J" must not contain control characters`}},
		{"NUL in interface", "[director]\ninterface = \"eth\\u00000\"\n", []string{
			`t.toml:2:1: director: interface "eth\x000" is not a valid interface name`}},
		{"C1 in tunnel_interface", "[realserver]\ntunnel_interface = \"t\\u0085\"\n", []string{
			`t.toml:2:1: realserver: tunnel_interface "t\u0085" is not a valid interface name`}},
		{"relative control_socket", dir + "control_socket = \"golvs.sock\"\n", []string{
			`t.toml:3:1: director: control_socket "golvs.sock" must be an absolute path`}},
		{"relative state_file", dir + "state_file = \"./d.state\"\n", []string{
			`t.toml:3:1: director: state_file "./d.state" must be an absolute path`}},
		{"dot-dot state_file", dir + "state_file = \"/run/golvs/../../etc/passwd\"\n", []string{
			`t.toml:3:1: director: state_file "/run/golvs/../../etc/passwd" must be a plain file path (no "." or ".." parts, no repeated or trailing "/")`}},
		{"trailing slash control_socket", dir + "control_socket = \"/run/golvs/\"\n", []string{
			`t.toml:3:1: director: control_socket "/run/golvs/" must be a plain file path (no "." or ".." parts, no repeated or trailing "/")`}},
		{"NUL in state_file", dir + "state_file = \"/run/golvs/d\\u0000.state\"\n", []string{
			`t.toml:3:1: director: state_file "/run/golvs/d\x00.state" must not contain control characters`}},
		{"newline in notify", fo + "notify = \"/etc/golvs/notify\\n.sh\"\n", []string{
			`t.toml:3:1: failover: notify "/etc/golvs/notify\n.sh" must not contain control characters`}},
		{"over-long auth_key_file", fo + "auth_key_file = \"/" + strings.Repeat("k", 5000) + "\"\n", []string{
			`t.toml:3:1: failover: auth_key_file "/` + strings.Repeat("k", maxQuoted-1) + `"... (5001 bytes) is longer than 4095 bytes`}},
		{"NUL in command", svc + "[service.check]\ntype = \"exec\"\ncommand = [\"/bin/check\", \"a\\u0000b\"]\n", []string{
			`t.toml:10:1: service "web": check: command[1] "a\x00b" must not contain NUL`}},
		{"control in command[0]", svc + "[service.check]\ntype = \"exec\"\ncommand = [\"/bin/check\\r\"]\n", []string{
			`t.toml:10:1: service "web": check: command[0] "/bin/check\r" must not contain control characters`}},
		{"CRLF in http path and host", svc + "[service.check]\ntype = \"http\"\npath = \"/x\\r\\nX-Evil: 1\"\nhost = \"a\\r\\nb\"\n", []string{
			`t.toml:10:1: service "web": check: path "/x\r\nX-Evil: 1" must not contain control characters`,
			`t.toml:11:1: service "web": check: host "a\r\nb" must not contain control characters`}},
		{"NUL in metrics_address host", dir + "metrics_address = \"[fe80::1%e\\u0000]:80\"\n", []string{
			`t.toml:3:1: director: metrics_address "[fe80::1%e\x00]:80" has a control character in its host`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseErrs(t, tt.src)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}
