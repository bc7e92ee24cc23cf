package config

import (
	"strings"
	"unicode/utf8"
)

// fastDecode decodes the common subset of TOML that topology files are
// written in, producing exactly the map[string]any that BurntSushi/toml
// v1.6.0 gives when decoding into a map[string]any: tables are
// map[string]any, arrays of tables []map[string]any, arrays []any (never
// nil), integers int64, strings string, booleans bool.
//
// BurntSushi's lexer hands every token to its parser over a channel and
// allocates per token, which made decoding dominate start-up on large
// files under emulation. This decoder is a single pass over the bytes.
//
// It is deliberately partial: on anything outside the subset, or anything
// it is not sure about, it returns ok=false and the caller decodes with
// BurntSushi, which also produces every error message and position. So a
// give-up only costs speed; the decoder must never accept input that
// BurntSushi would reject or decode differently. Outside the subset:
// dotted and quoted keys, quoted header segments, multi-line strings,
// floats, non-decimal integers, dates and times, inline tables, escapes
// beyond TOML 1.0's (\e, \x), a BOM, CR, control characters and invalid
// UTF-8, and redefinitions of any kind (even the valid "[a]" after
// "[a.b]").
func fastDecode(src []byte) (map[string]any, bool) {
	if !plainText(src) {
		return nil, false
	}
	// One conversion: keys and unescaped strings are then substrings of s
	// and cost no allocation. BurntSushi's values also point into its copy
	// of the input, so this retains no more memory than it does.
	p := fastParser{s: string(src), root: make(map[string]any)}
	p.cur = p.root
	if !p.document() {
		return nil, false
	}
	return p.root, true
}

// plainText rejects bytes the subset never needs to reason about: control
// characters other than tab and newline (so also CR, which BurntSushi only
// accepts before LF), DEL, invalid UTF-8 and a leading BOM (which
// BurntSushi silently strips).
func plainText(src []byte) bool {
	high := false
	for _, c := range src {
		if c < 0x20 && c != '\t' && c != '\n' || c == 0x7f {
			return false
		}
		if c >= 0x80 {
			high = true
		}
	}
	if !high {
		return true
	}
	return utf8.Valid(src) && !strings.HasPrefix(string(src), "\uFEFF")
}

type fastParser struct {
	s    string
	i    int
	root map[string]any
	cur  map[string]any // the table key = value lines go into
}

// maxArrayDepth bounds recursion on nested arrays; deeper input is left to
// BurntSushi.
const maxArrayDepth = 32

func (p *fastParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// skipComment skips from '#' to the newline (not consumed). Its contents
// were vetted by plainText.
func (p *fastParser) skipComment() {
	if j := strings.IndexByte(p.s[p.i:], '\n'); j >= 0 {
		p.i += j
	} else {
		p.i = len(p.s)
	}
}

// endLine accepts what may follow a header or a value: spaces, then an
// optional comment, then a newline or the end of the file.
func (p *fastParser) endLine() bool {
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == '#' {
		p.skipComment()
	}
	if p.i == len(p.s) {
		return true
	}
	if p.s[p.i] == '\n' {
		p.i++
		return true
	}
	return false
}

func (p *fastParser) document() bool {
	for {
		for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
			p.i++
		}
		if p.i == len(p.s) {
			return true
		}
		var ok bool
		switch p.s[p.i] {
		case '#':
			p.skipComment()
			continue
		case '[':
			ok = p.header()
		default:
			ok = p.keyValue()
		}
		if !ok || !p.endLine() {
			return false
		}
	}
}

// bareKey reads one bare key or header segment (at least one character;
// isBare is the set position.go also uses).
func (p *fastParser) bareKey() (string, bool) {
	start := p.i
	for p.i < len(p.s) && isBare(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i], p.i > start
}

// header handles [a.b] and [[a.b]]. Intermediate segments are resolved as
// TOML does: a missing one becomes an (implicit) table, an array of tables
// means its last element. The last segment of [x] must not exist at all;
// that of [[x]] must be absent or an array of tables.
func (p *fastParser) header() bool {
	p.i++ // '['
	array := p.i < len(p.s) && p.s[p.i] == '['
	if array {
		p.i++
	}
	h := p.root
	for {
		p.skipSpace()
		name, ok := p.bareKey()
		if !ok {
			return false
		}
		p.skipSpace()
		if p.i == len(p.s) {
			return false
		}
		switch p.s[p.i] {
		case '.':
			p.i++
			switch t := h[name].(type) {
			case nil:
				if _, exists := h[name]; exists {
					return false
				}
				m := make(map[string]any)
				h[name] = m
				h = m
			case map[string]any:
				h = t
			case []map[string]any:
				// Only [[...]] headers make []map[string]any (inline
				// tables are given up on), so it is never empty.
				h = t[len(t)-1]
			default:
				return false
			}
			continue
		case ']':
			p.i++
		default:
			return false
		}
		// name is the last segment.
		m := make(map[string]any)
		if !array {
			if _, exists := h[name]; exists {
				return false
			}
			h[name] = m
			p.cur = m
			return true
		}
		if p.i == len(p.s) || p.s[p.i] != ']' {
			return false
		}
		p.i++
		switch t := h[name].(type) {
		case nil:
			if _, exists := h[name]; exists {
				return false
			}
			h[name] = []map[string]any{m}
		case []map[string]any:
			h[name] = append(t, m)
		default:
			return false
		}
		p.cur = m
		return true
	}
}

func (p *fastParser) keyValue() bool {
	key, ok := p.bareKey()
	if !ok {
		return false
	}
	p.skipSpace()
	if p.i == len(p.s) || p.s[p.i] != '=' {
		return false // includes dotted keys
	}
	p.i++
	p.skipSpace()
	if _, exists := p.cur[key]; exists {
		return false
	}
	v, ok := p.value(0)
	if !ok {
		return false
	}
	p.cur[key] = v
	return true
}

