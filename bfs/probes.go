package bfs

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Probe is one prompt with a correct answer and a distractor.
type Probe struct {
	Name     string `json:"name"`
	Category string `json:"category"`
	Prompt   string `json:"prompt"`
	Correct  string `json:"correct"`
	Wrong    string `json:"wrong"`
	// Alternates are further accepted spellings of the correct answer, used only by the greedy
	// check.
	Alternates []string `json:"alternates,omitempty"`
}

// ProbeSet is a named list of probes with unique names.
type ProbeSet struct {
	Name   string  `json:"name"`
	Probes []Probe `json:"probes"`
}

// MaxProbeFileSize bounds a probe file. The built-in sets are under 10 KB, and all probes of a
// run together are bounded by MaxProbeTokens anyway.
const MaxProbeFileSize = 4 << 20

//go:embed probes/*.json
var builtinFS embed.FS

// BuiltinSets lists the names of the built-in probe sets: upstream's math, code and knowledge
// sets, the Experiment 4 calculus targets, and the Experiment 6 and 12 train / held-out sets.
func BuiltinSets() []string {
	return []string{"math", "code", "knowledge", "calculus", "exp6_train", "exp6_val", "exp12_train", "exp12_val"}
}

// DefaultControls returns the control sets upstream's CLI uses for a target (docs/UPSTREAM.md trap T18): the
// built-in math, code and knowledge sets other than the target itself.
func DefaultControls(target string) []string {
	var out []string
	for _, s := range []string{"math", "code", "knowledge"} {
		if s != target {
			out = append(out, s)
		}
	}
	return out
}

// LoadProbes returns the built-in set of that name or, failing that, reads a probe file.
func LoadProbes(nameOrPath string) (*ProbeSet, error) {
	if slices.Contains(BuiltinSets(), nameOrPath) {
		data, err := builtinFS.ReadFile("probes/" + nameOrPath + ".json")
		if err != nil {
			return nil, fmt.Errorf("bfs: built-in probe set %s: %w", nameOrPath, err)
		}
		return ParseProbes(data, nameOrPath)
	}
	f, err := os.Open(nameOrPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("bfs: probe set %q is neither a built-in set (%s) nor a file", nameOrPath, strings.Join(BuiltinSets(), ", "))
		}
		return nil, fmt.Errorf("bfs: probes: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("bfs: probes %s: a directory, want a JSON file of probes", nameOrPath)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxProbeFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("bfs: probes %s: %w", nameOrPath, err)
	}
	set, err := parseProbes(data, nameOrPath)
	if err != nil {
		return nil, err
	}
	set.Name = strings.TrimSuffix(filepath.Base(nameOrPath), filepath.Ext(nameOrPath))
	return set, nil
}

// LoadProbeList loads a comma-separated list of set names or files ("math,code").
func LoadProbeList(list string) ([]*ProbeSet, error) {
	var out []*ProbeSet
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		set, err := LoadProbes(s)
		if err != nil {
			return nil, err
		}
		out = append(out, set)
	}
	return out, nil
}

// ParseProbes decodes a probe file; source names it in errors and becomes the set name.
//
// The file is a JSON array of objects with the string fields "prompt", "correct" and "wrong"
// (required, non-empty, correct ≠ wrong), "name" (default "probe_<index>") and "category"
// (default "custom"), and "alternates", an array of non-empty strings. Any other key, a wrong
// JSON type or a repeated name is an error naming the file, the probe (index and name) and the
// field.
func ParseProbes(data []byte, source string) (*ProbeSet, error) {
	return parseProbes(data, source)
}

func parseProbes(data []byte, source string) (*ProbeSet, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("bfs: probes %s: "+format, append([]any{source}, a...)...)
	}
	if len(data) > MaxProbeFileSize {
		return nil, fail("file larger than %d MiB", MaxProbeFileSize>>20)
	}
	var raw []json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fail("%s", jsonProblem(err, "a JSON array of probe objects"))
	}
	if dec.More() {
		return nil, fail("trailing data after the array")
	}
	if len(raw) == 0 {
		return nil, fail("no probes")
	}
	set := &ProbeSet{Name: source, Probes: make([]Probe, 0, len(raw))}
	seen := map[string]int{}
	for i, r := range raw {
		p, field, err := parseProbe(r, i)
		if err != nil {
			who := fmt.Sprintf("probe %d", i)
			if p.Name != "" {
				who += fmt.Sprintf(" (%q)", p.Name)
			}
			if field != "" {
				return nil, fail("%s: field %q: %v", who, field, err)
			}
			return nil, fail("%s: %v", who, err)
		}
		if j, dup := seen[p.Name]; dup {
			return nil, fail("probe %d (%q): field \"name\": duplicates probe %d", i, p.Name, j)
		}
		seen[p.Name] = i
		set.Probes = append(set.Probes, p)
	}
	return set, nil
}

// jsonProblem says in plain words why decoding a JSON document failed, without Go type names:
// where the syntax breaks, or what was found instead of want.
func jsonProblem(err error, want string) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "empty, want " + want
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early, want " + want
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		return fmt.Sprintf("want %s, found a JSON %s", want, typ.Value)
	}
	return fmt.Sprintf("want %s: %v", want, err)
}

// parseProbe decodes probe i. On error it returns what it has read (the name, when known) and
// the field at fault ("" for the object itself).
func parseProbe(raw json.RawMessage, i int) (Probe, string, error) {
	p := Probe{Name: fmt.Sprintf("probe_%d", i), Category: "custom"}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return Probe{}, "", fmt.Errorf("not a JSON object")
	}
	str := func(key string, dst *string, required bool) (string, error) {
		v, ok := obj[key]
		if !ok {
			if required {
				return key, errors.New("missing")
			}
			return "", nil
		}
		if err := json.Unmarshal(v, dst); err != nil || string(bytes.TrimSpace(v)) == "null" {
			return key, errors.New("must be a string")
		}
		if *dst == "" {
			return key, errors.New("must not be empty")
		}
		return "", nil
	}
	// Read the name first so that later errors can quote it.
	if f, err := str("name", &p.Name, false); err != nil {
		return Probe{}, f, err
	}
	for _, k := range []struct {
		key      string
		dst      *string
		required bool
	}{{"prompt", &p.Prompt, true}, {"correct", &p.Correct, true}, {"wrong", &p.Wrong, true}, {"category", &p.Category, false}} {
		if f, err := str(k.key, k.dst, k.required); err != nil {
			return p, f, err
		}
	}
	if v, ok := obj["alternates"]; ok {
		if err := json.Unmarshal(v, &p.Alternates); err != nil {
			return p, "alternates", errors.New("must be an array of strings")
		}
		for j, a := range p.Alternates {
			if a == "" {
				return p, "alternates", fmt.Errorf("entry %d is empty", j)
			}
		}
		if len(p.Alternates) == 0 {
			p.Alternates = nil
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch k {
		case "prompt", "correct", "wrong", "name", "category", "alternates":
		default:
			return p, k, errors.New("unknown field (want prompt, correct, wrong, name, category, alternates)")
		}
	}
	if p.Correct == p.Wrong {
		return p, "wrong", errors.New("same as the correct answer")
	}
	return p, "", nil
}

// WriteProbes writes a probe set as a probe file (a JSON array, two-space indent).
func WriteProbes(w io.Writer, set *ProbeSet) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(set.Probes)
}
