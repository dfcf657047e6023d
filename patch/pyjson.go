package patch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// This file writes JSON the way Python's json.dumps(obj, indent=2) does (upstream's writer):
// two-space indentation, ", " never used (items end with ","), ": " after keys, non-ASCII and
// DEL escaped as lowercase \uXXXX, floats in Python repr form, no trailing newline. With it an
// upstream canonical file survives Parse and Marshal byte for byte.

// member is one key of an ordered JSON object.
type member struct {
	key string
	val any
}

// object is a JSON object whose keys are written in slice order.
type object []member

type pyWriter struct {
	buf bytes.Buffer
}

func (w *pyWriter) newline(depth int) {
	w.buf.WriteByte('\n')
	for range depth {
		w.buf.WriteString("  ")
	}
}

// value writes v at nesting depth depth.
func (w *pyWriter) value(v any, depth int) error {
	switch x := v.(type) {
	case nil:
		w.buf.WriteString("null")
	case bool:
		w.buf.WriteString(strconv.FormatBool(x))
	case string:
		w.str(x)
	case json.Number:
		if !isJSONNumber(string(x)) {
			return fmt.Errorf("invalid number %q", string(x))
		}
		w.buf.WriteString(string(x))
	case int:
		w.buf.WriteString(strconv.Itoa(x))
	case int64:
		w.buf.WriteString(strconv.FormatInt(x, 10))
	case float64:
		s, err := pyFloat(x)
		if err != nil {
			return err
		}
		w.buf.WriteString(s)
	case object:
		return w.object(x, depth)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return w.object(orderedObject(x, keys), depth)
	case []any:
		if len(x) == 0 {
			w.buf.WriteString("[]")
			return nil
		}
		w.buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				w.buf.WriteByte(',')
			}
			w.newline(depth + 1)
			if err := w.value(e, depth+1); err != nil {
				return err
			}
		}
		w.newline(depth)
		w.buf.WriteByte(']')
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
		return w.value(generic, depth)
	}
	return nil
}

func (w *pyWriter) object(o object, depth int) error {
	if len(o) == 0 {
		w.buf.WriteString("{}")
		return nil
	}
	w.buf.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		w.newline(depth + 1)
		w.str(m.key)
		w.buf.WriteString(": ")
		if err := w.value(m.val, depth+1); err != nil {
			return fmt.Errorf("%q: %w", m.key, err)
		}
	}
	w.newline(depth)
	w.buf.WriteByte('}')
	return nil
}

// orderedObject lists the keys of m in the given order, then any others sorted.
func orderedObject(m map[string]any, order []string) object {
	o := make(object, 0, len(m))
	done := make(map[string]bool, len(m))
	for _, k := range order {
		if v, ok := m[k]; ok && !done[k] {
			o = append(o, member{k, v})
			done[k] = true
		}
	}
	var rest []string
	for k := range m {
		if !done[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		o = append(o, member{k, m[k]})
	}
	return o
}

// str writes s as a JSON string with Python's ensure_ascii escaping.
func (w *pyWriter) str(s string) {
	w.buf.WriteByte('"')
	for _, r := range s { // invalid UTF-8 decodes as U+FFFD
		switch {
		case r == '"':
			w.buf.WriteString(`\"`)
		case r == '\\':
			w.buf.WriteString(`\\`)
		case r == '\n':
			w.buf.WriteString(`\n`)
		case r == '\r':
			w.buf.WriteString(`\r`)
		case r == '\t':
			w.buf.WriteString(`\t`)
		case r == '\b':
			w.buf.WriteString(`\b`)
		case r == '\f':
			w.buf.WriteString(`\f`)
		case r >= 0x20 && r < 0x7f:
			w.buf.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&w.buf, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(&w.buf, `\u%04x`, r)
		}
	}
	w.buf.WriteByte('"')
}

// pyFloat formats f like Python's repr: shortest round-trip digits, fixed notation for decimal
// exponents in [-4, 16) with a ".0" on integral values, otherwise d.ddde+XX.
func pyFloat(f float64) (string, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", fmt.Errorf("%v is not representable in JSON", f)
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e, nil
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s, nil
}

// isJSONNumber reports whether s matches the JSON number grammar -?int(.frac)?([eE][+-]?exp)?.
func isJSONNumber(s string) bool {
	digits := func(i int) int {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		return j
	}
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digits(i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(s)
}
