package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// pyJSON re-serialises a JSON value the way the chat template's tojson filter does, i.e. Python's
// json.dumps(value, ensure_ascii=False) of the value json.loads made of it: separators ", " and
// ": ", object keys in input order (a repeated key keeps its first position and its last
// value), non-ASCII characters unescaped, integers as written (-0 becomes 0), other numbers in
// Python's float repr (1e2 -> 100.0, 1e16 -> 1e+16; overflow -> Infinity).
func pyJSON(raw []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := readValue(dec, 0)
	if err != nil {
		return "", err
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("invalid JSON: data after the value")
	}
	var sb strings.Builder
	writePy(&sb, v)
	return sb.String(), nil
}

// member is one key/value of an object, in input order.
type member struct {
	key string
	val any
}

// maxJSONDepth bounds recursion on hostile input.
const maxJSONDepth = 256

// readValue reads one JSON value: nil, bool, string, json.Number, []any or []member.
func readValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch tok {
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			v, err := readValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token() // ']'
		return arr, err
	case json.Delim('{'):
		obj := []member{}
		index := map[string]int{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("invalid JSON: %w", err)
			}
			key, _ := k.(string)
			v, err := readValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			if i, dup := index[key]; dup {
				obj[i].val = v
				continue
			}
			index[key] = len(obj)
			obj = append(obj, member{key, v})
		}
		_, err := dec.Token() // '}'
		return obj, err
	}
	return tok, nil
}

// writePy writes v as Python's json.dumps(ensure_ascii=False) would.
func writePy(sb *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		sb.WriteString("null")
	case bool:
		sb.WriteString(strconv.FormatBool(v))
	case string:
		writePyString(sb, v)
	case json.Number:
		sb.WriteString(pyNumber(string(v)))
	case []any:
		sb.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				sb.WriteString(", ")
			}
			writePy(sb, x)
		}
		sb.WriteByte(']')
	case []member:
		sb.WriteByte('{')
		for i, m := range v {
			if i > 0 {
				sb.WriteString(", ")
			}
			writePyString(sb, m.key)
			sb.WriteString(": ")
			writePy(sb, m.val)
		}
		sb.WriteByte('}')
	}
}

// writePyString writes a JSON string literal escaping only '"', '\\' and control characters.
func writePyString(sb *strings.Builder, s string) {
	sb.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			sb.WriteString(`\"`)
		case '\\':
			sb.WriteString(`\\`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		case '\b':
			sb.WriteString(`\b`)
		case '\f':
			sb.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(sb, `\u%04x`, r)
			} else {
				sb.WriteRune(r)
			}
		}
	}
	sb.WriteByte('"')
}

// pyNumber formats a JSON number literal as Python prints the int or float it parses to.
func pyNumber(lit string) string {
	if !strings.ContainsAny(lit, ".eE") {
		if strings.TrimLeft(lit, "-0") == "" {
			return "0"
		}
		return lit
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !math.IsInf(f, 0) {
		return lit
	}
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}
