package patch

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// upstreamFiles are the committed upstream patches with the flip counts and shapes stated in
// docs/UPSTREAM.md §2.2 and §2.4; the test also counts the JSON itself.
var upstreamFiles = []struct {
	name    string
	flips   int
	variant Variant
}{
	{"patch_math_v1", 72, VariantLegacyExp3},
	{"calculus_v1", 72, VariantCanonical},
	{"calculus_generalized_v1", 93, VariantCanonical},
	{"calculus_corrected_baseline", 78, VariantCanonical},
	{"calculus_corrected_extended", 95, VariantCanonical},
	{"calculus_beefy_v1", 73, VariantRunner},
	{"calculus_attn_v1", 85, VariantRunner},
	{"calculus_group_v1", 6, VariantRunner},
}

// rawFlips decodes the flips of a file with plain encoding/json, independently of Parse.
func rawFlips(t *testing.T, data []byte) []map[string]any {
	var doc struct {
		Flips []map[string]any `json:"flips"`
	}
	require.NoError(t, json.Unmarshal(data, &doc))
	return doc.Flips
}

func TestUpstreamFiles(t *testing.T) {
	dir := testenv.Shared(t, "upstream", "patches")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, len(upstreamFiles), "every upstream file is listed here")
	for _, uf := range upstreamFiles {
		t.Run(uf.name, func(t *testing.T) {
			path := filepath.Join(dir, uf.name+".json")
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			p, err := Load(path)
			require.NoError(t, err)
			raw := rawFlips(t, data)
			require.Len(t, raw, uf.flips, "JSON flip count vs docs/UPSTREAM.md")
			require.Len(t, p.Flips, len(raw))
			require.Equal(t, uf.variant, p.Variant)
			for i, rf := range raw {
				f := p.Flips[i]
				require.Equal(t, int(rf["layer"].(float64)), f.Layer, "flip %d", i)
				require.Equal(t, rf["proj"], f.Proj, "flip %d", i)
				require.Equal(t, int(rf["row"].(float64)), f.Row, "flip %d", i)
				if g, ok := rf["group"]; ok {
					require.Equal(t, KindGroup, f.Kind())
					require.Equal(t, int(g.(float64)), f.Group)
				} else {
					require.Equal(t, KindRow, f.Kind())
				}
			}
			if uf.variant == VariantLegacyExp3 {
				require.Equal(t, uf.name, p.Name, "name defaults to the file name")
			}

			// Marshal: canonical shape, only upstream keys in flips, parses back to the same flips.
			out, err := p.Marshal()
			require.NoError(t, err)
			if uf.variant == VariantCanonical {
				require.Equal(t, string(data), string(out), "canonical files round-trip byte for byte")
			}
			var doc map[string]any
			require.NoError(t, json.Unmarshal(out, &doc))
			require.Equal(t, FormatV1, doc["format"])
			stats := doc["stats"].(map[string]any)
			require.EqualValues(t, 4096*len(raw), stats["bits_flipped"], "upstream's nominal 4096 per flip")
			require.EqualValues(t, 12*len(raw), stats["size_bytes"], "upstream's nominal 12 bytes per flip")
			for i, rf := range rawFlips(t, out) {
				for k := range rf {
					require.Contains(t, []string{"layer", "proj", "row", "group"}, k, "flip %d", i)
				}
			}
			q, err := Parse(out, "")
			require.NoError(t, err)
			require.Equal(t, p.Flips, q.Flips)
			require.Equal(t, p.Name, q.Name)

			golden := filepath.Join("testdata", uf.name+".golden")
			if *update {
				require.NoError(t, os.WriteFile(golden, out, 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test -update to create the golden files")
			require.Equal(t, string(want), string(out))
		})
	}
}

func TestUpstreamDetails(t *testing.T) {
	dir := testenv.Shared(t, "upstream", "patches")
	attn, err := Load(filepath.Join(dir, "calculus_attn_v1.json"))
	require.NoError(t, err)
	byProj := map[string]int{}
	for _, f := range attn.Flips {
		byProj[f.Proj]++
	}
	// docs/UPSTREAM.md §2.4: gate 37, up 32, q 7, o 4, k 3, v 2.
	require.Equal(t, map[string]int{"gate_proj": 37, "up_proj": 32, "q_proj": 7, "o_proj": 4, "k_proj": 3, "v_proj": 2}, byProj)

	group, err := Load(filepath.Join(dir, "calculus_group_v1.json"))
	require.NoError(t, err)
	for i, f := range group.Flips {
		require.Equal(t, KindGroup, f.Kind(), "flip %d", i)
	}
	require.Equal(t, "GGUFBackend", group.Metadata["backend"])
	require.Equal(t, json.Number("1500"), group.Metadata["max_iters"])
}

func TestRoundTripV2(t *testing.T) {
	p := &Patch{
		Name: "mixed", Description: "ünïcode \"quoted\"\n", BaseModel: "prism-ml/Bonsai-8B-gguf",
		Fingerprint: "sha256:abc",
		Flips: []Flip{RowFlip(0, "up_proj", 3), GroupFlip(1, "ffn_down", 2, 2), BitFlip(0, "attn_q", 1, 200),
			BitFlip(0, "up_proj", 3, 5)},
		Metadata:    map[string]any{"seed": 42, "fitness": 0.25, "layers": []int{1, 2}, "note": "x"},
		BitsFlipped: 12345,
	}
	data, err := p.Marshal()
	require.NoError(t, err)
	require.True(t, json.Valid(data))
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	require.Equal(t, FormatV2, doc["format"])
	require.Equal(t, p.Description, doc["description"])
	stats := doc["stats"].(map[string]any)
	require.EqualValues(t, 4, stats["n_flips"])
	require.EqualValues(t, 1, stats["n_rows"])
	require.EqualValues(t, 1, stats["n_groups"])
	require.EqualValues(t, 2, stats["n_bits"])
	for _, s := range []string{"ü", "ï"} {
		require.NotContains(t, string(data), s, "non-ASCII is escaped like Python's json.dumps")
	}

	q, err := Parse(data, "ignored")
	require.NoError(t, err)
	require.Equal(t, VariantV2, q.Variant)
	require.Equal(t, "mixed", q.Name)
	require.Equal(t, p.Description, q.Description)
	require.Equal(t, p.Fingerprint, q.Fingerprint)
	require.Equal(t, p.BitsFlipped, q.BitsFlipped)
	want := []Flip{RowFlip(0, "up_proj", 3), GroupFlip(1, "down_proj", 2, 2), BitFlip(0, "q_proj", 1, 200), BitFlip(0, "up_proj", 3, 5)}
	require.Equal(t, want, q.Flips)
	require.Equal(t, json.Number("42"), q.Metadata["seed"])
	require.Equal(t, json.Number("0.25"), q.Metadata["fitness"])
	require.Equal(t, []any{json.Number("1"), json.Number("2")}, q.Metadata["layers"])

	again, err := q.Marshal()
	require.NoError(t, err)
	require.Equal(t, string(data), string(again), "v2 round trip is stable")
}

func TestRoundTripV1Extras(t *testing.T) {
	p := &Patch{Name: "rows", BaseModel: "m", Fingerprint: "fp1", BitsFlipped: 4096 + 128,
		Flips: []Flip{RowFlip(2, "gate_proj", 7), GroupFlip(2, "gate_proj", 8, 31)}}
	data, err := p.Marshal()
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	require.Equal(t, FormatV1, doc["format"])
	require.Equal(t, map[string]any{}, doc["metadata"])
	require.Equal(t, map[string]any{"fingerprint": "fp1", "bits_flipped": float64(4096 + 128)}, doc[extKey])
	q, err := Parse(data, "")
	require.NoError(t, err)
	require.Equal(t, VariantCanonical, q.Variant)
	require.Equal(t, p.Flips, q.Flips)
	require.Equal(t, "fp1", q.Fingerprint)
	require.Equal(t, p.BitsFlipped, q.BitsFlipped)
}

func TestSaveAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.json")
	p := &Patch{Name: "p", Flips: []Flip{RowFlip(0, "up_proj", 1)}}
	require.NoError(t, p.Save(path))
	q, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, p.Flips, q.Flips)
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	bad := &Patch{Name: "p", Flips: []Flip{RowFlip(0, "up_proj", 1), RowFlip(0, "up_proj", 1)}}
	require.Error(t, bad.Save(path))
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, before, after, "a failed save leaves the old file")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")
}

