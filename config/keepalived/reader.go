// Package keepalived reads keepalived.conf and converts it into a golvs
// topology file (`director import`).
//
// The reader follows keepalived's own parser (lib/parser.c) where it
// matters for what a file means: comments start at '!' or '#' outside
// double quotes ('\#' and '\!' escape them), '{' and '}' split a line
// wherever they stand outside quotes, a word that starts with '"' runs to
// the next '"', and `include PATTERN` reads every file the glob matches,
// relative to the directory of the including file. It builds a plain tree
// of statements; what the keywords mean is the converter's business.
package keepalived

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Pos is where a statement stands: keepalived statements never span lines,
// so the line places every word of it.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Node is one statement: a keyword, its arguments and, when a '{' followed
// it, the statements of its block.
type Node struct {
	Pos   Pos
	Words []string // Words[0] is the keyword; quotes removed
	// Raw is the statement's text after comment removal, quotes kept:
	// keepalived re-reads script lines from it with escapes.
	Raw      string
	Block    []*Node
	HasBlock bool
}

// Keyword returns the statement's first word.
func (n *Node) Keyword() string { return n.Words[0] }

// Arg returns argument i (1 is the first after the keyword) or "".
func (n *Node) Arg(i int) string {
	if i < len(n.Words) {
		return n.Words[i]
	}
	return ""
}

// SyntaxError is input keepalived itself would reject or misread.
type SyntaxError struct {
	Pos Pos
	Msg string
}

func (e *SyntaxError) Error() string { return e.Pos.String() + ": " + e.Msg }

// Warning is something the reader noticed that does not stop it, such as
// an include that matched no file.
type Warning struct {
	Pos Pos
	Msg string
}

// Limits that bound the work on hostile input.
const (
	maxIncludeDepth = 32
	maxFiles        = 1000
	maxLineBytes    = 64 << 10 // keepalived's MAXBUF is 1024*64 too
)

// Source is how the reader reaches files; tests and the fuzzer give it
// an in-memory one.
type Source interface {
	ReadFile(name string) ([]byte, error)
	Glob(pattern string) ([]string, error)
}

type osSource struct{}

func (osSource) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }
func (osSource) Glob(pattern string) ([]string, error) {
	return filepath.Glob(pattern)
}

// Read parses the file at path and everything it includes.
func Read(path string) ([]*Node, []Warning, error) {
	return ReadFrom(osSource{}, path)
}

// ReadFrom is Read with files taken from src.
func ReadFrom(src Source, path string) ([]*Node, []Warning, error) {
	r := &reader{src: src}
	b, err := src.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	r.files++
	p := &parser{}
	if err := r.file(p, path, b, 0); err != nil {
		return nil, r.warnings, err
	}
	if len(p.stack) > 0 {
		open := p.stack[len(p.stack)-1].node
		return nil, r.warnings, &SyntaxError{Pos: open.Pos, Msg: fmt.Sprintf("block of %q is never closed: missing '}'", open.Keyword())}
	}
	return p.root, r.warnings, nil
}

type reader struct {
	src      Source
	files    int
	warnings []Warning
	defs     map[string]string // $NAME=value definitions seen so far
}

// definition recognises "$NAME=value" (keepalived's check_definition).
func definition(text string) (name, value string, ok bool) {
	if len(text) < 2 || text[0] != '$' {
		return "", "", false
	}
	i := 1
	for i < len(text) && isNameByte(text[i]) {
		i++
	}
	if i == 1 {
		return "", "", false
	}
	rest := strings.TrimLeft(text[i:], " \t")
	if !strings.HasPrefix(rest, "=") {
		return "", "", false
	}
	return text[1:i], strings.TrimSpace(rest[1:]), true
}

func isNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// substitute replaces $NAME and ${NAME} by their definitions; unknown
// names stay as written, as in keepalived.
func (r *reader) substitute(text string) string {
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		if text[i] != '$' {
			b.WriteByte(text[i])
			continue
		}
		j, braced := i+1, false
		if j < len(text) && text[j] == '{' {
			j, braced = j+1, true
		}
		k := j
		for k < len(text) && isNameByte(text[k]) {
			k++
		}
		v, known := r.defs[text[j:k]]
		if !known || braced && (k >= len(text) || text[k] != '}') {
			b.WriteByte('$')
			continue
		}
		if b.Len()+len(v) > maxLineBytes {
			return b.String()
		}
		b.WriteString(v)
		if braced {
			k++
		}
		i = k - 1
	}
	return strings.TrimSpace(b.String())
}

// parser builds the tree from statements and braces; includes feed the
// same parser, so a block may open in one file and close in another, as
// keepalived allows.
type parser struct {
	root  []*Node
	stack []frame
	// last is the statement a following '{' would open.
	last *Node
}

type frame struct {
	node *Node
}

func (p *parser) add(n *Node) {
	if len(p.stack) == 0 {
		p.root = append(p.root, n)
	} else {
		top := p.stack[len(p.stack)-1].node
		top.Block = append(top.Block, n)
	}
	p.last = n
}

func (p *parser) open(pos Pos) error {
	if p.last == nil || p.last.HasBlock {
		return &SyntaxError{Pos: pos, Msg: "'{' does not follow a keyword"}
	}
	p.last.HasBlock = true
	p.stack = append(p.stack, frame{node: p.last})
	p.last = nil
	return nil
}

func (p *parser) close(pos Pos) error {
	if len(p.stack) == 0 {
		return &SyntaxError{Pos: pos, Msg: "extra '}'"}
	}
	p.stack = p.stack[:len(p.stack)-1]
	p.last = nil
	return nil
}

func (r *reader) file(p *parser, name string, b []byte, depth int) error {
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		pos := Pos{File: name, Line: i + 1}
		if len(line) > maxLineBytes {
			return &SyntaxError{Pos: pos, Msg: "line too long"}
		}
		if strings.IndexByte(line, 0) >= 0 {
			return &SyntaxError{Pos: pos, Msg: "line has a NUL byte"}
		}
		line = strings.TrimRight(line, "\r")
		text, err := decomment(line)
		if err != nil {
			return &SyntaxError{Pos: pos, Msg: err.Error()}
		}
		if text == "" {
			continue
		}
		if text[0] == '@' {
			// "@ID line" applies only on the host started with -i ID,
			// "@^ID line" everywhere else; golvs has no such switch.
			id, rest, _ := strings.Cut(text[1:], " ")
			rest = strings.TrimSpace(rest)
			if strings.HasPrefix(id, "^") && rest != "" {
				text = rest
			} else {
				r.warnings = append(r.warnings, Warning{Pos: pos, Msg: fmt.Sprintf("line for config id %q skipped, as keepalived does without -i", id)})
				continue
			}
		}
		if strings.HasPrefix(text, "~SEQ") || strings.HasPrefix(text, "~LST") {
			return &SyntaxError{Pos: pos, Msg: "~SEQ and ~LST are not supported by the importer: expand them first"}
		}
		if name, value, ok := definition(text); ok {
			if strings.HasSuffix(value, "\\") {
				return &SyntaxError{Pos: pos, Msg: "multi-line parameter definitions are not supported by the importer"}
			}
			if r.defs == nil {
				r.defs = map[string]string{}
			}
			r.defs[name] = value
			continue
		}
		if len(r.defs) > 0 && strings.Contains(text, "$") {
			text = r.substitute(text)
			if text == "" {
				continue
			}
		}
		if pattern, ok := includePattern(text); ok {
			if err := r.include(p, pos, pattern, depth); err != nil {
				return err
			}
			continue
		}
		if err := statements(p, pos, text); err != nil {
			return err
		}
	}
	return nil
}

