package config

// How key positions are located.
//
// BurntSushi/toml reports positions only for syntax errors: its lexer is
// unexported and the decoded data carries no positions. So after the file
// has parsed cleanly we walk the source once more with the small scanner
// below and record, for every key path, the line and column where it is
// written. A path is the chain of keys from the root with arrays of tables
// (and inline arrays) resolved to their 0-based element index, e.g.
// service/0/backend/1/weight. The scanner tracks:
//
//   - [table] and [[array.of.tables]] headers: a header path is resolved
//     like TOML does, a component naming an array of tables meaning its
//     latest element, and a [[header]] appending a new element. The
//     header itself is recorded (at its '[') so a table that lacks a
//     required key can be pointed at;
//   - key = value lines with dotted and quoted keys, relative to the
//     current header; the dotted prefixes (implicit tables) get the
//     position of the first key that created them;
//   - values, to skip them correctly (strings of all four kinds, possibly
//     multi-line) and to descend into inline tables and arrays, whose
//     elements are numbered like arrays of tables.
//
// The positions go into a tree of key paths (posNode), so the index is
// built in one pass, linear in the file however deep it nests, and values
// are descended into with an explicit stack rather than recursion.
//
// The scanner only runs on input the TOML parser accepted, so it is
// lenient rather than validating; it still guarantees progress on any
// input. A path that is not found falls back to its nearest recorded
// ancestor, and finally to 1:1.

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

type pos struct{ line, col int }

// posNode is one key path in the position index, a tree: recording a key
// under its table, or an element under its array, is one step from its
// parent, so building the index is linear in the file whatever its
// nesting (a flat map of joined paths cost O(depth) per key, O(depth^2)
// for a deep array, which took seconds at depth 4,000).
type posNode struct {
	p     pos
	set   bool
	aot   int                 // elements of the array of tables this path names, so far
	named map[string]*posNode // a table's keys
	elems []*posNode          // an array's elements (inline, or of tables)
}

func (n *posNode) key(k string) *posNode {
	if c, ok := n.named[k]; ok {
		return c
	}
	if n.named == nil {
		n.named = make(map[string]*posNode)
	}
	c := &posNode{}
	n.named[k] = c
	return c
}

func (n *posNode) elem(i int) *posNode {
	for len(n.elems) <= i {
		n.elems = append(n.elems, &posNode{})
	}
	return n.elems[i]
}

// record keeps the first position seen for n.
func (n *posNode) record(p pos) {
	if !n.set {
		n.p, n.set = p, true
	}
}

// at returns the position of path, or of its nearest recorded ancestor.
// A path names array elements by their decimal index.
func (n *posNode) at(path []string) pos {
	best := pos{1, 1}
	for _, k := range path {
		next := n.named[k]
		if i, err := strconv.Atoi(k); err == nil && i >= 0 && i < len(n.elems) {
			next = n.elems[i]
		}
		if n = next; n == nil {
			break
		}
		if n.set {
			best = n.p
		}
	}
	return best
}

func indexPositions(src []byte) *posNode {
	s := &scanner{src: src, line: 1, root: &posNode{}}
	s.cur = s.root
	s.run()
	return s.root
}

type scanner struct {
	src       []byte
	off       int
	line      int
	lineStart int
	root      *posNode
	cur       *posNode // the current [table]
}

func (s *scanner) eof() bool { return s.off >= len(s.src) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.off]
}

func (s *scanner) hasPrefix(p string) bool {
	return strings.HasPrefix(string(s.src[s.off:min(len(s.src), s.off+len(p))]), p)
}

func (s *scanner) next() {
	if s.eof() {
		return
	}
	if s.src[s.off] == '\n' {
		s.line++
		s.lineStart = s.off + 1
	}
	s.off++
}

func (s *scanner) here() pos {
	// Columns count bytes, like the TOML parser's own error positions.
	return pos{s.line, s.off - s.lineStart + 1}
}

// skipBlank skips spaces, tabs, comments and, if newlines, line breaks.
func (s *scanner) skipBlank(newlines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.next()
		case c == '\n' && newlines:
			s.next()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.next()
			}
		default:
			return
		}
	}
}

func (s *scanner) skipLine() {
	for !s.eof() && s.peek() != '\n' {
		s.next()
	}
}

func (s *scanner) run() {
	for {
		s.skipBlank(true)
		if s.eof() {
			return
		}
		start := s.off
		if s.peek() == '[' {
			s.header()
		} else if n := s.keyValue(s.cur); n != nil {
			s.value(n)
		}
		s.skipBlank(false)
		s.skipLine() // anything left on the line is not ours to index
		if s.off == start {
			s.next()
		}
	}
}

// resolve walks header keys from the root, a component that names an
// array of tables standing for its latest element; it returns every node
// passed.
func (s *scanner) resolve(keys []string) []*posNode {
	n := s.root
	var out []*posNode
	for _, k := range keys {
		n = n.key(k)
		out = append(out, n)
		if n.aot > 0 {
			n = n.elem(n.aot - 1)
			out = append(out, n)
		}
	}
	return out
}

func (s *scanner) header() {
	p := s.here()
	s.next()
	double := s.peek() == '['
	if double {
		s.next()
	}
	keys := s.key()
	if len(keys) == 0 {
		return
	}
	var path []*posNode
	if double {
		path = s.resolve(keys[:len(keys)-1])
		parent := s.root
		if len(path) > 0 {
			parent = path[len(path)-1]
		}
		arr := parent.key(keys[len(keys)-1])
		arr.aot++
		path = append(path, arr, arr.elem(arr.aot-1))
	} else {
		path = s.resolve(keys)
	}
	for _, n := range path {
		n.record(p)
	}
	s.cur = path[len(path)-1]
	for !s.eof() && s.peek() == ']' {
		s.next()
	}
}

