package keepalived

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golvs/golvs/config"
)

// Note is one thing the conversion could not carry over, or carried over
// with a difference the operator must know about.
type Note struct {
	Pos     Pos
	What    string
	Why     string
	Warning bool // converted, but not exactly: read Why
}

func (n Note) String() string {
	kind := "not converted"
	if n.Warning {
		kind = "warning"
	}
	return fmt.Sprintf("%s: %s: %s (%s)", n.Pos, kind, n.What, n.Why)
}

// Result is a converted configuration.
type Result struct {
	TOML  string
	Notes []Note
}

// Complete reports whether everything was converted (warnings aside).
func (r *Result) Complete() bool {
	for _, n := range r.Notes {
		if !n.Warning {
			return false
		}
	}
	return true
}

// Convert turns the statements of a keepalived configuration (read from
// main) into a golvs topology. The text it returns always passes config's
// loader; what it could not convert is in Notes.
func Convert(main string, nodes []*Node) (*Result, error) {
	c := &conv{main: main, groups: map[string]*Node{}, topo: &topology{serviceKeys: map[string]bool{}}}
	c.run(nodes)
	text := c.topo.text()
	if _, err := config.Parse("imported.toml", []byte(text)); err != nil {
		return nil, fmt.Errorf("the converted topology does not pass config's checks (an importer bug):\n%v\n--- converted text ---\n%s", err, text)
	}
	// A group's services share one block: say each thing once.
	seen := map[Note]bool{}
	var notes []Note
	for _, n := range c.notes {
		if !seen[n] {
			seen[n] = true
			notes = append(notes, n)
		}
	}
	return &Result{TOML: text, Notes: notes}, nil
}

type conv struct {
	main   string
	topo   *topology
	notes  []Note
	groups map[string]*Node

	globalDefs  []*Node
	vrrpVersion int // 0 = keepalived's default, 2
	versionPos  Pos
	syncNode    *Node // lvs_sync_daemon (global_defs) or lvs_sync_daemon_interface
	instances   []*Node
}

func (c *conv) notConverted(pos Pos, what, why string) {
	c.notes = append(c.notes, Note{Pos: pos, What: what, Why: why})
}

func (c *conv) warn(pos Pos, what, why string) {
	c.notes = append(c.notes, Note{Pos: pos, What: what, Why: why, Warning: true})
}

// stmt reports a whole statement as not converted.
func (c *conv) stmt(n *Node, why string) {
	c.notConverted(n.Pos, statementText(n), why)
}

func statementText(n *Node) string {
	s := n.Raw
	if s == "" {
		s = strings.Join(n.Words, " ")
	}
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	if n.HasBlock {
		s += " {...}"
	}
	return s
}

func (c *conv) run(nodes []*Node) {
	c.topo.header = []string{
		"Converted from " + c.main + " by `director import`.",
		"Lines starting with \"# keepalived:\" explain a choice the importer made.",
	}
	var servers []*Node
	for _, n := range nodes {
		switch n.Keyword() {
		case "global_defs":
			c.globalDefs = append(c.globalDefs, n)
		case "virtual_server_group":
			if n.Arg(1) == "" {
				c.stmt(n, "a virtual_server_group needs a name")
				continue
			}
			c.groups[n.Arg(1)] = n
		case "virtual_server":
			servers = append(servers, n)
		case "vrrp_instance":
			c.instances = append(c.instances, n)
		case "vrrp_sync_group":
			c.stmt(n, "golvs runs one VRRP instance, so there is nothing to group")
		case "vrrp_script", "vrrp_track_process", "track_file", "vrrp_track_file":
			c.stmt(n, "golvs tracks no scripts, processes or files; with track_decrement its priority follows the health of the backends instead")
		case "static_ipaddress", "static_routes", "static_rules":
			c.stmt(n, "golvs manages no static addresses or routes; leave them to the system's network configuration")
		case "SSL":
			c.stmt(n, "golvs's https checks use no client certificate")
		default:
			c.stmt(n, unknownWhy(n.Keyword()))
		}
	}
	for _, g := range c.globalDefs {
		c.globals(g)
	}
	for _, n := range servers {
		c.virtualServer(n)
	}
	c.vrrp()
	if c.topo.iface == "" {
		c.topo.iface = "eth0"
		c.topo.ifaceNote = []string{"keepalived: the configuration names no interface (no vrrp_instance); \"eth0\" is a guess.",
			"keepalived: golvs holds every service address on this interface, keepalived held none: check it."}
		c.warn(Pos{File: c.main}, "[director] interface", "no vrrp_instance names one; \"eth0\" written, and golvs will hold the service addresses there")
	}
}

