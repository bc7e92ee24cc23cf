package config

import (
	"bytes"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/BurntSushi/toml"
)

// A reload of a large file re-decodes only the services whose text
// changed. The file is cut at the lines that open a top-level
// [[service]] table; each piece is one service, and a piece whose text
// the previous load already validated is taken from it as is. Anything
// unusual (a multi-line string that could hide such a line, a table
// header that is not the service's own, a changed head, any error) sends
// the reload down the full path, which also makes every error message.

// pieces is how a topology's source was cut, kept with the topology for
// the next reload and for Diff.
type pieces struct {
	src    string // the whole source
	starts []int  // where each service's piece starts in src
	head   string
	// text[i] is the source of Services[i]. Unchanged services share the
	// previous load's string, so Diff compares them in O(1).
	text []string
	// done maps a piece's text to what it decoded to. Reloads share and
	// extend one map; it is rebuilt when stale entries pile up.
	done map[string]*piece
}

type piece struct {
	text string
	svc  Service
}

// splitServices cuts src into the part before the first [[service]] and
// one piece per service (as [start, end) offsets, without the blank lines
// that follow it, so appending a service leaves the last one's text as it
// was). ok is false when the cut could be wrong.
func splitServices(src []byte) (head []byte, svcs [][2]int, ok bool) {
	piece := func(start, end int) [2]int {
		for end > start && (src[end-1] == '\n' || src[end-1] == ' ' || src[end-1] == '\t') {
			end--
		}
		return [2]int{start, end}
	}
	if bytes.Contains(src, []byte(`"""`)) || bytes.Contains(src, []byte(`'''`)) || bytes.IndexByte(src, '\r') >= 0 {
		return nil, nil, false
	}
	start := -1 // of the current service piece
	// Only lines whose first non-blank byte is '[' matter: jump from one
	// '[' to the next rather than walk every line.
	for off := 0; ; {
		i := bytes.IndexByte(src[off:], '[')
		if i < 0 {
			break
		}
		i += off
		ls := i // the line's start
		for ls > 0 && (src[ls-1] == ' ' || src[ls-1] == '\t') {
			ls--
		}
		end := bytes.IndexByte(src[i:], '\n')
		if end < 0 {
			end = len(src)
		} else {
			end += i + 1
		}
		off = end
		if ls > 0 && src[ls-1] != '\n' {
			continue // inside a line: a value's array
		}
		switch header(src[i:end]) {
		case "[[service]]":
			if start < 0 {
				head = src[:ls]
			} else {
				svcs = append(svcs, piece(start, ls))
			}
			start = ls
		case "sub":
			if start < 0 {
				return nil, nil, false
			}
		case "other":
			if start >= 0 {
				return nil, nil, false // e.g. [director] after the services
			}
		default:
			return nil, nil, false
		}
	}
	if start < 0 {
		return nil, nil, false
	}
	return head, append(svcs, piece(start, len(src))), true
}

// header classifies a line starting with '[': "[[service]]", "sub" (a
// [service.x] or [[service.x]] table), "other" (a plain header outside
// service), or "" when it cannot tell (a nested array's line, spaces).
func header(line []byte) string {
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t\n")
	name, isArray := line, false
	switch {
	case bytes.HasPrefix(name, []byte("[[")) && bytes.HasSuffix(name, []byte("]]")):
		name, isArray = name[2:len(name)-2], true
	case bytes.HasSuffix(name, []byte("]")):
		name = name[1 : len(name)-1]
	default:
		return ""
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return ""
		}
	}
	switch {
	case string(name) == "service" && isArray:
		return "[[service]]"
	case bytes.HasPrefix(name, []byte("service.")):
		return "sub"
	case string(name) == "service":
		return "" // [service]: an error the full path reports
	}
	return "other"
}

// Reload reads path again; with prev (the topology in force) it decodes
// only the services whose text changed since prev. The result, or the
// error, is the same as Load's.
func Reload(path string, prev *Topology) (*Topology, error) {
	return Options{}.Reload(path, prev)
}

// Reload is the package's Reload, checking the named files as o says.
func (o Options) Reload(path string, prev *Topology) (*Topology, error) {
	src, err := readFile(path, MaxFileSize)
	if err != nil {
		return nil, err
	}
	// The fast path decodes pieces of src: bound the whole first.
	if err := checkShape(path, src); err != nil {
		return nil, err
	}
	files := o.files()
	// src is ours alone and never changed: the fast path may keep it as
	// a string without copying it.
	if t := reparse(path, unsafe.String(unsafe.SliceData(src), len(src)), prev); t != nil {
		if files == nil || filesOK(t, files) {
			return t, nil
		}
		// The full path below places every problem at its key (files
		// keeps what was found, so nothing is checked twice).
	}
	return parse(path, src, files)
}

