package patch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Limits on what Parse and Load accept.
const (
	// MaxFileSize is the largest patch file accepted (64 MiB).
	MaxFileSize = 64 << 20
	// MaxFlips is the largest number of flips in one patch (also the limit for Diff).
	MaxFlips = 1 << 20
	// maxIndex bounds layer, row, group and col values (no real model comes close).
	maxIndex = math.MaxInt32
)

// Format strings written in the "format" key.
const (
	FormatV1 = "bankai_row_xor_v1" // upstream canonical; row and group flips only
	FormatV2 = "bankai_xor_v2"     // ours; adds single-bit flips and exact statistics
)

// extKey is the top-level object holding our additions to a v1 file. Upstream's loader reads
// only name, description, base_model, flips and metadata, so it ignores this key.
const extKey = "bankai_metal"

// Variant names the on-disk shape a patch was read from.
type Variant int

const (
	// VariantCanonical is upstream's bankai_row_xor_v1 shape (also what Marshal writes when the
	// patch has no bit flips, and the zero value for patches built in memory).
	VariantCanonical Variant = iota
	// VariantLegacyExp3 is upstream's Experiment 3 shape: "type": "row_flip", statistics at
	// top level, no name or format.
	VariantLegacyExp3
	// VariantRunner is the shape written by upstream's Modal experiments: name, description,
	// base_model, flips and metadata only.
	VariantRunner
	// VariantV2 is our bankai_xor_v2 shape.
	VariantV2
)

// String names the variant.
func (v Variant) String() string {
	switch v {
	case VariantCanonical:
		return FormatV1
	case VariantLegacyExp3:
		return "legacy row_flip (experiment 3)"
	case VariantRunner:
		return "runner (no format key)"
	case VariantV2:
		return FormatV2
	}
	return fmt.Sprintf("Variant(%d)", int(v))
}

// Patch is a named list of sign-bit flips for one model.
type Patch struct {
	Name, Description, BaseModel string
	// Fingerprint is the Target.Fingerprint of the model the patch was made for ("" when unknown,
	// as in every upstream file).
	Fingerprint string
	// Flips in file order. They compose by XOR; no flip appears twice.
	Flips []Flip
	// Metadata is free-form. Numbers read from a file are json.Number, so they are written back
	// exactly as they were read; top-level key order is kept, nested objects are written sorted.
	Metadata map[string]any
	// Variant is the on-disk shape the patch was read from.
	Variant Variant
	// BitsFlipped is the exact number of sign bits the patch flips on the model it was made for,
	// when known (0 = unknown). Diff sets it; a caller with the model can set it from Stats.
	// Marshal records it; nothing else relies on it.
	BitsFlipped int64

	metaOrder []string // top-level metadata key order as read
}

// Load reads a patch file. The patch name defaults to the file name without its extension. The
// file is decoded as a stream, so memory stays proportional to the number of flips.
func Load(path string) (*Patch, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("patch: %s is a directory, not a patch file", path)
	} else if err == nil && st.Mode().IsRegular() && st.Size() > MaxFileSize {
		return nil, fmt.Errorf("patch: %s: file of %d bytes is larger than the limit of %d bytes", path, st.Size(), MaxFileSize)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	lr := &limitedReader{r: bufio.NewReaderSize(f, 1<<16), left: MaxFileSize}
	p, err := parse(lr, name)
	if err != nil {
		if lr.over {
			err = fmt.Errorf("file larger than the limit of %d bytes", MaxFileSize)
		}
		return nil, fmt.Errorf("patch: %s: %w", path, err)
	}
	return p, nil
}

