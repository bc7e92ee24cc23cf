package keepalived

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The golvs topology being written: plain values and the comments that
// explain a choice, kept apart from config's validated model on purpose:
// the output is text an operator will read and keep.

type topology struct {
	header      []string
	iface       string
	ifaceNote   []string
	failover    *failover
	services    []*service
	serviceKeys map[string]bool // tuple or fwmark/family: no duplicates
}

type failover struct {
	comments []string
	vrid     int
	priority int
	advert   time.Duration
	preempt  bool
	// preemptDelay is keepalived's preempt_delay; nil lets golvs choose
	// (with sync, the time the sync needs to settle).
	preemptDelay *time.Duration
	peers        []string
	notify       string
	// off: golvs would have nothing to hold, and refuses to run VRRP
	// then; the whole table is written commented out.
	off       bool
	addresses []extraAddress
	// addressesOff and syncOff: config does not know the key (yet), so
	// the table is written commented out.
	addressesOff bool
	sync         *syncTable
	syncOff      bool
}

type extraAddress struct {
	comment string
	address string // with prefix length
	iface   string
}

type syncTable struct {
	comments []string
	iface    string
	syncID   int // 0 = not set
	group    string
	port     int
	ttl      int
	maxLen   int
}

type service struct {
	comments    []string
	name        string
	address     string
	port        int
	protocol    string
	fwmark      uint32
	scheduler   string
	flags       []string
	forwarding  string
	persistence int // seconds, 0 = none
	netmask     string
	quorum      int
	sorry       string
	onFailure   string
	check       *check
	backends    []*backend
}

type check struct {
	comments []string
	typ      string
	interval time.Duration
	timeout  time.Duration
	rise     int
	fall     int
	port     int
	path     string
	host     string
	status   []int
	body     string
	send     string
	expect   string
	query    string
	qtype    string
	command  []string
}

// signature is what two checks must share to be one service check.
func (c *check) signature() string {
	cc := *c
	cc.comments = nil
	return fmt.Sprintf("%#v", cc)
}

type backend struct {
	comments   []string
	address    string
	port       int // 0 = the service's
	weight     int
	forwarding string // "" = the service's
	upper      uint32
	lower      uint32
}

// writer emits TOML text, one key per line.
type writer struct{ b strings.Builder }

func (w *writer) line(s string) { w.b.WriteString(s + "\n") }

func (w *writer) comments(cs []string, prefix string) {
	for _, c := range cs {
		for _, l := range strings.Split(c, "\n") {
			w.line(prefix + "# " + l)
		}
	}
}

func (w *writer) kv(prefix, key string, v any) {
	w.line(prefix + key + " = " + tomlValue(v))
}

