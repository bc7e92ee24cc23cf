package keepalived

import (
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// Per checker type: keepalived's default retry count and delay before a
// retry (check_api.c, check_http.c, check_dns.c, check_misc.c); 0 delay =
// the delay_loop.
var checkerDefaults = map[string]struct {
	typ   string
	retry int
	dbr   time.Duration
}{
	"TCP_CHECK":  {"tcp", 1, time.Second},
	"HTTP_GET":   {"http", 1, 3 * time.Second},
	"SSL_GET":    {"https", 1, 3 * time.Second},
	"UDP_CHECK":  {"udp", 1, time.Second},
	"MISC_CHECK": {"exec", 0, time.Second},
	"DNS_CHECK":  {"dns", 3, 0},
}

// serviceCheck picks the one check golvs runs for all of a service's
// backends from the checkers of its real servers, and says where they
// differ.
func (c *conv) serviceCheck(svc *service, s *vsSettings) {
	var first *check
	var firstRS *realServer
	var unchecked []*realServer
	for _, rs := range s.reals {
		if len(rs.checkers) == 0 {
			unchecked = append(unchecked, rs)
			continue
		}
		for i, k := range rs.checkers {
			if i > 0 {
				c.notConverted(k.Pos, k.Keyword()+" of real_server "+rs.addr.String(),
					"golvs runs one check per backend; keepalived wanted every checker up")
				continue
			}
			ck := c.checker(k, rs, s)
			if ck == nil {
				continue
			}
			if first == nil {
				first, firstRS = ck, rs
				continue
			}
			if ck.signature() != first.signature() {
				c.notConverted(k.Pos, k.Keyword()+" of real_server "+rs.addr.String(),
					"it differs from real_server "+firstRS.addr.String()+"'s, and golvs checks every backend of a service alike")
			}
		}
	}
	if first == nil {
		return
	}
	svc.check = first
	for _, rs := range unchecked {
		c.notConverted(rs.node.Pos, "real_server "+rs.addr.String()+" without a checker",
			"golvs checks every backend of a service, this one too, with real_server "+firstRS.addr.String()+"'s check")
	}
}

// checker converts one checker block.
func (c *conv) checker(k *Node, rs *realServer, s *vsSettings) *check {
	def := checkerDefaults[k.Keyword()]
	ck := &check{typ: def.typ, rise: 1}
	t := noTiming()
	var miscTimeout time.Duration
	var urls []*Node
	var misc *Node
	dnsType, dnsName := "SOA", ""
	var payload, reply *Node
	ok := true
	for _, n := range k.Block {
		if c.timingKeyword(n, &t) {
			continue
		}
		switch kw := n.Keyword(); kw {
		case "connect_port":
			v, good := parseUint(n.Arg(1), 1, 65535)
			if !good {
				c.stmt(n, "not a port number")
				continue
			}
			ck.port = int(v)
		case "connect_ip":
			if a, good := parseAddr(n.Arg(1)); good && a == rs.addr {
				continue
			}
			c.stmt(n, "golvs checks the backend's own address")
		case "bindto", "bind_port", "bind_if":
			c.stmt(n, "golvs lets the kernel choose the source of a check")
		case "fwmark":
			c.stmt(n, "golvs marks no check packets")
		case "alpha":
			c.warn(n.Pos, "alpha", "golvs always waits for a checked backend's first verdict before it gives it traffic")
		case "log_all_failures":
			c.stmt(n, "golvs logs each change of a backend's health")
		case "url":
			if k.Keyword() == "HTTP_GET" || k.Keyword() == "SSL_GET" {
				urls = append(urls, n)
				continue
			}
			c.stmt(n, unknownWhy(kw))
		case "http_protocol", "fast_recovery":
			c.stmt(n, "golvs's http checks speak HTTP/1.1 and count every result")
		case "enable_sni":
			c.warn(n.Pos, "enable_sni", "golvs sends the host as SNI when host is set")
		case "misc_path":
			misc = n
		case "misc_timeout":
			v, good := parseUint(n.Arg(1), 1, 1<<31)
			if !good {
				c.stmt(n, "not a number of seconds")
				continue
			}
			miscTimeout = time.Duration(v) * time.Second
		case "misc_dynamic":
			c.stmt(n, "golvs's exec check is up or down; the agent check can report weights")
		case "user":
			c.stmt(n, "golvs runs exec checks as its own user")
		case "type":
			if k.Keyword() != "DNS_CHECK" {
				c.stmt(n, unknownWhy(kw))
				continue
			}
			dnsType = strings.ToUpper(n.Arg(1))
		case "name":
			if k.Keyword() != "DNS_CHECK" {
				c.stmt(n, unknownWhy(kw))
				continue
			}
			dnsName = n.Arg(1)
		case "payload":
			payload = n
		case "require_reply":
			reply = n
		case "min_reply_length", "max_reply_length":
			c.stmt(n, "golvs's udp check matches the reply's start, not its length")
		default:
			c.stmt(n, unknownWhy(kw))
		}
	}
	eff := t.inherit(rs.timing).inherit(s.timing)
	ck.interval = eff.delayLoop
	if ck.interval == 0 {
		ck.interval = kaDefaultDelayLoop
	}
	ck.timeout = eff.connTimeout
	if ck.timeout == 0 {
		ck.timeout = kaDefaultConnTimeout
	}
	retry := eff.retry
	if retry < 0 {
		retry = def.retry
	}
	ck.fall = retry + 1
	dbr := eff.delayBeforeRetry
	if dbr == 0 {
		dbr = def.dbr
	}
	if dbr == 0 {
		dbr = ck.interval
	}

	switch k.Keyword() {
	case "HTTP_GET", "SSL_GET":
		ok = c.httpCheck(k, ck, urls, eff.virtualhost)
	case "MISC_CHECK":
		ok = c.miscCheck(k, misc, ck)
		if miscTimeout > 0 {
			ck.timeout = miscTimeout
		} else {
			ck.timeout = ck.interval
		}
	case "DNS_CHECK":
		qtypes := []string{"A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "ANY"}
		switch {
		case dnsName == "" || dnsName == ".":
			c.notConverted(k.Pos, "DNS_CHECK without name", "golvs's dns check asks for a name; keepalived's default is the root zone")
			ok = false
		case !validHostname(dnsName):
			c.notConverted(k.Pos, "DNS_CHECK name "+dnsName, "not a domain name golvs can ask for")
			ok = false
		case !slices.Contains(qtypes, dnsType):
			c.notConverted(k.Pos, "DNS_CHECK type "+dnsType, "not a query type golvs asks for")
			ok = false
		default:
			ck.query, ck.qtype = dnsName, dnsType
			if !strings.HasSuffix(ck.query, ".") {
				ck.query += "."
			}
		}
	case "UDP_CHECK":
		send, good1 := c.hexPayload(payload, "payload")
		expect, good2 := c.hexPayload(reply, "require_reply")
		if !good1 || !good2 {
			c.notConverted(k.Pos, "UDP_CHECK", "golvs's udp check needs a payload to send and a reply to expect")
			ok = false
		}
		ck.send, ck.expect = send, expect
	}
	if !ok {
		return nil
	}

	ck.comments = append(ck.comments, fmt.Sprintf("keepalived: %s with delay_loop %s, connect_timeout %s, retry %d: one success marks a backend up (rise 1), %d failures in a row down (fall).",
		k.Keyword(), duration(ck.interval), duration(ck.timeout), retry, ck.fall))
	if retry > 0 && dbr != ck.interval {
		ck.comments = append(ck.comments, fmt.Sprintf("keepalived: it retried after delay_before_retry %s; golvs checks every interval, so a failure is confirmed after %s at most.",
			duration(dbr), duration(time.Duration(ck.fall)*ck.interval)))
	}
	if ck.timeout > ck.interval {
		ck.comments = append(ck.comments, fmt.Sprintf("keepalived: timeout %s is cut to the interval, as golvs requires.", duration(ck.timeout)))
		ck.timeout = ck.interval
	}
	ck.fall = min(ck.fall, 1000)
	return ck
}

func (c *conv) httpCheck(k *Node, ck *check, urls []*Node, vhost string) bool {
	if len(urls) == 0 {
		c.notConverted(k.Pos, k.Keyword()+" without url", "keepalived has nothing to request either")
		return false
	}
	for _, u := range urls[1:] {
		c.notConverted(u.Pos, "url "+urlPath(u), "golvs requests one path per check")
	}
	u := urls[0]
	for _, n := range u.Block {
		switch kw := n.Keyword(); kw {
		case "path":
			ck.path = n.Arg(1)
		case "status_code":
			for _, w := range n.Words[1:] {
				lo, hi, isRange := strings.Cut(w, "-")
				if !isRange {
					hi = lo
				}
				a, ok1 := parseUint(lo, 100, 599)
				b, ok2 := parseUint(hi, 100, 599)
				if !ok1 || !ok2 || a > b {
					c.notConverted(n.Pos, "status_code "+w, "golvs expects codes 100..599")
					continue
				}
				for code := a; code <= b; code++ {
					if !slices.Contains(ck.status, int(code)) {
						ck.status = append(ck.status, int(code))
					}
				}
			}
		case "virtualhost":
			vhost = n.Arg(1)
		case "digest":
			c.stmt(n, "golvs compares no digest of the body; expect_body matches a substring")
		case "regex":
			if strings.ContainsAny(n.Arg(1), `.[]()*+?{}|^$\`) || n.Arg(1) == "" {
				c.stmt(n, "golvs matches a plain substring (expect_body), not a regular expression")
				continue
			}
			ck.body = n.Arg(1)
		default:
			c.stmt(n, "golvs's http check has no "+kw)
		}
	}
	if ck.path == "" || !strings.HasPrefix(ck.path, "/") {
		c.notConverted(u.Pos, "url "+urlPath(u), "golvs requests a path starting with /")
		return false
	}
	if len(ck.status) == 0 {
		for code := 200; code <= 299; code++ {
			ck.status = append(ck.status, code)
		}
		ck.comments = append(ck.comments, "keepalived: no status_code, so any 2xx passes, as in keepalived.")
	}
	slices.Sort(ck.status)
	ck.host = vhost
	if ck.typ == "https" {
		ck.comments = append(ck.comments, "keepalived: SSL_GET does not verify the certificate; golvs's tls_verify is off too.")
	}
	return true
}

func urlPath(u *Node) string {
	for _, n := range u.Block {
		if n.Keyword() == "path" {
			return n.Arg(1)
		}
	}
	return "{...}"
}

var shells = []string{"sh", "bash", "dash", "ksh", "zsh", "ash", "busybox"}

func (c *conv) miscCheck(k, misc *Node, ck *check) bool {
	if misc == nil {
		c.notConverted(k.Pos, "MISC_CHECK without misc_path", "there is nothing to run")
		return false
	}
	argv, err := scriptArgv(misc)
	if err != nil {
		c.notConverted(misc.Pos, "misc_path", err.Error())
		return false
	}
	if !path.IsAbs(argv[0]) {
		c.warn(misc.Pos, "misc_path "+argv[0], "keepalived looked it up in PATH; golvs needs an absolute path, so /usr/bin/env does the lookup")
		argv = append([]string{"/usr/bin/env"}, argv...)
	}
	if slices.Contains(shells, path.Base(argv[0])) && slices.Contains(argv, "-c") {
		c.warn(misc.Pos, "misc_path", "it runs a shell; golvs runs the same argv, shell included, but prefer a program that needs none")
	} else {
		for _, a := range argv[1:] {
			if slices.Contains([]string{"|", "||", "&&", ";", ">", ">>", "<", "&", "2>&1"}, a) || strings.Contains(a, "$(") || strings.Contains(a, "`") || strings.HasPrefix(a, "$") {
				c.warn(misc.Pos, "misc_path", fmt.Sprintf("%q is shell syntax, which keepalived 2 and golvs both pass to the program as a literal argument; write [\"/bin/sh\", \"-c\", \"...\"] if a shell was meant", a))
				break
			}
		}
	}
	ck.command = argv
	ck.comments = append(ck.comments, "keepalived: MISC_CHECK's misc_path, run as an argv without a shell; golvs adds GOLVS_BACKEND_ADDRESS and GOLVS_BACKEND_PORT to its environment.")
	return true
}

// hexPayload converts keepalived's hex string (spaces allowed) to golvs's
// "hex:" form.
func (c *conv) hexPayload(n *Node, what string) (string, bool) {
	if n == nil {
		return "", false
	}
	h := strings.Join(n.Words[1:], "")
	if strings.ContainsAny(h, "xX") {
		c.stmt(n, "golvs's udp check has no wildcards in the expected reply")
		return "", false
	}
	if len(h)%2 == 1 {
		h = "0" + h
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) == 0 {
		c.stmt(n, what+" is not a hex string")
		return "", false
	}
	return "hex:" + hex.EncodeToString(b), true
}

// validHostname is config's rule for a dns check's query: labels of
// letters, digits, '-' and '_', 1..63 bytes, 253 in all.
func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
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