func unknownWhy(kw string) string {
	return fmt.Sprintf("the importer does not know %q", kw)
}

func (c *conv) globals(g *Node) {
	for _, n := range g.Block {
		switch n.Keyword() {
		case "vrrp_version":
			v, err := strconv.Atoi(n.Arg(1))
			if err != nil || v < 2 || v > 3 {
				c.stmt(n, "vrrp_version must be 2 or 3")
				continue
			}
			c.vrrpVersion, c.versionPos = v, n.Pos
		case "lvs_sync_daemon":
			c.syncNode = n
		case "router_id":
			c.stmt(n, "golvs names itself by its addresses; nothing needs a router id")
		case "notification_email", "notification_email_from", "smtp_server", "smtp_connect_timeout",
			"smtp_helo_name", "enable_traps", "enable_snmp_keepalived", "enable_snmp_checker", "enable_snmp_vrrp", "enable_snmp_rfc":
			c.stmt(n, "golvs sends no mail and has no SNMP; it has Prometheus metrics and a status command")
		case "script_user", "enable_script_security":
			c.stmt(n, "golvs runs exec checks and notify as its own user, without a shell")
		case "lvs_flush", "lvs_flush_onstop":
			c.stmt(n, "golvs never flushes IPVS: it owns only the services in its file (see --cleanup-on-exit)")
		case "lvs_timeouts":
			c.stmt(n, "golvs leaves the kernel's IPVS connection timeouts alone; set them with ipvsadm --set")
		default:
			if strings.HasPrefix(n.Keyword(), "vrrp_") {
				c.stmt(n, "golvs's VRRP has no such setting")
				continue
			}
			c.stmt(n, "golvs has no such global setting")
		}
	}
}

// Value parsing, the way keepalived reads them.

func parseUint(s string, lo, hi uint64) (uint64, bool) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, false
	}
	return v, true
}

// parseTimer reads keepalived's decimal seconds ("2", "0.5") to the
// microsecond.
func parseTimer(s string) (time.Duration, bool) {
	if s == "" || strings.ContainsAny(s, "eE+-xXpP_") {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e9 || math.IsNaN(f) {
		return 0, false
	}
	return time.Duration(math.Round(f*1e6)) * time.Microsecond, true
}

// parseAddr reads an address without a prefix as golvs needs it.
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, false
	}
	return a, true
}

func boolArg(n *Node) (bool, bool) {
	switch strings.ToLower(n.Arg(1)) {
	case "", "true", "on", "yes":
		return true, true
	case "false", "off", "no":
		return false, true
	}
	return false, false
}

// Whether config knows the contract keys that issue 5/6's work adds:
// probed rather than assumed, so the importer writes them live as soon as
// config accepts them.
var (
	probeOnce                        sync.Once
	acceptsAddresses, acceptsSyncTbl bool
)

func probeConfig() {
	probeOnce.Do(func() {
		_, err := config.Parse("probe.toml", []byte("[failover]\nvirtual_router_id = 1\n\n[[failover.address]]\naddress = \"192.0.2.1/24\"\ninterface = \"eth1\"\n"))
		acceptsAddresses = err == nil
		_, err = config.Parse("probe.toml", []byte("[failover]\nvirtual_router_id = 1\n\n[failover.sync]\ninterface = \"eth1\"\n"))
		acceptsSyncTbl = err == nil
	})
}

// ifNameOK applies the kernel's rules for interface names.
func ifNameOK(s string) bool {
	return s != "" && len(s) <= 15 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n\v\f\r")
}