// includePattern recognises keepalived's include line and its variants
// (includer, includem, ... differ only in which failures they report).
func includePattern(text string) (string, bool) {
	rest, ok := strings.CutPrefix(text, "include")
	if !ok || rest == "" {
		return "", false
	}
	if rest[0] == ' ' || rest[0] == '\t' {
		return strings.TrimSpace(rest), true
	}
	if len(rest) > 1 && strings.ContainsRune("rmwba", rune(rest[0])) && (rest[1] == ' ' || rest[1] == '\t') {
		return strings.TrimSpace(rest[1:]), true
	}
	return "", false
}

func (r *reader) include(p *parser, pos Pos, pattern string, depth int) error {
	if depth >= maxIncludeDepth {
		return &SyntaxError{Pos: pos, Msg: fmt.Sprintf("includes nested deeper than %d (a loop?)", maxIncludeDepth)}
	}
	if pattern == "" {
		return &SyntaxError{Pos: pos, Msg: "include without a file name"}
	}
	// keepalived changes into the including file's directory first.
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(pos.File), pattern)
	}
	var matches []string
	for _, pat := range expandBraces(pattern) {
		m, err := r.src.Glob(pat)
		if err != nil {
			return &SyntaxError{Pos: pos, Msg: fmt.Sprintf("include %q: %v", pattern, err)}
		}
		matches = append(matches, m...)
	}
	sort.Strings(matches)
	if len(matches) == 0 {
		r.warnings = append(r.warnings, Warning{Pos: pos, Msg: fmt.Sprintf("include %q matched no file", pattern)})
		return nil
	}
	for _, m := range matches {
		r.files++
		if r.files > maxFiles {
			return &SyntaxError{Pos: pos, Msg: fmt.Sprintf("more than %d files included", maxFiles)}
		}
		b, err := r.src.ReadFile(m)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return &SyntaxError{Pos: pos, Msg: fmt.Sprintf("include %s: %v", m, err)}
		}
		if err := r.file(p, m, b, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// expandBraces expands the first {a,b} group (glob's GLOB_BRACE), then
// the rest recursively.
func expandBraces(s string) []string {
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return []string{s}
	}
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				var out []string
				for _, alt := range splitTop(s[open+1 : i]) {
					out = append(out, expandBraces(s[:open]+alt+s[i+1:])...)
					if len(out) > maxFiles {
						return out
					}
				}
				return out
			}
		}
	}
	return []string{s}
}

// splitTop splits at commas outside nested braces.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// decomment removes a comment and the escapes of comment characters, and
// trims the line, as keepalived's decomment() does.
func decomment(line string) (string, error) {
	var b strings.Builder
	quote := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			quote = !quote
		case c == '\\' && i+1 < len(line):
			if !quote && (line[i+1] == '#' || line[i+1] == '!') {
				b.WriteByte(line[i+1])
			} else {
				b.WriteByte(c)
				b.WriteByte(line[i+1])
			}
			i++
			continue
		case !quote && (c == '!' || c == '#'):
			return strings.TrimSpace(b.String()), nil
		}
		b.WriteByte(c)
	}
	if quote {
		return "", fmt.Errorf("unterminated quote")
	}
	return strings.TrimSpace(b.String()), nil
}

// statements cuts a line at braces outside quotes and feeds the parser.
func statements(p *parser, pos Pos, text string) error {
	for text != "" {
		i := braceIndex(text)
		if i < 0 {
			return statement(p, pos, text)
		}
		if i > 0 {
			if err := statement(p, pos, strings.TrimSpace(text[:i])); err != nil {
				return err
			}
		}
		var err error
		if text[i] == '{' {
			err = p.open(pos)
		} else {
			err = p.close(pos)
		}
		if err != nil {
			return err
		}
		text = strings.TrimSpace(text[i+1:])
	}
	return nil
}

func braceIndex(s string) int {
	quote := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quote = !quote
		case '{', '}':
			if !quote {
				return i
			}
		}
	}
	return -1
}

