package bfs

import (
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// A checkpoint is decoded field by field from a stream, never as one value: every error names
// the field it is in (and the list index), big lists are read element by element with a
// length cap, and no Go type name reaches the user.

// fieldDecoder decodes one field's value from dec; path names the field in errors.
type fieldDecoder func(dec *json.Decoder, path string) error

// into decodes a value into v (a pointer).
func into(v any) fieldDecoder {
	return func(dec *json.Decoder, path string) error {
		if err := dec.Decode(v); err != nil {
			return jsonError(path, err)
		}
		return nil
	}
}

// listInto decodes a JSON array (or null, as empty) into *out, element by element, refusing
// more than max elements.
func listInto[T any](out *[]T, max int) fieldDecoder {
	return func(dec *json.Decoder, path string) error {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(path, err)
		}
		if tok == nil {
			*out = nil
			return nil
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return fmt.Errorf("field %q: want an array, got %s", path, tokenKind(tok))
		}
		var list []T
		for i := 0; dec.More(); i++ {
			if i >= max {
				return fmt.Errorf("field %q: more than %d entries", path, max)
			}
			var v T
			if err := dec.Decode(&v); err != nil {
				return jsonError(fmt.Sprintf("%s[%d]", path, i), err)
			}
			list = append(list, v)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return jsonError(path, err)
		}
		*out = list
		return nil
	}
}

// objectInto decodes a JSON object whose keys are those of fields; keys in required must be
// present, any other key is an error, and so is a key given twice.
func objectInto(fields map[string]fieldDecoder, required ...string) fieldDecoder {
	return func(dec *json.Decoder, path string) error {
		name := func(key string) string {
			if path == "" {
				return key
			}
			return path + "." + key
		}
		tok, err := dec.Token()
		if err != nil {
			return jsonError(path, err)
		}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			if path == "" {
				return fmt.Errorf("want a JSON object, got %s", tokenKind(tok))
			}
			return fmt.Errorf("field %q: want an object, got %s", path, tokenKind(tok))
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return jsonError(path, err)
			}
			key, _ := tok.(string) // object keys are always strings
			f, ok := fields[key]
			switch {
			case !ok:
				return fmt.Errorf("unknown field %q", name(key))
			case seen[key]:
				return fmt.Errorf("field %q given twice", name(key))
			}
			seen[key] = true
			if err := f(dec, name(key)); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // '}'
			return jsonError(path, err)
		}
		for _, key := range required {
			if !seen[key] {
				return fmt.Errorf("field %q missing", name(key))
			}
		}
		return nil
	}
}

// tokenKind names a JSON token for errors.
func tokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "true or false"
	}
	return "null"
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// jsonKind says in JSON words what a Go type wants.
func jsonKind(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "an array"
	case reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another value"
}

// jsonError rewrites an encoding/json error for the user: the field path, what was expected
// and what was found, without Go type names.
func jsonError(path string, err error) error {
	field := func(sub string) string {
		switch {
		case sub == "":
			return path
		case path == "":
			return sub
		}
		return path + "." + sub
	}
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var be base64.CorruptInputError
	switch {
	case errors.As(err, &te):
		// Field is the path inside the value decoded, e.g. "layer" for a list element.
		return fmt.Errorf("field %q: want %s, got %s", field(te.Field), jsonKind(te.Type), jsonValue(te.Value))
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d (in field %q): %s", se.Offset, path, se.Error())
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("the file ends inside field %q (truncated?)", path)
	case errors.As(err, &be):
		return fmt.Errorf("field %q: invalid base64 at byte %d", path, int64(be))
	}
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "json: "), "bfs: ")
	return fmt.Errorf("field %q: %s", path, msg)
}

// jsonValue turns UnmarshalTypeError's Value ("string", "number -1") into words.
func jsonValue(v string) string {
	switch {
	case v == "string":
		return "a string"
	case v == "object":
		return "an object"
	case v == "array":
		return "an array"
	case v == "bool":
		return "true or false"
	case strings.HasPrefix(v, "number"):
		if n := strings.TrimSpace(strings.TrimPrefix(v, "number")); n != "" {
			return n
		}
		return "a number"
	}
	return v
}

// Limits on what a checkpoint can hold; each list is refused past its cap while it is read.
const (
	// MaxSearchIters bounds SearchOptions.Iters, and so the tried and accepted lists.
	MaxSearchIters = 1 << 22
	// MaxSearchBatch bounds SearchOptions.Batch, and so the pending list.
	MaxSearchBatch = 1024
	// maxCheckpointSets bounds the probe sets of each role in a checkpoint.
	maxCheckpointSets = 256
	// maxCheckpointProbes bounds the baseline score lists (one score per probe).
	maxCheckpointProbes = 1 << 20
)

