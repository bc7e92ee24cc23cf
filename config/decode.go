package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// decoder collects every problem found while converting the decoded TOML
// into the model, each placed by the position index.
type decoder struct {
	file string
	src  []byte
	// pos is built on the first error: scanning a large valid file for
	// positions nobody reads cost a fifth of a 5,000-service start.
	pos  *posNode
	errs Errors
	// more counts the errors past maxKept, only counted.
	more int
	// skipped is set when a [[service]] element was not a table, so
	// Services no longer lines up with the file's elements.
	skipped bool
}

// add reports a problem at path. String arguments are values from the
// file (or keys): they are quoted clipped, so a 10 MB value makes a short
// line.
func (d *decoder) add(path []string, ctx, format string, args ...any) {
	if len(d.errs) >= maxKept {
		d.more++
		return
	}
	msg := fmt.Sprintf(format, clipArgs(args)...)
	if ctx != "" {
		msg = ctx + ": " + msg
	}
	if d.pos == nil {
		d.pos = indexPositions(d.src)
	}
	p := d.pos.at(path)
	d.errs = append(d.errs, Error{File: d.file, Line: p.line, Col: p.col, Msg: msg})
}

// result is the errors found, sorted and capped (nil for none).
func (d *decoder) result() error {
	if len(d.errs) == 0 {
		return nil
	}
	return d.errs.capped(d.more)
}

// table is one decoded TOML table being converted. Every accessor marks
// its key as known; finish reports the rest as unknown keys. Matching is
// exact, so "Weight" is as unknown as "wieght".
type table struct {
	d    *decoder
	m    map[string]any
	path []string
	ctx  string // message prefix, e.g. `service "web": backend 2`
	seen map[string]bool
}

func (d *decoder) table(m map[string]any, path []string, ctx string) *table {
	return &table{d: d, m: m, path: path, ctx: ctx, seen: map[string]bool{}}
}

func (t *table) keyPath(key string) []string {
	return append(append([]string(nil), t.path...), key)
}

// errorf reports a problem at key (or at the table when key is "").
func (t *table) errorf(key, format string, args ...any) {
	p := t.path
	if key != "" {
		p = t.keyPath(key)
	}
	t.d.add(p, t.ctx, format, args...)
}

func (t *table) has(key string) bool {
	_, ok := t.m[key]
	return ok
}

// get returns a key's raw value and marks the key known.
func (t *table) get(key string) (any, bool) {
	t.seen[key] = true
	v, ok := t.m[key]
	return v, ok
}

func (t *table) wrongType(key, want string, v any) {
	t.errorf(key, "%s must be %s, not %s", key, want, typeName(v))
}

func (t *table) str(key string) (string, bool) {
	v, ok := t.get(key)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		t.wrongType(key, "a string", v)
	}
	return s, ok
}

func (t *table) integer(key string) (int64, bool) {
	v, ok := t.get(key)
	if !ok {
		return 0, false
	}
	n, ok := v.(int64)
	if !ok {
		t.wrongType(key, "an integer", v)
	}
	return n, ok
}

// intRange reads an integer key that must lie in lo..hi.
func (t *table) intRange(key string, lo, hi int64) (int64, bool) {
	n, ok := t.integer(key)
	if !ok {
		return 0, false
	}
	if n < lo || n > hi {
		t.errorf(key, "%s %d is out of range %d..%d", key, n, lo, hi)
		return 0, false
	}
	return n, true
}

func (t *table) boolean(key string) (bool, bool) {
	v, ok := t.get(key)
	if !ok {
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		t.wrongType(key, "a boolean", v)
	}
	return b, ok
}

// duration reads a Go duration string.
func (t *table) duration(key string) (time.Duration, bool) {
	s, ok := t.str(key)
	if !ok {
		return 0, false
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		t.errorf(key, "%s %q is not a duration such as \"2s\" or \"250ms\"", key, s)
		return 0, false
	}
	return dur, true
}

// durationMin reads a duration that must be at least lo.
func (t *table) durationMin(key string, lo time.Duration) (time.Duration, bool) {
	dur, ok := t.duration(key)
	if !ok {
		return 0, false
	}
	if dur < lo {
		if lo == 0 {
			t.errorf(key, "%s %s must not be negative", key, dur)
		} else if lo == time.Nanosecond {
			t.errorf(key, "%s %s must be positive", key, dur)
		} else {
			t.errorf(key, "%s %s must be at least %s", key, dur, lo)
		}
		return 0, false
	}
	return dur, true
}

func (t *table) array(key string) ([]any, bool) {
	v, ok := t.get(key)
	if !ok {
		return nil, false
	}
	a, ok := v.([]any)
	if !ok {
		t.wrongType(key, "an array", v)
	}
	return a, ok
}

func (t *table) strings(key string) ([]string, bool) {
	a, ok := t.array(key)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(a))
	for i, v := range a {
		s, ok := v.(string)
		if !ok {
			t.errorf(key, "%s[%d] must be a string, not %s", key, i, typeName(v))
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func (t *table) integers(key string) ([]int64, bool) {
	a, ok := t.array(key)
	if !ok {
		return nil, false
	}
	out := make([]int64, 0, len(a))
	for i, v := range a {
		n, ok := v.(int64)
		if !ok {
			t.errorf(key, "%s[%d] must be an integer, not %s", key, i, typeName(v))
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

// sub returns the table under key, or nil when it is absent or not a table.
func (t *table) sub(key, ctx string) *table {
	v, ok := t.get(key)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.wrongType(key, "a table", v)
		return nil
	}
	return t.d.table(m, t.keyPath(key), ctx)
}

// tables returns the raw elements of an array of tables under key, which
// may be written as [[key]] or as an inline array of inline tables. A nil
// element stands for one that is not a table (already reported).
func (t *table) tables(key string) []map[string]any {
	v, ok := t.get(key)
	if !ok {
		return nil
	}
	switch a := v.(type) {
	case []map[string]any:
		return a
	case []any:
		out := make([]map[string]any, len(a))
		for i, e := range a {
			m, ok := e.(map[string]any)
			if !ok {
				t.d.add(append(t.keyPath(key), strconv.Itoa(i)), t.ctx,
					"%s %d must be a table, not %s", key, i+1, typeName(e))
				continue
			}
			out[i] = m
		}
		return out
	}
	t.wrongType(key, "an array of tables", v)
	return nil
}

// oneOf reads a string key whose value must be one of allowed.
func (t *table) oneOf(key string, allowed ...string) (string, bool) {
	s, ok := t.str(key)
	if !ok {
		return "", false
	}
	if !slices.Contains(allowed, s) {
		t.errorf(key, "%s %q is not one of %s", key, s, list(allowed))
		return "", false
	}
	return s, true
}

// finish reports every key no accessor asked for.
func (t *table) finish() {
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		if !t.seen[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.errorf(k, "unknown key %q", k)
	}
}

func list(s []string) string {
	out := ""
	for i, v := range s {
		switch {
		case i == 0:
		case i == len(s)-1:
			out += " or "
		default:
			out += ", "
		}
		out += v
	}
	return out
}

// desc is a message fragment of ours (already clipped), which add must not
// clip again.
type desc string

func typeName(v any) desc {
	return desc(typeText(v))
}

func typeText(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", clip(v))
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "float"
		}
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case []any:
		return "array"
	case map[string]any:
		return "table"
	case []map[string]any:
		return "array of tables"
	case nil:
		return "nothing"
	}
	return "datetime"
}