// Parse decodes a patch in any of the upstream shapes (canonical, legacy experiment 3, runner)
// or ours (v2). name is used when the file has no "name" key. Errors name the flip index and
// field at fault.
func Parse(data []byte, name string) (*Patch, error) {
	var p *Patch
	err := fmt.Errorf("file of %d bytes is larger than the limit of %d bytes", len(data), MaxFileSize)
	if len(data) <= MaxFileSize {
		p, err = parse(bytes.NewReader(data), name)
	}
	if err != nil {
		if name == "" {
			return nil, fmt.Errorf("patch: %w", err)
		}
		return nil, fmt.Errorf("patch: %s: %w", name, err)
	}
	return p, nil
}

// limitedReader reads at most left bytes and records whether the input went on.
type limitedReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitedReader) Read(b []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
		}
		return 0, io.EOF
	}
	if int64(len(b)) > l.left {
		b = b[:l.left]
	}
	n, err := l.r.Read(b)
	l.left -= int64(n)
	return n, err
}

// parse decodes the top-level object as a stream: the small keys are kept as raw JSON, the
// flips are decoded one at a time (parseFlips) and metadata keeps its key order.
func parse(r io.Reader, name string) (*Patch, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError("not a JSON object", dec, err)
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object: the file holds %s", an(tokenType(tok)))
	}
	top := map[string]json.RawMessage{} // the small top-level values, for optString and optInt
	var flips *flipList
	var meta map[string]any
	var metaOrder []string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError("top-level object", dec, err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, fmt.Errorf("top-level key %q repeated", key)
		}
		seen[key] = true
		switch key {
		case "flips":
			if flips, err = parseFlips(dec); err != nil {
				return nil, err
			}
		case "metadata":
			if meta, metaOrder, err = parseMetadata(dec); err != nil {
				return nil, err
			}
		case "format", "type", "version", "name", "description", "base_model", "fingerprint", "stats", extKey:
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, syntaxError(fmt.Sprintf("%q", key), dec, err)
			}
			top[key] = raw
		default: // ignored, as upstream does
			if err := skipValue(dec); err != nil {
				return nil, syntaxError(fmt.Sprintf("%q", key), dec, err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, syntaxError("top-level object", dec, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON object at byte %d", dec.InputOffset())
	}
	p, err := parseHeader(top, name)
	if err != nil {
		return nil, err
	}
	p.Metadata, p.metaOrder = meta, metaOrder
	if p.Metadata == nil {
		p.Metadata = map[string]any{}
	}
	if flips == nil {
		return nil, errors.New(`missing "flips"`)
	}
	if flips.firstCol >= 0 && p.Variant != VariantV2 {
		return nil, fmt.Errorf(`flip %d: key "col" (a single-bit flip) needs format %q`, flips.firstCol, FormatV2)
	}
	if err := checkDuplicates(flips.flips); err != nil {
		return nil, err
	}
	p.Flips = flips.flips
	if err := parseExtras(p, top); err != nil {
		return nil, err
	}
	return p, nil
}

// parseHeader reads the variant, version, name, description and base model.
func parseHeader(top map[string]json.RawMessage, name string) (*Patch, error) {
	format, err := optString(top, "format")
	if err != nil {
		return nil, err
	}
	typ, err := optString(top, "type")
	if err != nil {
		return nil, err
	}
	version, hasVersion, err := optInt(top, "version")
	if err != nil {
		return nil, err
	}
	p := &Patch{Name: name, BaseModel: "unknown"}
	wantVersion := int64(1)
	switch {
	case format == FormatV2:
		p.Variant, wantVersion = VariantV2, 2
	case format == FormatV1:
		p.Variant = VariantCanonical
	case format != "":
		return nil, fmt.Errorf("unknown format %q (want %q or %q)", format, FormatV1, FormatV2)
	case typ == "row_flip":
		p.Variant = VariantLegacyExp3
	case typ != "":
		return nil, fmt.Errorf("unknown type %q (want \"row_flip\")", typ)
	default:
		p.Variant = VariantRunner
	}
	if hasVersion && version != wantVersion {
		return nil, fmt.Errorf("version %d, want %d for %s", version, wantVersion, p.Variant)
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"name", &p.Name}, {"description", &p.Description}, {"base_model", &p.BaseModel}} {
		s, err := optString(top, f.key)
		if err != nil {
			return nil, err
		}
		if raw, ok := top[f.key]; ok && !isNull(raw) {
			*f.dst = s
		}
	}
	return p, nil
}