// value reads one value. What follows it is checked by the caller (endLine
// or the array loop), which is what rejects "1.5", "1e3", "0x1", dates,
// "truex" and the like: none of them is followed by a terminator here.
func (p *fastParser) value(depth int) (any, bool) {
	if p.i == len(p.s) {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '"':
		return p.basicString()
	case c == '\'':
		return p.literalString()
	case c == '[':
		return p.array(depth)
	case c == 't':
		if strings.HasPrefix(p.s[p.i:], "true") {
			p.i += 4
			return true, true
		}
	case c == 'f':
		if strings.HasPrefix(p.s[p.i:], "false") {
			p.i += 5
			return false, true
		}
	case c == '+' || c == '-' || c >= '0' && c <= '9':
		return p.integer()
	}
	return nil, false
}

// integer reads a decimal integer: optional sign, digits with single
// underscores between digits, no leading zero, within int64.
func (p *fastParser) integer() (any, bool) {
	neg := false
	if c := p.s[p.i]; c == '+' || c == '-' {
		neg = c == '-'
		p.i++
	}
	start := p.i
	const limit = 1 << 63 // magnitude of math.MinInt64
	var n uint64
	prevDigit := false
	for ; p.i < len(p.s); p.i++ {
		c := p.s[p.i]
		if c == '_' {
			if !prevDigit {
				return nil, false
			}
			prevDigit = false
			continue
		}
		if c < '0' || c > '9' {
			break
		}
		if n > limit/10 {
			return nil, false
		}
		n = n*10 + uint64(c-'0')
		if n > limit {
			return nil, false
		}
		prevDigit = true
	}
	digits := p.s[start:p.i]
	if !prevDigit || digits[0] == '0' && len(digits) > 1 {
		// Empty, trailing '_', or a leading zero (also "0_1").
		return nil, false
	}
	if neg {
		return -int64(n), true // n == 1<<63 wraps to math.MinInt64, as wanted
	}
	if n == limit {
		return nil, false
	}
	return int64(n), true
}

// literalString reads '...'; multi-line literal strings are given up on.
func (p *fastParser) literalString() (any, bool) {
	if strings.HasPrefix(p.s[p.i:], "'''") {
		return nil, false
	}
	start := p.i + 1
	for j := start; j < len(p.s); j++ {
		switch p.s[j] {
		case '\'':
			p.i = j + 1
			return p.s[start:j], true
		case '\n':
			return nil, false
		}
	}
	return nil, false
}

// basicString reads "..."; multi-line basic strings are given up on. Without
// escapes the value is a substring of the input.
func (p *fastParser) basicString() (any, bool) {
	if strings.HasPrefix(p.s[p.i:], `"""`) {
		return nil, false
	}
	start := p.i + 1
	for j := start; j < len(p.s); j++ {
		switch p.s[j] {
		case '"':
			p.i = j + 1
			return p.s[start:j], true
		case '\\':
			return p.escapedString(start)
		case '\n':
			return nil, false
		}
	}
	return nil, false
}

// escapedString decodes a basic string that has escapes, allowing only
// TOML 1.0's: \b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX, the last two being
// Unicode scalar values (no surrogates).
func (p *fastParser) escapedString(start int) (any, bool) {
	// Find the closing quote first so the result is built in one
	// allocation.
	end := -1
	for j := start; j < len(p.s); j++ {
		c := p.s[j]
		if c == '"' {
			end = j
			break
		}
		if c == '\n' {
			return nil, false
		}
		if c == '\\' {
			j++ // the escaped byte cannot end the string
		}
	}
	if end < 0 {
		return nil, false
	}
	s := p.s[start:end]
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++ // s cannot end in a lone '\': that would have escaped the quote
		if r, ok := shortEscape(s[i]); ok {
			b.WriteByte(r)
			continue
		}
		switch s[i] {
		case 'u', 'U':
			n := 4
			if s[i] == 'U' {
				n = 8
			}
			if i+n >= len(s) {
				return nil, false
			}
			var r uint32
			for _, h := range []byte(s[i+1 : i+1+n]) {
				var d byte
				switch {
				case h >= '0' && h <= '9':
					d = h - '0'
				case h >= 'a' && h <= 'f':
					d = h - 'a' + 10
				case h >= 'A' && h <= 'F':
					d = h - 'A' + 10
				default:
					return nil, false
				}
				r = r<<4 | uint32(d)
			}
			if r > utf8.MaxRune || !utf8.ValidRune(rune(r)) {
				return nil, false
			}
			b.WriteRune(rune(r))
			i += n
		default:
			return nil, false
		}
	}
	p.i = end + 1
	return b.String(), true
}

// array reads [v, ...] over any number of lines, with comments and an
// optional trailing comma; elements may be of mixed types.
func (p *fastParser) array(depth int) (any, bool) {
	if depth >= maxArrayDepth {
		return nil, false
	}
	p.i++ // '['
	arr := make([]any, 0, 2)
	for {
		if !p.skipArraySpace() {
			return nil, false
		}
		if p.s[p.i] == ']' {
			p.i++
			return arr, true
		}
		v, ok := p.value(depth + 1)
		if !ok {
			return nil, false
		}
		arr = append(arr, v)
		if !p.skipArraySpace() {
			return nil, false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return arr, true
		default:
			return nil, false
		}
	}
}

// skipArraySpace skips spaces, newlines and comments inside an array and
// reports whether anything but the end of the file follows.
func (p *fastParser) skipArraySpace() bool {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n':
			p.i++
		case '#':
			p.skipComment()
		default:
			return true
		}
	}
	return false
}
