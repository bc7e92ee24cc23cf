package config

import (
	"fmt"
	"io"
	"os"
)

// Bounds on a topology file, checked before any TOML parser sees it. A
// topology of 100,000 services is a few tens of MB and nests three deep;
// the bounds leave room for that and stop the files that cost a parser
// minutes and gigabytes (or its stack) per kilobyte: `x = [[[[...]]]]`.
const (
	// MaxFileSize is the largest topology file Load and Reload read.
	MaxFileSize = 64 << 20
	// MaxNesting bounds how deep arrays and inline tables nest,
	// counting the brackets of a [[table]] header.
	MaxNesting = 32
	// MaxKeyParts bounds the parts of one dotted key or table header
	// (a.b.c is three).
	MaxKeyParts = 32
)

// readFile reads at most limit (MaxFileSize) bytes of path; a larger file
// is an error at once, without reading it (a regular file), or after
// limit+1 bytes (a pipe, /dev/zero).
func readFile(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	tooBig := fmt.Errorf("config: %s is larger than %d MiB: not a topology file", path, limit>>20)
	size := 512
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		if st.Size() > int64(limit) {
			return nil, tooBig
		}
		size = int(st.Size()) + 1 // one more, to see the end without growing
	}
	buf := make([]byte, 0, size)
	r := io.LimitReader(f, int64(limit)+1)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
	if len(buf) > limit {
		return nil, tooBig
	}
	return buf, nil
}

// checkShape scans src once for nesting deeper than MaxNesting and keys
// of more than MaxKeyParts parts, lexing only as far as that needs:
// comments, the four kinds of strings (so brackets and dots inside them
// do not count), brackets and dots. On any prefix of a valid TOML file it
// agrees with a real lexer; where it does not (a quote where TOML allows
// none), the file has a syntax error there, at which every parser stops,
// so what it saw up to there is what they see.
func checkShape(name string, src []byte) error {
	depth, parts := 0, 1
	line, lineStart := 1, 0
	fail := func(i int, msg string) error {
		return Errors{{File: name, Line: line, Col: i - lineStart + 1, Msg: msg}}
	}
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '\n':
			line, lineStart = line+1, i+1
			parts = 1
		case '#':
			for i+1 < len(src) && src[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			multi := i+2 < len(src) && src[i+1] == c && src[i+2] == c
			if !multi {
				i++
				for i < len(src) && src[i] != c && src[i] != '\n' {
					if c == '"' && src[i] == '\\' {
						i++
					}
					i++
				}
				if i < len(src) && src[i] == '\n' {
					i-- // let the loop count the line
				}
				continue
			}
			// A multi-line string: up to three closing quotes, of which
			// up to two more may precede it as content ("""a""""" is a"").
			for i += 3; i < len(src); i++ {
				if c == '"' && src[i] == '\\' {
					i++
					if i < len(src) && src[i] == '\n' {
						line, lineStart = line+1, i+1
					}
					continue
				}
				if src[i] == '\n' {
					line, lineStart = line+1, i+1
				}
				if i+2 < len(src) && src[i] == c && src[i+1] == c && src[i+2] == c {
					i += 2
					for k := 0; k < 2 && i+1 < len(src) && src[i+1] == c; k++ {
						i++
					}
					break
				}
			}
		case '[', '{':
			if depth++; depth > MaxNesting {
				return fail(i, fmt.Sprintf("arrays and tables nest deeper than %d levels", MaxNesting))
			}
			parts = 1
		case ']', '}':
			depth = max(depth-1, 0)
			parts = 1
		case '=', ',':
			parts = 1
		case '.':
			if parts++; parts > MaxKeyParts {
				return fail(i, fmt.Sprintf("a key has more than %d dotted parts", MaxKeyParts))
			}
		}
	}
	return nil
}