func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return tomlString(v)
	case int:
		return strconv.Itoa(v)
	case uint32:
		return strconv.FormatUint(uint64(v), 10)
	case bool:
		return strconv.FormatBool(v)
	case time.Duration:
		return tomlString(duration(v))
	case []string:
		parts := make([]string, len(v))
		for i, s := range v {
			parts[i] = tomlString(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []int:
		parts := make([]string, len(v))
		for i, n := range v {
			parts[i] = strconv.Itoa(n)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	panic(fmt.Sprintf("tomlValue: %T", v))
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// duration writes d the way people write it: "60s", "500ms".
func duration(d time.Duration) string {
	switch {
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return fmt.Sprintf("%dus", d/time.Microsecond)
}

func (t *topology) text() string {
	w := &writer{}
	w.comments(t.header, "")
	w.line("")
	w.line("[director]")
	w.comments(t.ifaceNote, "")
	w.kv("", "interface", t.iface)
	if f := t.failover; f != nil {
		off := ""
		if f.off {
			off = "# "
		}
		w.line("")
		w.comments(f.comments, "")
		w.line(off + "[failover]")
		w.kv(off, "virtual_router_id", f.vrid)
		w.kv(off, "priority", f.priority)
		w.kv(off, "advert_interval", f.advert)
		w.kv(off, "preempt", f.preempt)
		if f.preemptDelay != nil {
			w.kv(off, "preempt_delay", *f.preemptDelay)
		}
		if len(f.peers) > 0 {
			w.kv(off, "peers", f.peers)
		}
		if f.notify != "" {
			w.kv(off, "notify", f.notify)
		}
		p := off
		if f.addressesOff {
			p = "# "
		}
		for _, a := range f.addresses {
			w.line("")
			if a.comment != "" {
				w.comments([]string{a.comment}, "")
			}
			w.line(p + "[[failover.address]]")
			w.kv(p, "address", a.address)
			w.kv(p, "interface", a.iface)
		}
		if s := f.sync; s != nil {
			p := off
			if f.syncOff {
				p = "# "
			}
			w.line("")
			w.comments(s.comments, "")
			w.line(p + "[failover.sync]")
			w.kv(p, "interface", s.iface)
			if s.syncID != 0 {
				w.kv(p, "sync_id", s.syncID)
			}
			if s.group != "" {
				w.kv(p, "group", s.group)
			}
			if s.port != 0 {
				w.kv(p, "port", s.port)
			}
			if s.ttl != 0 {
				w.kv(p, "ttl", s.ttl)
			}
			if s.maxLen != 0 {
				w.kv(p, "max_len", s.maxLen)
			}
		}
	}
	for _, s := range t.services {
		w.line("")
		w.comments(s.comments, "")
		w.line("[[service]]")
		w.kv("", "name", s.name)
		if s.fwmark != 0 {
			w.kv("", "fwmark", s.fwmark)
		} else {
			w.kv("", "address", s.address)
			w.kv("", "port", s.port)
			w.kv("", "protocol", s.protocol)
		}
		w.kv("", "scheduler", s.scheduler)
		if len(s.flags) > 0 {
			w.kv("", "scheduler_flags", s.flags)
		}
		w.kv("", "forwarding", s.forwarding)
		if s.persistence > 0 {
			w.kv("", "persistence", time.Duration(s.persistence)*time.Second)
			if s.netmask != "" {
				w.kv("", "persistence_netmask", s.netmask)
			}
		}
		if s.quorum > 0 {
			w.kv("", "quorum", s.quorum)
		}
		if s.sorry != "" {
			w.kv("", "sorry_server", s.sorry)
		}
		w.kv("", "on_failure", s.onFailure)
		if c := s.check; c != nil {
			w.line("")
			w.comments(c.comments, "")
			w.line("[service.check]")
			w.kv("", "type", c.typ)
			w.kv("", "interval", c.interval)
			w.kv("", "timeout", c.timeout)
			w.kv("", "rise", c.rise)
			w.kv("", "fall", c.fall)
			if c.port != 0 {
				w.kv("", "port", c.port)
			}
			if c.path != "" {
				w.kv("", "path", c.path)
			}
			if c.host != "" {
				w.kv("", "host", c.host)
			}
			if len(c.status) > 0 {
				w.kv("", "expect_status", c.status)
			}
			if c.body != "" {
				w.kv("", "expect_body", c.body)
			}
			if c.send != "" {
				w.kv("", "send", c.send)
				w.kv("", "expect", c.expect)
			}
			if c.query != "" {
				w.kv("", "query", c.query)
				w.kv("", "query_type", c.qtype)
			}
			if len(c.command) > 0 {
				w.kv("", "command", c.command)
			}
		}
		for _, b := range s.backends {
			w.line("")
			w.comments(b.comments, "")
			w.line("[[service.backend]]")
			w.kv("", "address", b.address)
			if b.port != 0 {
				w.kv("", "port", b.port)
			}
			w.kv("", "weight", b.weight)
			if b.forwarding != "" {
				w.kv("", "forwarding", b.forwarding)
			}
			if b.upper != 0 {
				w.kv("", "upper_threshold", b.upper)
			}
			if b.lower != 0 {
				w.kv("", "lower_threshold", b.lower)
			}
		}
	}
	return w.b.String()
}
