package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"
)

// Load reads and validates the topology file at path, and checks the
// files it names on this host as the director needs them (see Options).
// Problems in the file come back as Errors (use errors.As), each placed
// at FILE:LINE:COL; an unreadable or oversized file is a plain error.
func Load(path string) (*Topology, error) {
	return Options{}.Load(path)
}

// Parse validates a topology held in memory; name is used in messages as
// the file name. It looks at nothing outside src.
//
// The TOML is decoded into plain maps rather than structs, and every table
// is then walked against the list of keys it may hold: that gives exact
// (case-sensitive) key matching, lets unknown keys be placed in the right
// array element (toml.MetaData.Undecoded cannot tell [[service]] elements
// apart), and lets a value of the wrong type be one error among many rather
// than the end of decoding.
func Parse(name string, src []byte) (*Topology, error) {
	return parse(name, src, nil)
}

// parse is Parse, checking the files the topology names with files
// unless it is nil.
func parse(name string, src []byte, files *fileChecker) (*Topology, error) {
	if len(src) > MaxFileSize {
		return nil, Errors{{File: name, Line: 1, Col: 1, Msg: fmt.Sprintf("the file is larger than %d MiB", MaxFileSize>>20)}}
	}
	// Before any parser: the nesting that costs them time, memory or
	// their stack.
	if err := checkShape(name, src); err != nil {
		return nil, err
	}
	// fastDecode covers what topology files are usually written in, many
	// times faster; on anything else it gives up and BurntSushi decodes
	// (and reports every syntax error) as before.
	raw, ok := fastDecode(src)
	if !ok {
		if _, err := toml.Decode(string(src), &raw); err != nil {
			var pe toml.ParseError
			if errors.As(err, &pe) {
				return nil, Errors{{File: name, Line: max(pe.Position.Line, 1), Col: max(pe.Position.Col, 1), Msg: clipText(pe.Message, maxMsg)}}
			}
			return nil, Errors{{File: name, Line: 1, Col: 1, Msg: clipText(err.Error(), maxMsg)}}
		}
	}
	d := &decoder{file: name, src: src}
	topo := d.topology(raw)
	topo.Path = name
	if files != nil {
		d.hostFiles(topo, files)
	}
	if err := d.result(); err != nil {
		return nil, err
	}
	withPieces(topo, src)
	return topo, nil
}

// Service returns the service with the given name.
func (t *Topology) Service(name string) (*Service, bool) {
	for i := range t.Services {
		if t.Services[i].Name == name {
			return &t.Services[i], true
		}
	}
	return nil, false
}

func (d *decoder) topology(raw map[string]any) *Topology {
	root := d.table(raw, nil, "")
	topo := &Topology{}

	services := root.tables("service")

	topo.Director = d.director(root.sub("director", "director"), len(services) > 0)
	if f := root.sub("failover", "failover"); f != nil {
		topo.Failover = d.failover(f)
	}
	if b := root.sub("bgp", "bgp"); b != nil {
		topo.BGP = d.bgp(b)
	}
	topo.RealServer = d.realServer(root.sub("realserver", "realserver"))
	topo.Services = d.services(services)
	d.failoverDefaults(topo)
	d.checkBGP(topo)
	root.finish()
	return topo
}

func (d *decoder) director(t *table, needInterface bool) Director {
	dir := Director{
		ResyncInterval: DefaultResyncInterval,
		ControlSocket:  DefaultControlSocket,
		StateFile:      DefaultStateFile,
	}
	if t == nil {
		if needInterface {
			d.add([]string{"director"}, "director", "interface is required when services are defined")
		}
		return dir
	}
	if s, ok := t.str("interface"); ok {
		if problem := ifNameProblem(s); problem != "" {
			t.errorf("interface", "interface %q %s", s, problem)
		}
		dir.Interface = s
	} else if needInterface && !t.has("interface") {
		t.errorf("", "interface is required when services are defined")
	}
	if v, ok := t.durationMin("resync_interval", time.Nanosecond); ok {
		dir.ResyncInterval = v
	}
	if s, ok := t.str("control_socket"); ok {
		// sun_path holds 108 bytes including the terminating NUL.
		switch {
		case s == "":
			t.errorf("control_socket", "control_socket must not be empty")
		case len(s) > 107:
			t.errorf("control_socket", "control_socket is longer than a unix socket path may be (107 bytes)")
		default:
			if problem := ownPathProblem(s); problem != "" {
				t.errorf("control_socket", "control_socket %q %s", s, desc(problem))
			} else {
				dir.ControlSocket = s
			}
		}
	}
	if s, ok := t.str("metrics_address"); ok {
		if problem := hostPortProblem(s); problem != "" {
			t.errorf("metrics_address", "metrics_address %q %s", s, problem)
		}
		dir.MetricsAddress = s
	}
	if s, ok := t.str("state_file"); ok {
		if problem := ownPathProblem(s); problem != "" {
			t.errorf("state_file", "state_file %q %s", s, desc(problem))
		} else {
			dir.StateFile = s
		}
	}
	t.finish()
	return dir
}