// syntaxError describes a decoding error in words, with the byte offset it happened at.
func syntaxError(where string, dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("%s: invalid JSON at byte %d: %s", where, se.Offset, se.Error())
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: the file ends early (truncated JSON at byte %d)", where, dec.InputOffset())
	}
	return fmt.Errorf("%s: %w", where, err)
}

// an prefixes a JSON type name with its article: "an object", "a string".
func an(typ string) string {
	if strings.ContainsRune("aeiou", rune(typ[0])) {
		return "an " + typ
	}
	return "a " + typ
}

// skipValue reads one value of any type and discards it.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// parseExtras reads the fingerprint and exact bit count: top level and "stats" in v2, the
// bankai_metal object in v1 shapes.
func parseExtras(p *Patch, top map[string]json.RawMessage) error {
	obj := top
	where := ""
	if p.Variant == VariantV2 {
		fp, err := optString(top, "fingerprint")
		if err != nil {
			return err
		}
		p.Fingerprint = fp
		raw, ok := top["stats"]
		if !ok || isNull(raw) {
			return nil
		}
		obj, where = nil, "stats."
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return fmt.Errorf(`"stats": want an object`)
		}
	} else {
		raw, ok := top[extKey]
		if !ok || isNull(raw) {
			return nil
		}
		obj, where = nil, extKey+"."
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return fmt.Errorf("%q: want an object", extKey)
		}
		fp, err := optString(obj, "fingerprint")
		if err != nil {
			return fmt.Errorf("%s%w", where, err)
		}
		p.Fingerprint = fp
	}
	bits, _, err := optInt(obj, "bits_flipped")
	if err != nil {
		return fmt.Errorf("%s%w", where, err)
	}
	if bits < 0 {
		return fmt.Errorf(`%s"bits_flipped": negative value %d`, where, bits)
	}
	p.BitsFlipped = bits
	return nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// optString returns top[key] as a string; absent and null give "".
func optString(obj map[string]json.RawMessage, key string) (string, error) {
	raw, ok := obj[key]
	if !ok || isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%q: got %s, want a string", key, jsonType(raw))
	}
	return s, nil
}

// optInt returns obj[key] as an integer and whether it was present (null counts as absent).
func optInt(obj map[string]json.RawMessage, key string) (int64, bool, error) {
	raw, ok := obj[key]
	if !ok || isNull(raw) {
		return 0, false, nil
	}
	var n json.Number // (encoding/json would also accept a numeric string here, hence the type check)
	if err := json.Unmarshal(raw, &n); err != nil || jsonType(raw) != "number" {
		return 0, false, fmt.Errorf("%q: got %s, want an integer", key, jsonType(raw))
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%q: %s is not an integer", key, n)
	}
	return v, true, nil
}

// jsonType names the JSON type of a raw value for error messages.
func jsonType(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// parseMetadata decodes the metadata object keeping its top-level key order. Null gives an
// empty map, as upstream's loader does.
func parseMetadata(dec *json.Decoder) (map[string]any, []string, error) {
	meta := map[string]any{}
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, syntaxError(`"metadata"`, dec, err)
	}
	if tok == nil {
		return meta, nil, nil
	}
	if tok != json.Delim('{') {
		return nil, nil, fmt.Errorf(`"metadata": got %s, want an object`, tokenType(tok))
	}
	var order []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, syntaxError(`"metadata"`, dec, err)
		}
		key, _ := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, syntaxError(fmt.Sprintf(`"metadata": key %q`, key), dec, err)
		}
		if _, dup := meta[key]; !dup {
			order = append(order, key)
		}
		meta[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, syntaxError(`"metadata"`, dec, err)
	}
	return meta, order, nil
}