func TestBadInput(t *testing.T) {
	flip := func(body string) string {
		return `{"format":"bankai_row_xor_v1","flips":[{"layer":0,"proj":"up_proj","row":1},` + body + `]}`
	}
	cases := []struct {
		name, data, want string
	}{
		{"truncated", `{`, "the file ends early"},
		{"not json", `hello`, "not a JSON object: invalid JSON at byte 1: invalid character 'h'"},
		{"array", `[]`, "not a JSON object: the file holds an array"},
		{"string", `"x"`, "not a JSON object: the file holds a string"},
		{"trailing data", `{"flips":[]} {}`, "unexpected data after the JSON object"},
		{"repeated top-level key", `{"flips":[],"flips":[]}`, `top-level key "flips" repeated`},
		{"truncated flips", flip(`{"layer":0,`)[:60], `the file ends early`},
		{"col before format", `{"flips":[{"layer":0,"proj":"up_proj","row":2,"col":5}],"format":"bankai_row_xor_v1"}`, `flip 0: key "col"`},
		{"stats type", `{"format":"bankai_xor_v2","flips":[],"stats":[]}`, `"stats": want an object`},
		{"duplicate far apart", flip(`{"layer":3,"proj":"up_proj","row":1},{"layer":0,"proj":"up_proj","row":1,"group":null}`),
			"flip 2: L0.up_proj row 1 duplicates flip 0"},
		{"no flips", `{"name":"x"}`, `missing "flips"`},
		{"flips not array", `{"flips":{}}`, `"flips": got object, want an array`},
		{"unknown format", `{"format":"v9","flips":[]}`, `unknown format "v9"`},
		{"bad version", `{"format":"bankai_row_xor_v1","version":2,"flips":[]}`, "version 2, want 1"},
		{"name type", `{"name":3,"flips":[]}`, `"name": got number, want a string`},
		{"version string", `{"version":"1","type":"row_flip","flips":[]}`, `"version": got string, want an integer`},
		{"metadata type", `{"metadata":[],"flips":[]}`, `"metadata": got array, want an object`},
		{"flip not object", flip(`7`), "flip 1: got number, want an object"},
		{"unknown key", flip(`{"layer":0,"proj":"up_proj","row":2,"bits":4096}`), `flip 1: unknown key "bits"`},
		{"repeated key", flip(`{"layer":0,"proj":"up_proj","row":2,"row":3}`), `flip 1: key "row" repeated`},
		{"row string", flip(`{"layer":0,"proj":"up_proj","row":"2"}`), `flip 1: field "row": got string, want an integer`},
		{"layer float", flip(`{"layer":0.5,"proj":"up_proj","row":2}`), `flip 1: field "layer": 0.5 is not an integer`},
		{"proj number", flip(`{"layer":0,"proj":5,"row":2}`), `flip 1: field "proj": got number, want a string`},
		{"unknown proj", flip(`{"layer":0,"proj":"x_proj","row":2}`), `flip 1: field "proj": unknown projection "x_proj"`},
		{"negative row", flip(`{"layer":0,"proj":"up_proj","row":-2}`), `flip 1: field "row": negative value -2`},
		{"negative group", flip(`{"layer":0,"proj":"up_proj","row":2,"group":-1}`), `flip 1: field "group": negative value -1`},
		{"huge layer", flip(`{"layer":99999999999,"proj":"up_proj","row":2}`), `flip 1: field "layer": value 99999999999 too large`},
		{"missing row", flip(`{"layer":0,"proj":"up_proj"}`), `flip 1: missing "row"`},
		{"col in v1", flip(`{"layer":0,"proj":"up_proj","row":2,"col":5}`), `flip 1: key "col"`},
		{"group and col", `{"format":"bankai_xor_v2","flips":[{"layer":0,"proj":"up_proj","row":2,"group":1,"col":5}]}`, `flip 0: both "group" and "col"`},
		{"duplicate", flip(`{"layer":0,"proj":"ffn_up","row":1}`), "flip 1: L0.up_proj row 1 duplicates flip 0"},
		{"group object", flip(`{"layer":0,"proj":"up_proj","row":2,"group":{}}`), `flip 1: field "group": got object, want an integer`},
		{"fingerprint type", `{"format":"bankai_xor_v2","fingerprint":1,"flips":[]}`, `"fingerprint": got number`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.data), "bad")
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
			require.True(t, strings.HasPrefix(err.Error(), "patch: bad: "), err.Error())
			require.NotRegexp(t, `Go value|json\.|map\[|\.tmp`, err.Error(), "no Go names in errors")
		})
	}
}

