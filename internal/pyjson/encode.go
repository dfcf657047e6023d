package pyjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Options selects the json.dumps arguments to mimic.
type Options struct {
	// Indent is json.dumps' indent: 0 writes one line with ", " and ": " separators (indent=None);
	// N > 0 starts every item on a new line indented N spaces per level, with "," and ": ".
	Indent int
	// EnsureASCII escapes every non-ASCII character and DEL as \uXXXX (UTF-16 surrogate pairs
	// above U+FFFF), as ensure_ascii=True does; otherwise only '"', '\\' and control characters
	// are escaped.
	EnsureASCII bool
	// PythonNumbers writes a json.Number as Python prints the value json.loads makes of it:
	// integers as written (-0 becomes 0), other numbers in float repr (1e2 -> 100.0). Otherwise
	// a json.Number is written exactly as spelled.
	PythonNumbers bool
	// AllowNaN writes infinite and NaN floats as Infinity, -Infinity and NaN (allow_nan=True,
	// not valid JSON); otherwise they are an error.
	AllowNaN bool
}

// Marshal encodes v as json.dumps(v, ...) does with the given options, without a trailing
// newline. v is built from nil, bool, string, json.Number, int, int64, float64 (written in
// Python's repr), []any, Object and map[string]any (keys sorted); any other value is first
// turned into those by encoding/json.
func Marshal(v any, opt Options) ([]byte, error) {
	e := encoder{opt: opt}
	if err := e.value(v, 0); err != nil {
		return nil, fmt.Errorf("pyjson: %w", err)
	}
	return e.buf.Bytes(), nil
}

type encoder struct {
	buf bytes.Buffer
	opt Options
}

// value writes v at nesting depth depth.
func (e *encoder) value(v any, depth int) error {
	switch x := v.(type) {
	case nil:
		e.buf.WriteString("null")
	case bool:
		e.buf.WriteString(strconv.FormatBool(x))
	case string:
		e.str(x)
	case json.Number:
		return e.number(string(x))
	case int:
		e.buf.WriteString(strconv.Itoa(x))
	case int64:
		e.buf.WriteString(strconv.FormatInt(x, 10))
	case float64:
		return e.float(x)
	case Object:
		return e.container('{', '}', len(x), depth, func(i int) error {
			e.str(x[i].Key)
			e.buf.WriteString(": ")
			if err := e.value(x[i].Value, depth+1); err != nil {
				return fmt.Errorf("%q: %w", x[i].Key, err)
			}
			return nil
		})
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return e.value(FromMap(x, keys), depth)
	case []any:
		return e.container('[', ']', len(x), depth, func(i int) error { return e.value(x[i], depth+1) })
	default:
		// Any other Go value: let encoding/json describe it, then write that description.
		data, err := json.Marshal(x)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var generic any
		if err := dec.Decode(&generic); err != nil {
			return err
		}
		return e.value(generic, depth)
	}
	return nil
}

// container writes n items between open and close, each written by item, laid out as
// json.dumps lays out a list or dict at nesting depth depth.
func (e *encoder) container(open, close byte, n, depth int, item func(i int) error) error {
	e.buf.WriteByte(open)
	if n == 0 {
		e.buf.WriteByte(close)
		return nil
	}
	for i := range n {
		if i > 0 {
			e.buf.WriteByte(',')
			if e.opt.Indent == 0 {
				e.buf.WriteByte(' ')
			}
		}
		e.newline(depth + 1)
		if err := item(i); err != nil {
			return err
		}
	}
	e.newline(depth)
	e.buf.WriteByte(close)
	return nil
}

// newline starts a line indented for depth (nothing without indentation).
func (e *encoder) newline(depth int) {
	if e.opt.Indent <= 0 {
		return
	}
	e.buf.WriteByte('\n')
	for range depth * e.opt.Indent {
		e.buf.WriteByte(' ')
	}
}

// str writes s as a JSON string literal; invalid UTF-8 is written as U+FFFD.
func (e *encoder) str(s string) {
	e.buf.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			e.buf.WriteString(`\"`)
		case r == '\\':
			e.buf.WriteString(`\\`)
		case r == '\n':
			e.buf.WriteString(`\n`)
		case r == '\r':
			e.buf.WriteString(`\r`)
		case r == '\t':
			e.buf.WriteString(`\t`)
		case r == '\b':
			e.buf.WriteString(`\b`)
		case r == '\f':
			e.buf.WriteString(`\f`)
		case r < 0x20:
			fmt.Fprintf(&e.buf, `\u%04x`, r)
		case r < 0x7f || !e.opt.EnsureASCII:
			e.buf.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&e.buf, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(&e.buf, `\u%04x`, r)
		}
	}
	e.buf.WriteByte('"')
}

// number writes a JSON number literal, as spelled or as Python prints it.
func (e *encoder) number(lit string) error {
	if !isNumber(lit) {
		return fmt.Errorf("invalid number %q", lit)
	}
	if !e.opt.PythonNumbers {
		e.buf.WriteString(lit)
		return nil
	}
	if isInteger(lit) {
		e.buf.WriteString(pyInt(lit))
		return nil
	}
	f, _ := strconv.ParseFloat(lit, 64) // a valid literal only fails by overflowing to ±Inf
	return e.float(f)
}

// float writes f in Python's float repr.
func (e *encoder) float(f float64) error {
	if !e.opt.AllowNaN && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return fmt.Errorf("%v is not representable in JSON", f)
	}
	e.buf.WriteString(pyFloat(f))
	return nil
}