func (d *decoder) failover(t *table) *Failover {
	f := &Failover{Priority: 100, AdvertInterval: DefaultAdvertInterval, Preempt: true}
	if v, ok := t.intRange("virtual_router_id", 1, 255); ok {
		f.VirtualRouterID = uint8(v)
	} else if !t.has("virtual_router_id") {
		t.errorf("", "virtual_router_id is required")
	}
	if v, ok := t.intRange("priority", 1, 254); ok {
		f.Priority = uint8(v)
	}
	if v, ok := t.duration("advert_interval"); ok {
		// VRRPv3 carries the interval as 12 bits of centiseconds.
		switch {
		case v < 10*time.Millisecond || v > 4095*10*time.Millisecond:
			t.errorf("advert_interval", "advert_interval %s is out of range 10ms..40.95s", v)
		case v%(10*time.Millisecond) != 0:
			t.errorf("advert_interval", "advert_interval %s is not a multiple of 10ms", v)
		default:
			f.AdvertInterval = v
		}
	}
	if v, ok := t.boolean("preempt"); ok {
		f.Preempt = v
	}
	if v, ok := t.intRange("track_decrement", 1, 254); ok {
		f.TrackDecrement = uint8(v)
	}
	if v, ok := t.durationMin("preempt_delay", 0); ok {
		if v > MaxPreemptDelay {
			t.errorf("preempt_delay", "preempt_delay %s is over %s", v, MaxPreemptDelay)
		} else {
			f.PreemptDelay = &v
		}
	}
	if peers, ok := t.strings("peers"); ok {
		seen := map[netip.Addr]int{}
		for i, s := range peers {
			a, problem := parseAddr(s)
			if problem != "" {
				t.errorf("peers", "peers[%d] %q %s", i, s, problem)
				continue
			}
			if len(f.Peers) > 0 && a.Is6() != f.Peers[0].Is6() {
				t.errorf("peers", "peers[%d] %s is %s but peers[%d] is %s; all peers must be one family",
					i, a, family(a), seen[f.Peers[0]], family(f.Peers[0]))
				continue
			}
			if j, dup := seen[a]; dup {
				t.errorf("peers", "peers[%d] %s repeats peers[%d]", i, a, j)
				continue
			}
			seen[a] = i
			f.Peers = append(f.Peers, a)
		}
	}
	for _, key := range []string{"auth_key_file", "notify"} {
		s, ok := t.str(key)
		if !ok {
			continue
		}
		if problem := pathProblem(s); problem != "" {
			t.errorf(key, "%s %q %s", desc(key), s, desc(problem))
			continue
		}
		if key == "notify" {
			f.Notify = s
		} else {
			f.AuthKeyFile = s
		}
	}
	f.Addresses = d.failoverAddresses(t)
	if s := t.sub("sync", "failover: sync"); s != nil {
		f.Sync = d.failoverSync(s, f)
	}
	t.finish()
	return f
}

func (d *decoder) realServer(t *table) RealServer {
	rs := RealServer{AgentAddress: DefaultAgentAddress, TunnelInterface: DefaultTunnelInterface}
	if t == nil {
		return rs
	}
	if s, ok := t.str("agent_address"); ok {
		if problem := hostPortProblem(s); problem != "" {
			t.errorf("agent_address", "agent_address %q %s", s, problem)
		}
		rs.AgentAddress = s
	}
	if s, ok := t.str("tunnel_interface"); ok {
		if problem := ifNameProblem(s); problem != "" {
			t.errorf("tunnel_interface", "tunnel_interface %q %s", s, problem)
		}
		rs.TunnelInterface = s
	}
	t.finish()
	return rs
}

// ifNameProblem applies the kernel's rules for interface names
// (dev_valid_name): 1..15 bytes, not "." or "..", no '/', ':' or spaces.
func ifNameProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 15:
		return "is longer than 15 bytes"
	case s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\v\f\r") || hasControl(s):
		return "is not a valid interface name"
	}
	return ""
}

// hasControl reports whether s holds a control character (C0, DEL or
// C1; NUL included): never wanted in a name, an interface or a path, and
// a way to forge log lines.
func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// maxPath is PATH_MAX less its NUL.
const maxPath = 4095

// pathProblem checks a path the director reads or runs: absolute, no
// control characters, within PATH_MAX.
func pathProblem(s string) string {
	switch {
	case !path.IsAbs(s):
		return "must be an absolute path"
	case hasControl(s):
		return "must not contain control characters"
	case len(s) > maxPath:
		return fmt.Sprintf("is longer than %d bytes", maxPath)
	}
	return ""
}

// ownPathProblem checks a path the director creates and replaces
// (state_file, control_socket): also written plainly, without "." or
// ".." parts or repeated or trailing slashes, and not "/".
func ownPathProblem(s string) string {
	if p := pathProblem(s); p != "" {
		return p
	}
	if path.Clean(s) != s || s == "/" {
		return "must be a plain file path (no \".\" or \"..\" parts, no repeated or trailing \"/\")"
	}
	return ""
}

// hostPortProblem checks a listen address: an optional IP literal or host
// name, and a port 1..65535.
func hostPortProblem(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "is not HOST:PORT (use [ADDR]:PORT for IPv6)"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "has a port that is not 1..65535"
	}
	if host == "" {
		return ""
	}
	if hasControl(host) {
		return "has a control character in its host"
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if !validHostname(host) {
		return "has a host that is neither an IP address nor a host name"
	}
	return ""
}

func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// parseAddr parses a unicast IP literal without a zone.
func parseAddr(s string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, "is not an IPv4 or IPv6 address"
	case a.Zone() != "":
		return netip.Addr{}, "must not have a zone"
	case a.Is4In6():
		return netip.Addr{}, "is an IPv4-mapped IPv6 address; write the IPv4 form"
	case a.IsUnspecified() || a.IsMulticast():
		return netip.Addr{}, "is not a unicast address"
	}
	return a, ""
}

func family(a netip.Addr) string {
	if a.Is6() {
		return "IPv6"
	}
	return "IPv4"
}

// The widest values the kernel's u32 fields take.
const maxU32 = math.MaxUint32