// keyValue indexes one key = value under base and returns the value's
// node, or nil when there is no value to read (not a key, no '=').
func (s *scanner) keyValue(base *posNode) *posNode {
	s.skipBlank(false)
	p := s.here()
	keys := s.key()
	if len(keys) == 0 {
		return nil
	}
	n := base
	for _, k := range keys {
		n = n.key(k)
		n.record(p)
	}
	s.skipBlank(false)
	if s.peek() != '=' {
		return nil
	}
	s.next()
	s.skipBlank(false)
	return n
}

// key reads a possibly dotted key, returning its unquoted parts.
func (s *scanner) key() []string {
	var parts []string
	for {
		s.skipBlank(false)
		var part string
		switch s.peek() {
		case '"':
			part = s.basicString()
		case '\'':
			part = s.literalString()
		default:
			start := s.off
			for !s.eof() && isBare(s.peek()) {
				s.next()
			}
			if s.off == start {
				return parts
			}
			part = string(s.src[start:s.off])
		}
		parts = append(parts, part)
		s.skipBlank(false)
		if s.peek() != '.' {
			return parts
		}
		s.next()
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// shortEscape is the byte a one-letter TOML escape such as \n stands for.
// The \u, \U (and, for error positions only, \e and \x) escapes are
// left to the callers: they accept different sets on purpose.
func shortEscape(c byte) (byte, bool) {
	switch c {
	case 'b':
		return '\b', true
	case 't':
		return '\t', true
	case 'n':
		return '\n', true
	case 'f':
		return '\f', true
	case 'r':
		return '\r', true
	case '"', '\\':
		return c, true
	}
	return 0, false
}

// basicString reads a single-line "..." string and returns its value.
func (s *scanner) basicString() string {
	s.next()
	var b strings.Builder
	for !s.eof() && s.peek() != '"' && s.peek() != '\n' {
		c := s.peek()
		if c != '\\' {
			b.WriteByte(c)
			s.next()
			continue
		}
		s.next()
		e := s.peek()
		s.next()
		if r, ok := shortEscape(e); ok {
			b.WriteByte(r)
			continue
		}
		switch e {
		case 'e':
			b.WriteByte(0x1b)
		case 'u', 'U', 'x':
			n := map[byte]int{'u': 4, 'U': 8, 'x': 2}[e]
			start := s.off
			for i := 0; i < n && !s.eof(); i++ {
				s.next()
			}
			r, err := strconv.ParseUint(string(s.src[start:s.off]), 16, 32)
			if err == nil && utf8.ValidRune(rune(r)) {
				b.WriteRune(rune(r))
			}
		default:
			b.WriteByte(e)
		}
	}
	s.next() // closing quote
	return b.String()
}

// literalString reads a single-line '...' string.
func (s *scanner) literalString() string {
	s.next()
	start := s.off
	for !s.eof() && s.peek() != '\'' && s.peek() != '\n' {
		s.next()
	}
	v := string(s.src[start:s.off])
	s.next()
	return v
}

// skipMultiline skips a multi-line string, opening delimiter included.
func (s *scanner) skipMultiline(delim string, escapes bool) {
	for range 3 {
		s.next()
	}
	for !s.eof() {
		if escapes && s.peek() == '\\' {
			s.next()
			s.next()
			continue
		}
		if s.hasPrefix(delim) {
			for range 3 {
				s.next()
			}
			// Up to two quotes may end the content right before the delimiter.
			for range 2 {
				if s.peek() == delim[0] {
					s.next()
				}
			}
			return
		}
		s.next()
	}
}

// container is an inline table or array being read by value.
type container struct {
	n      *posNode
	inline bool // {...}; else [...]
	i      int  // the array's current element
}

// value indexes one value (descending into inline tables and arrays,
// whose elements are numbered like arrays of tables) and skips it. It
// keeps its own stack rather than recursing, so nesting costs no Go stack.
func (s *scanner) value(n *posNode) {
	var stack []container
	for {
		// One value at n.
		start := s.off
		switch s.peek() {
		case '"':
			if s.hasPrefix(`"""`) {
				s.skipMultiline(`"""`, true)
			} else {
				s.basicString()
			}
		case '\'':
			if s.hasPrefix("'''") {
				s.skipMultiline("'''", false)
			} else {
				s.literalString()
			}
		case '{':
			n.record(s.here())
			s.next()
			stack = append(stack, container{n: n, inline: true})
		case '[':
			s.next()
			stack = append(stack, container{n: n})
		default:
			for !s.eof() {
				switch s.peek() {
				case ',', ']', '}', '\n', '#':
					goto scalarDone
				}
				s.next()
			}
		scalarDone:
			if s.off == start && len(stack) > 0 {
				s.next() // a stray byte inside a container: step over it
			}
		}
		// Find the next value to read inside the innermost container,
		// closing the ones that end.
		next := (*posNode)(nil)
		for next == nil {
			if len(stack) == 0 {
				return
			}
			top := &stack[len(stack)-1]
			s.skipBlank(true)
			if s.eof() {
				return
			}
			switch c := s.peek(); {
			case top.inline && c == '}', !top.inline && c == ']':
				s.next()
				stack = stack[:len(stack)-1]
			case c == ',':
				s.next()
				if !top.inline {
					top.i++
				}
			case top.inline:
				at := s.off
				if next = s.keyValue(top.n); next == nil && s.off == at {
					s.next()
				}
			default:
				next = top.n.elem(top.i)
				next.record(s.here())
			}
		}
		n = next
	}
}
