package patch

import (
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

// Load reads a patch file. The patch name defaults to the file name without its extension.
func Load(path string) (*Patch, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxFileSize {
		return nil, fmt.Errorf("patch: %s: file larger than %d bytes", path, MaxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("patch: read %s: %w", path, err)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	p, err := parse(data, name)
	if err != nil {
		return nil, fmt.Errorf("patch: %s: %w", path, err)
	}
	return p, nil
}

// Parse decodes a patch in any of the upstream shapes (canonical, legacy experiment 3, runner)
// or ours (v2). name is used when the file has no "name" key. Errors name the flip index and
// field at fault.
func Parse(data []byte, name string) (*Patch, error) {
	p, err := parse(data, name)
	if err != nil {
		if name == "" {
			return nil, fmt.Errorf("patch: %w", err)
		}
		return nil, fmt.Errorf("patch: %s: %w", name, err)
	}
	return p, nil
}

func parse(data []byte, name string) (*Patch, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file larger than %d bytes", MaxFileSize)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if top == nil {
		return nil, errors.New("not a JSON object: null")
	}
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
	if p.Metadata, p.metaOrder, err = parseMetadata(top["metadata"]); err != nil {
		return nil, err
	}
	raw, ok := top["flips"]
	if !ok {
		return nil, errors.New(`missing "flips"`)
	}
	if p.Flips, err = parseFlips(raw, p.Variant == VariantV2); err != nil {
		return nil, err
	}
	if p.Flips, err = normalizeFlips(p.Flips); err != nil {
		return nil, err
	}
	if err := parseExtras(p, top); err != nil {
		return nil, err
	}
	return p, nil
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

// parseMetadata decodes the metadata object keeping its top-level key order. Absent or null
// gives an empty map, as upstream's loader does.
func parseMetadata(raw json.RawMessage) (map[string]any, []string, error) {
	meta := map[string]any{}
	if raw == nil || isNull(raw) {
		return meta, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf(`"metadata": got %s, want an object`, jsonType(raw))
	}
	var order []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf(`"metadata": %w`, err)
		}
		key, _ := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf(`"metadata": key %q: %w`, key, err)
		}
		if _, dup := meta[key]; !dup {
			order = append(order, key)
		}
		meta[key] = v
	}
	return meta, order, nil
}