// reparse is the fast path of Reload: nil when it does not apply.
//
// It never looks at the whole file: the bytes an edit left alone are the
// common prefix and suffix of the old and new source (two memory
// compares), the services wholly inside them are carried over as they
// were, and only the pieces in between are cut and decoded again.
func reparse(name string, src string, prev *Topology) *Topology {
	if prev == nil || prev.pieces == nil || prev.Path != name || len(prev.pieces.starts) != len(prev.Services) {
		return nil
	}
	if prev.Failover != nil && prev.BGP != nil {
		return nil // a new service's VIP must meet the [bgp]/[failover] check
	}
	pp := prev.pieces
	old, n := pp.src, len(pp.starts)
	pre := commonPrefix(old, src)
	if pre == len(old) && len(old) == len(src) {
		// The same file: the same topology, in a new value.
		t := *prev
		return &t
	}
	suf := commonSuffix(old[pre:], src[pre:])
	if pre < pp.starts[0] {
		return nil // the head changed
	}
	// Pieces [0, k) end before the edit; pieces [m, n) start after it
	// (with the byte before each start unchanged too).
	k := sort.Search(n, func(i int) bool { return pp.starts[i] > pre }) - 1
	m := sort.Search(n, func(i int) bool { return pp.starts[i] >= len(old)-suf+1 })
	m = max(m, k+1)
	shift := len(src) - len(old)
	lo, hi := pp.starts[k], len(src)
	if m < n {
		hi = pp.starts[m] + shift
	}
	mid := src[lo:hi]
	head, spans, ok := splitServices([]byte(mid))
	if !ok || len(head) != 0 {
		return nil
	}

	count := k + len(spans) + (n - m)
	t := &Topology{Path: name, Director: prev.Director, Failover: prev.Failover, BGP: prev.BGP, RealServer: prev.RealServer,
		Services: make([]Service, 0, count)}
	p := &pieces{head: pp.head, src: src, text: make([]string, 0, count), starts: make([]int, 0, count), done: pp.done}
	t.Services = append(t.Services, prev.Services[:k]...)
	p.text = append(p.text, pp.text[:k]...)
	p.starts = append(p.starts, pp.starts[:k]...)
	var fresh []int // services decoded now
	for _, sp := range spans {
		i := len(t.Services)
		text := mid[sp[0]:sp[1]]
		var svc Service
		if old, hit := p.done[text]; hit {
			svc, text = old.svc, old.text
		} else {
			var ok bool
			if svc, ok = decodeService(name, []byte(text), i); !ok {
				return nil
			}
			// Its own copy: a substring would keep this whole
			// version of the file alive for as long as the piece.
			text = strings.Clone(text)
			fresh = append(fresh, i)
		}
		t.Services = append(t.Services, svc)
		p.text = append(p.text, text)
		p.starts = append(p.starts, lo+sp[0])
	}
	t.Services = append(t.Services, prev.Services[m:]...)
	p.text = append(p.text, pp.text[m:]...)
	for _, st := range pp.starts[m:] {
		p.starts = append(p.starts, st+shift)
	}
	if !identitiesKept(prev, t, k, m, len(spans)) && !uniqueIdentities(t.Services) {
		return nil
	}
	if len(p.done) > 2*count+64 {
		p.done = make(map[string]*piece, count)
		for i := range t.Services {
			p.done[p.text[i]] = &piece{text: p.text[i], svc: t.Services[i]}
		}
	}
	for _, i := range fresh {
		p.done[p.text[i]] = &piece{text: p.text[i], svc: t.Services[i]}
	}
	t.pieces = p
	reparses.Add(1)
	return t
}

// reparses counts the reloads that took the fast path (for tests).
var reparses atomic.Int64

// commonPrefix is the length of the longest common prefix of a and b,
// found a block at a time with the runtime's memory compare.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for blk := 4096; i+blk <= n && a[i:i+blk] == b[i:i+blk]; i += blk {
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// commonSuffix is the length of the longest common suffix of a and b.
func commonSuffix(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for blk := 4096; i+blk <= n && a[len(a)-i-blk:len(a)-i] == b[len(b)-i-blk:len(b)-i]; i += blk {
	}
	for i < n && a[len(a)-1-i] == b[len(b)-1-i] {
		i++
	}
	return i
}

