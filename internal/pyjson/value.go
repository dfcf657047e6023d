// Package pyjson reads JSON keeping object key order and number spelling, and writes JSON
// byte for byte as Python's json.dumps does.
package pyjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Member is one key of an ordered JSON object.
type Member struct {
	Key   string
	Value any
}

// Object is a JSON object whose keys are written in slice order.
type Object []Member

// MaxDepth bounds the nesting Decode accepts, so hostile input cannot recurse without limit.
const MaxDepth = 256

// Decode reads exactly one JSON value as Python's json.loads would, keeping what json.dumps
// needs to write it back: the result is nil, bool, string, json.Number (the literal as
// written), []any or Object. A repeated object key keeps its first position and its last
// value, like a Python dict.
func Decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("pyjson: invalid JSON: data after the value")
	}
	return v, nil
}

// decodeValue reads the next value from dec at nesting depth depth.
func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("pyjson: JSON nested deeper than %d", MaxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("pyjson: invalid JSON: %w", err)
	}
	switch tok {
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, fmt.Errorf("pyjson: invalid JSON: %w", err)
		}
		return arr, nil
	case json.Delim('{'):
		obj := Object{}
		index := map[string]int{} // key -> position in obj
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("pyjson: invalid JSON: %w", err)
			}
			key, _ := k.(string) // the decoder only yields strings in key position
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			if i, dup := index[key]; dup {
				obj[i].Value = v
				continue
			}
			index[key] = len(obj)
			obj = append(obj, Member{Key: key, Value: v})
		}
		if _, err := dec.Token(); err != nil { // '}'
			return nil, fmt.Errorf("pyjson: invalid JSON: %w", err)
		}
		return obj, nil
	}
	return tok, nil
}

// FromMap lists the keys of m in the given order (keys not in m are skipped, repeats ignored),
// then the remaining keys sorted.
func FromMap(m map[string]any, order []string) Object {
	o := make(Object, 0, len(m))
	done := make(map[string]bool, len(m))
	for _, k := range order {
		if v, ok := m[k]; ok && !done[k] {
			o = append(o, Member{Key: k, Value: v})
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
		o = append(o, Member{Key: k, Value: m[k]})
	}
	return o
}