func statement(p *parser, pos Pos, text string) error {
	if text == "" {
		return nil
	}
	words, err := splitWords(text)
	if err != nil {
		return &SyntaxError{Pos: pos, Msg: err.Error()}
	}
	if len(words) == 0 {
		return nil
	}
	p.add(&Node{Pos: pos, Words: words, Raw: text})
	return nil
}

// splitWords is keepalived's alloc_strvec: a word starting with '"' runs
// to the next '"' (quotes dropped), any other word to white space or '"'.
func splitWords(s string) ([]string, error) {
	var words []string
	for {
		s = strings.TrimLeft(s, " \t\v\f\r")
		if s == "" {
			return words, nil
		}
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unmatched quote")
			}
			words = append(words, s[1:1+end])
			s = s[end+2:]
			continue
		}
		end := strings.IndexAny(s, " \t\v\f\r\"")
		if end < 0 {
			end = len(s)
		}
		words = append(words, s[:end])
		s = s[end:]
	}
}

// scriptArgv turns a script statement (notify_*, misc_path, quorum_up...)
// into the argv keepalived executes: the raw line is re-read with quotes
// and escapes, and its first argument split again into words.
func scriptArgv(n *Node) ([]string, error) {
	words, err := splitQuotedEscaped(n.Raw)
	if err != nil {
		return nil, err
	}
	if len(words) < 2 {
		return nil, fmt.Errorf("no script given")
	}
	argv, err := splitQuotedEscaped(words[1])
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("empty script")
	}
	return argv, nil
}

// splitQuotedEscaped is keepalived's alloc_strvec_quoted_escaped: words
// separated by white space, '...' and "..." quote, backslash escapes.
func splitQuotedEscaped(s string) ([]string, error) {
	var words []string
	i := 0
	for {
		for i < len(s) && strings.IndexByte(" \t\v\f\r\n", s[i]) >= 0 {
			i++
		}
		if i >= len(s) {
			return words, nil
		}
		var w strings.Builder
		var quote byte
	word:
		for i < len(s) {
			c := s[i]
			switch {
			case c == '\\':
				i++
				if i >= len(s) {
					return nil, fmt.Errorf("escape at end of %q", s)
				}
				w.WriteByte(unescape(s, &i))
				continue
			case quote != 0 && c == quote:
				quote = 0
			case quote != 0:
				w.WriteByte(c)
			case c == '"' || c == '\'':
				quote = c
			case strings.IndexByte(" \t\v\f\r\n", c) >= 0:
				break word
			default:
				w.WriteByte(c)
			}
			i++
		}
		if quote != 0 {
			return nil, fmt.Errorf("missing terminating %c in %q", quote, s)
		}
		words = append(words, w.String())
	}
}

// unescape reads the escape at s[*i] (after the backslash) and advances.
func unescape(s string, i *int) byte {
	c := s[*i]
	isHex := func(b byte) bool {
		return b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F'
	}
	hexVal := func(b byte) byte {
		switch {
		case b >= '0' && b <= '9':
			return b - '0'
		case b >= 'a' && b <= 'f':
			return b - 'a' + 10
		}
		return b - 'A' + 10
	}
	switch {
	case c == 'x' && *i+1 < len(s) && isHex(s[*i+1]):
		*i++
		var v byte
		for k := 0; k < 2 && *i < len(s) && isHex(s[*i]); k++ {
			v = v<<4 | hexVal(s[*i])
			*i++
		}
		return v
	case c == 'c' && *i+1 < len(s):
		v := s[*i+1] & 0x1f
		*i += 2
		return v
	case c >= '0' && c <= '7':
		v := c - '0'
		*i++
		for k := 0; k < 2 && *i < len(s) && s[*i] >= '0' && s[*i] <= '7'; k++ {
			v = v<<3 + s[*i] - '0'
			*i++
		}
		return v
	}
	*i++
	switch c {
	case 'a':
		return '\a'
	case 'b':
		return '\b'
	case 'E':
		return 0x1b
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'v':
		return '\v'
	}
	return c
}