// decodeService decodes one service's piece alone; ok is false on any
// problem (the full path then reports it with its real position).
func decodeService(name string, src []byte, i int) (Service, bool) {
	raw, err := decodeTOML(src)
	if err != nil || len(raw) != 1 {
		return Service{}, false
	}
	list, isList := raw["service"].([]map[string]any)
	if !isList || len(list) != 1 {
		return Service{}, false
	}
	d := &decoder{file: name, src: src}
	svc, _, _ := d.service(i, list[0])
	if len(d.errs) > 0 {
		return Service{}, false
	}
	return svc, true
}

// identitiesKept: the same number of services, and every service
// between k and m (the edited span, now mid of them) has the name,
// address tuple and fwmark of the one it replaced, so the file's
// uniqueness rules still hold without checking all of them.
func identitiesKept(prev, t *Topology, k, m, mid int) bool {
	if len(prev.Services) != len(t.Services) || mid != m-k {
		return false
	}
	for i := k; i < m; i++ {
		a, b := &prev.Services[i], &t.Services[i]
		if a.Name != b.Name || a.FWMark != b.FWMark || a.Address != b.Address || a.Port != b.Port || a.Protocol != b.Protocol {
			return false
		}
	}
	return true
}

// uniqueIdentities checks the file's cross-service rules (see services).
func uniqueIdentities(svcs []Service) bool {
	names := make(map[string]bool, len(svcs))
	tuples := make(map[svcKey]bool, len(svcs))
	marks := map[uint32]bool{}
	for i := range svcs {
		s := &svcs[i]
		k := svcKey{s.Address, s.Port, s.Protocol}
		if names[s.Name] || (s.FWMark != 0 && marks[s.FWMark]) || (s.FWMark == 0 && tuples[k]) {
			return false
		}
		names[s.Name] = true
		if s.FWMark != 0 {
			marks[s.FWMark] = true
		} else {
			tuples[k] = true
		}
	}
	return true
}

// withPieces records how src was cut, for the next Reload; t was just
// decoded from all of src.
func withPieces(t *Topology, src []byte) {
	head, svcs, ok := splitServices(src)
	if !ok || len(svcs) != len(t.Services) {
		return
	}
	// One copy of the file; the pieces are substrings of it.
	all := string(src)
	p := &pieces{src: all, head: all[:len(head)], text: make([]string, len(svcs)), starts: make([]int, len(svcs)),
		done: make(map[string]*piece, len(svcs))}
	for i, span := range svcs {
		p.text[i], p.starts[i] = all[span[0]:span[1]], span[0]
		p.done[p.text[i]] = &piece{text: p.text[i], svc: t.Services[i]}
	}
	t.pieces = p
}

// decodeTOML decodes a document into plain maps, by the fast path when
// it can.
func decodeTOML(src []byte) (map[string]any, error) {
	if raw, ok := fastDecode(src); ok {
		return raw, nil
	}
	var raw map[string]any
	_, err := toml.Decode(string(src), &raw)
	return raw, err
}

// Diff tells which services differ between prev and t when both came
// from Load or Reload of the same file: changed holds indexes into
// t.Services of services that are new or whose text changed, gone
// indexes into prev.Services of services that were removed or changed.
// ok is false when it cannot tell (another head, no record of the text):
// then treat everything as changed.
func Diff(prev, t *Topology) (changed, gone []int, ok bool) {
	if prev == nil || t == nil || prev.pieces == nil || t.pieces == nil || prev.pieces.head != t.pieces.head {
		return nil, nil, false
	}
	a, b := prev.pieces.text, t.pieces.text
	if len(a) == len(b) {
		for i := range b {
			if a[i] != b[i] {
				changed = append(changed, i)
				gone = append(gone, i)
			}
		}
		return changed, gone, true
	}
	count := make(map[string]int, len(a))
	for _, s := range a {
		count[s]++
	}
	for i, s := range b {
		if count[s] > 0 {
			count[s]--
		} else {
			changed = append(changed, i)
		}
	}
	for i := len(a) - 1; i >= 0; i-- {
		if count[a[i]] > 0 {
			count[a[i]]--
			gone = append(gone, i)
		}
	}
	slices.Reverse(gone)
	return changed, gone, true
}