// rawProbeSet is a probe set as read from a checkpoint; its probes go through ParseProbes.
type rawProbeSet struct {
	Name   string          `json:"name"`
	Probes json.RawMessage `json:"probes"`
}

// probeSetsInto decodes a list of probe sets, each checked like a probe file.
func probeSetsInto(out *[]*ProbeSet, source string) fieldDecoder {
	return func(dec *json.Decoder, path string) error {
		var raw []rawProbeSet
		if err := listInto(&raw, maxCheckpointSets)(dec, path); err != nil {
			return err
		}
		*out = nil
		for i, r := range raw {
			if len(r.Probes) == 0 {
				return fmt.Errorf("field \"%s[%d].probes\" missing", path, i)
			}
			set, err := parseProbes(r.Probes, fmt.Sprintf("%s %s[%d]", source, path, i))
			if err != nil {
				return errors.New(strings.TrimPrefix(err.Error(), "bfs: "))
			}
			set.Name = r.Name
			*out = append(*out, set)
		}
		return nil
	}
}

// decodeCheckpoint reads a checkpoint from r, naming source in probe errors.
func decodeCheckpoint(r io.Reader, source string) (*Checkpoint, error) {
	ck := &Checkpoint{}
	o := &ck.Options
	options := objectInto(map[string]fieldDecoder{
		"mode":           into(&o.Mode),
		"metric":         into(&o.Metric),
		"target":         probeSetsInto(&o.Target, source),
		"control":        probeSetsInto(&o.Control, source),
		"held_out":       probeSetsInto(&o.HeldOut, source),
		"layers":         listInto(&o.Layers, 1<<12),
		"projs":          listInto(&o.Projs, 64),
		"granularity":    into(&o.Granularity),
		"iters":          into(&o.Iters),
		"seed":           into(&o.Seed),
		"lambda":         into(&o.Lambda),
		"fitness_mode":   into(&o.FitnessMode),
		"screen_probes":  into(&o.ScreenProbes),
		"scan_sample":    into(&o.ScanSample),
		"batch":          into(&o.Batch),
		"max_batch_rows": into(&o.MaxBatchRows),
		"delta":          into(&o.Delta),
		"patch_name":     into(&o.PatchName),
		"description":    into(&o.Description),
		"base_model":     into(&o.BaseModel),
	}, "mode", "metric", "target", "layers", "projs", "granularity", "iters", "seed", "lambda")
	top := objectInto(map[string]fieldDecoder{
		"version":       into(&ck.Version),
		"options":       options,
		"fingerprint":   into(&ck.Fingerprint),
		"iteration":     into(&ck.Iteration),
		"draws":         into(&ck.Draws),
		"rng":           into(&ck.RNG),
		"tried":         listInto(&ck.Tried, MaxSearchIters+MaxSearchBatch),
		"pending":       listInto(&ck.Pending, MaxSearchBatch),
		"order":         listInto(&ck.Order, MaxScanCandidates),
		"order_pos":     into(&ck.OrderPos),
		"rounds":        into(&ck.Rounds),
		"scan_accepted": into(&ck.ScanAccepted),
		"scan_pos":      into(&ck.ScanPos),
		"scan_scores":   listInto(&ck.ScanScores, MaxScanCandidates),
		"accepted":      listInto(&ck.Accepted, MaxSearchIters),
		"best":          into(&ck.Best),
		"base":          listInto(&ck.Base, maxCheckpointProbes),
		"held_out_base": listInto(&ck.HeldOutBase, maxCheckpointProbes),
		"screened_out":  into(&ck.ScreenedOut),
		"evaluated":     into(&ck.Evaluated),
		"evaluations":   into(&ck.Evaluations),
		"exhausted":     into(&ck.Exhausted),
		"timings":       into(&ck.Timings),
		"output":        into(&ck.Output),
		"report":        into(&ck.Report),
		"partial_files": listInto(&ck.PartialFiles, 8),
	}, "version", "options", "fingerprint", "iteration", "rng", "best", "base")

	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	// The version is checked first so that another version's layout is reported as such.
	if err := top(dec, ""); err != nil {
		if ck.Version != 0 && ck.Version != CheckpointVersion {
			return nil, fmt.Errorf("version %d, want %d", ck.Version, CheckpointVersion)
		}
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after the checkpoint object")
	}
	return ck, nil
}
