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

// positions maps a joined key path to where the key is written.
type positions map[string]pos

func joinPath(path []string) string { return strings.Join(path, "\x1f") }

// at returns the position of path, or of its nearest recorded ancestor.
func (ps positions) at(path []string) pos {
	for n := len(path); n > 0; n-- {
		if p, ok := ps[joinPath(path[:n])]; ok {
			return p
		}
	}
	return pos{1, 1}
}

func indexPositions(src []byte) positions {
	s := &scanner{src: src, line: 1, idx: positions{}, aot: map[string]int{}}
	s.run()
	return s.idx
}

type scanner struct {
	src       []byte
	off       int
	line      int
	lineStart int
	idx       positions
	aot       map[string]int // array-of-tables path -> elements seen so far
	cur       []string       // path of the current [table]
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

func (s *scanner) record(path []string, p pos) {
	k := joinPath(path)
	if _, ok := s.idx[k]; !ok {
		s.idx[k] = p
	}
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
		} else {
			s.keyValue(s.cur)
		}
		s.skipBlank(false)
		s.skipLine() // anything left on the line is not ours to index
		if s.off == start {
			s.next()
		}
	}
}

// resolve maps header keys to a path, a component that names an array of
// tables standing for its latest element.
func (s *scanner) resolve(keys []string) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k)
		if n, ok := s.aot[joinPath(out)]; ok && n > 0 {
			out = append(out, strconv.Itoa(n-1))
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
	var path []string
	if double {
		path = append(s.resolve(keys[:len(keys)-1]), keys[len(keys)-1])
		k := joinPath(path)
		s.aot[k]++
		path = append(path, strconv.Itoa(s.aot[k]-1))
	} else {
		path = s.resolve(keys)
	}
	for n := 1; n <= len(path); n++ {
		s.record(path[:n], p)
	}
	s.cur = path
	for !s.eof() && s.peek() == ']' {
		s.next()
	}
}

func (s *scanner) keyValue(base []string) {
	s.skipBlank(false)
	p := s.here()
	keys := s.key()
	if len(keys) == 0 {
		return
	}
	path := append(append([]string(nil), base...), keys...)
	for n := len(base) + 1; n <= len(path); n++ {
		s.record(path[:n], p)
	}
	s.skipBlank(false)
	if s.peek() != '=' {
		return
	}
	s.next()
	s.skipBlank(false)
	s.value(path)
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

func (s *scanner) value(path []string) {
	switch s.peek() {
	case '"':
		if s.hasPrefix(`"""`) {
			s.skipMultiline(`"""`, true)
		} else {
			s.basicString()
		}
	case '\'':
		if s.hasPrefix(`'''`) {
			s.skipMultiline(`'''`, false)
		} else {
			s.literalString()
		}
	case '{':
		s.record(path, s.here())
		s.next()
		for !s.eof() {
			s.skipBlank(true)
			switch s.peek() {
			case '}':
				s.next()
				return
			case ',':
				s.next()
				continue
			}
			start := s.off
			s.keyValue(path)
			if s.off == start {
				s.next()
			}
		}
	case '[':
		s.next()
		i := 0
		for !s.eof() {
			s.skipBlank(true)
			switch s.peek() {
			case ']':
				s.next()
				return
			case ',':
				s.next()
				i++
				continue
			}
			start := s.off
			elem := append(append([]string(nil), path...), strconv.Itoa(i))
			s.record(elem, s.here())
			s.value(elem)
			if s.off == start {
				s.next()
			}
		}
	default:
		for !s.eof() {
			switch s.peek() {
			case ',', ']', '}', '\n', '#':
				return
			}
			s.next()
		}
	}
}