func TestHugeFile(t *testing.T) {
	_, err := Parse(make([]byte, MaxFileSize+1), "huge")
	require.ErrorContains(t, err, "patch: huge: file of 67108865 bytes is larger than the limit of 67108864 bytes")

	path := filepath.Join(t.TempDir(), "huge.json")
	require.NoError(t, os.WriteFile(path, nil, 0o644))
	require.NoError(t, os.Truncate(path, MaxFileSize+1)) // sparse: cheap to create
	_, err = Load(path)
	require.ErrorContains(t, err, "is larger than the limit")

	// A stream (not a regular file, so no size up front) is cut at the limit.
	var big strings.Builder
	big.WriteString(`{"flips":[],"metadata":{"pad":"`)
	big.WriteString(strings.Repeat("x", MaxFileSize))
	big.WriteString(`"}}`)
	_, err = parse(&limitedReader{r: strings.NewReader(big.String()), left: MaxFileSize}, "s")
	require.ErrorContains(t, err, "ends early")
	lr := &limitedReader{r: strings.NewReader(big.String()), left: MaxFileSize}
	_, _ = parse(lr, "s")
	require.True(t, lr.over, "the reader records that the input went on")
}

func TestLoadDirectory(t *testing.T) {
	_, err := Load(t.TempDir())
	require.ErrorContains(t, err, "is a directory, not a patch file")
}

func TestParseAccepts(t *testing.T) {
	p, err := Parse([]byte(`{"flips":[{"layer":1,"proj":"ffn_gate","row":2,"group":null},{"layer":1,"proj":"attn_output","row":2,"group":3}]}`), "aliases")
	require.NoError(t, err)
	require.Equal(t, VariantRunner, p.Variant)
	require.Equal(t, "aliases", p.Name)
	require.Equal(t, "unknown", p.BaseModel, "upstream's default base_model")
	require.Equal(t, []Flip{RowFlip(1, "gate_proj", 2), GroupFlip(1, "o_proj", 2, 3)}, p.Flips)
	require.NotNil(t, p.Metadata)
}
