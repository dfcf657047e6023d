package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// parseFlips streams the "flips" array one token at a time, so memory stays proportional to the
// number of flips rather than to a decoded tree of the file. Every flip must be an object whose
// keys are among layer, proj, row, group (null = row flip, as upstream) and, in v2 only, col.
func parseFlips(raw json.RawMessage, v2 bool) ([]Flip, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, fmt.Errorf(`"flips": got %s, want an array`, jsonType(raw))
	}
	// (n_flips) bounded by the input: every flip needs at least ~30 bytes of JSON.
	flips := make([]Flip, 0, min(len(raw)/30+1, MaxFlips))
	for i := 0; dec.More(); i++ {
		if i >= MaxFlips {
			return nil, fmt.Errorf("more than %d flips", MaxFlips)
		}
		f, err := parseFlip(dec, v2)
		if err != nil {
			return nil, fmt.Errorf("flip %d: %w", i, err)
		}
		flips = append(flips, f)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf(`"flips": %w`, err)
	}
	return flips, nil
}

func parseFlip(dec *json.Decoder, v2 bool) (Flip, error) {
	tok, err := dec.Token()
	if err != nil {
		return Flip{}, err
	}
	if tok != json.Delim('{') {
		return Flip{}, fmt.Errorf("got %s, want an object", tokenType(tok))
	}
	f := Flip{Group: -1, Col: -1}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Flip{}, err
		}
		key, _ := tok.(string)
		if seen[key] {
			return Flip{}, fmt.Errorf("key %q repeated", key)
		}
		seen[key] = true
		val, err := dec.Token()
		if err != nil {
			return Flip{}, err
		}
		switch key {
		case "proj":
			s, ok := val.(string)
			if !ok {
				return Flip{}, fmt.Errorf(`field "proj": got %s, want a string`, tokenType(val))
			}
			if f.Proj, err = CanonicalProj(s); err != nil {
				return Flip{}, fmt.Errorf(`field "proj": %w`, err)
			}
		case "layer", "row", "group", "col":
			if key == "col" && !v2 {
				return Flip{}, fmt.Errorf(`key "col" (a single-bit flip) needs format %q`, FormatV2)
			}
			if val == nil && (key == "group" || key == "col") {
				continue // null means absent, as in upstream's PatchFlip(group=None)
			}
			n, err := flipIndex(key, val)
			if err != nil {
				return Flip{}, err
			}
			switch key {
			case "layer":
				f.Layer = n
			case "row":
				f.Row = n
			case "group":
				f.Group = n
			case "col":
				f.Col = n
			}
		default:
			return Flip{}, fmt.Errorf("unknown key %q (upstream's loader passes flip keys as arguments and would fail)", key)
		}
	}
	if _, err := dec.Token(); err != nil {
		return Flip{}, err
	}
	for _, k := range []string{"layer", "proj", "row"} {
		if !seen[k] {
			return Flip{}, fmt.Errorf("missing %q", k)
		}
	}
	if f.Group >= 0 && f.Col >= 0 {
		return Flip{}, errors.New(`both "group" and "col": a flip is a row, a group or one bit`)
	}
	return f, nil
}

// flipIndex converts a JSON number token to a non-negative index below maxIndex.
func flipIndex(key string, val json.Token) (int, error) {
	num, ok := val.(json.Number)
	if !ok {
		return 0, fmt.Errorf("field %q: got %s, want an integer", key, tokenType(val))
	}
	n, err := strconv.ParseInt(num.String(), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("field %q: %s is not an integer", key, num)
	}
	if n < 0 {
		return 0, fmt.Errorf("field %q: negative value %d", key, n)
	}
	if n > maxIndex {
		return 0, fmt.Errorf("field %q: value %d too large (max %d)", key, n, maxIndex)
	}
	return int(n), nil
}

// tokenType names the JSON type of a decoder token.
func tokenType(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return "object"
		}
		return "array"
	case string:
		return "string"
	case json.Number, float64:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}
