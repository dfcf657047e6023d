package patch

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// flipList is the decoded "flips" array.
type flipList struct {
	flips    []Flip
	firstCol int // index of the first flip with a "col" key (only v2 allows it), or -1
}

// parseFlips decodes the "flips" array one token at a time, so memory stays proportional to
// the number of flips rather than to a decoded tree of the file. Every flip must be an object
// whose keys are among layer, proj, row, group (null = row flip, as upstream) and col; whether
// "col" is allowed depends on the format, which may come later in the file.
func parseFlips(dec *json.Decoder) (*flipList, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(`"flips"`, dec, err)
	}
	if tok != json.Delim('[') {
		return nil, fmt.Errorf(`"flips": got %s, want an array`, tokenType(tok))
	}
	l := &flipList{firstCol: -1}
	for i := 0; dec.More(); i++ {
		if i >= MaxFlips {
			return nil, fmt.Errorf(`"flips": more than %d flips`, MaxFlips)
		}
		f, err := parseFlip(dec)
		if err != nil {
			return nil, fmt.Errorf("flip %d: %w", i, err)
		}
		if f.Col >= 0 && l.firstCol < 0 {
			l.firstCol = i
		}
		l.flips = append(l.flips, f)
	}
	if _, err := dec.Token(); err != nil {
		return nil, syntaxError(`"flips"`, dec, err)
	}
	l.flips = slices.Clip(l.flips)
	return l, nil
}

func parseFlip(dec *json.Decoder) (Flip, error) {
	tok, err := dec.Token()
	if err != nil {
		return Flip{}, syntaxError("flip", dec, err)
	}
	if tok != json.Delim('{') {
		return Flip{}, fmt.Errorf("got %s, want an object", tokenType(tok))
	}
	f := Flip{Group: -1, Col: -1}
	var seen [5]bool // layer proj row group col
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Flip{}, syntaxError("flip", dec, err)
		}
		key, _ := tok.(string)
		k := slices.Index(flipKeys[:], key)
		if k < 0 {
			return Flip{}, fmt.Errorf("unknown key %q (upstream's loader passes flip keys as arguments and would fail)", key)
		}
		if seen[k] {
			return Flip{}, fmt.Errorf("key %q repeated", key)
		}
		seen[k] = true
		val, err := dec.Token()
		if err != nil {
			return Flip{}, syntaxError(fmt.Sprintf("field %q", key), dec, err)
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
		}
	}
	if _, err := dec.Token(); err != nil {
		return Flip{}, syntaxError("flip", dec, err)
	}
	for k, key := range flipKeys[:3] {
		if !seen[k] {
			return Flip{}, fmt.Errorf("missing %q", key)
		}
	}
	if f.Group >= 0 && f.Col >= 0 {
		return Flip{}, errors.New(`both "group" and "col": a flip is a row, a group or one bit`)
	}
	return f, nil
}

// flipKeys are the keys a flip may have; the first three are required.
var flipKeys = [5]string{"layer", "proj", "row", "group", "col"}

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
	return "an unexpected value"
}
