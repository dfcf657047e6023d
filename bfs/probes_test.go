package bfs

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
)

func TestBuiltinSetsMatchUpstream(t *testing.T) {
	var up struct {
		Sets map[string][]Probe `json:"sets"`
	}
	testenv.ReadJSON(t, testenv.Shared(t, "upstream", "probes.json"), &up)
	src := map[string]string{"math": "builtin_math", "code": "builtin_code", "knowledge": "builtin_knowledge",
		"calculus": "exp4_calculus_target", "exp6_train": "exp6_train", "exp6_val": "exp6_val",
		"exp12_train": "exp12_train", "exp12_val": "exp12_val"}
	require.Len(t, src, len(BuiltinSets()))
	for _, name := range BuiltinSets() {
		set, err := LoadProbes(name)
		require.NoError(t, err, name)
		require.Equal(t, name, set.Name)
		want := up.Sets[src[name]]
		require.Len(t, set.Probes, len(want), name)
		for i, p := range want {
			if p.Category == "" {
				p.Category = "custom"
			}
			require.Equal(t, p, set.Probes[i], "%s probe %d", name, i)
		}
	}
	// Alternates survive (Appendix A: trig_val_0 has five).
	val, err := LoadProbes("exp12_val")
	require.NoError(t, err)
	require.Len(t, val.Probes[20].Alternates, 5)
	require.Equal(t, "trig_val_0", val.Probes[20].Name)
}

func TestDefaultControls(t *testing.T) {
	require.Equal(t, []string{"code", "knowledge"}, DefaultControls("math"))
	require.Equal(t, []string{"math", "code", "knowledge"}, DefaultControls("exp12_train"))
}

func TestProbeFileRoundTrip(t *testing.T) {
	path := filepath.Join("testdata", "custom_probes.json")
	set, err := LoadProbes(path)
	require.NoError(t, err)
	require.Equal(t, "custom_probes", set.Name)
	require.Equal(t, Probe{Name: "probe_0", Category: "custom", Prompt: "2 + 2 =", Correct: " 4", Wrong: " 5"}, set.Probes[0])
	require.Equal(t, []string{" 0.707"}, set.Probes[1].Alternates)
	var buf bytes.Buffer
	require.NoError(t, WriteProbes(&buf, set))
	back, err := ParseProbes(buf.Bytes(), "custom_probes")
	require.NoError(t, err)
	require.Equal(t, set, back)
	list, err := LoadProbeList("math, " + path)
	require.NoError(t, err)
	require.Len(t, list, 2)
	_, err = LoadProbes(filepath.Join(t.TempDir(), "missing.json"))
	require.ErrorContains(t, err, "neither a built-in set")
}

func TestProbeValidation(t *testing.T) {
	for _, c := range []struct{ data, want string }{
		{`{}`, `bfs: probes f.json: want a JSON array`},
		{`[]`, `f.json: no probes`},
		{`[1]`, `f.json: probe 0: not a JSON object`},
		{`[{"correct": " 4", "wrong": " 5"}]`, `f.json: probe 0 ("probe_0"): field "prompt": missing`},
		{`[{"prompt": "a", "correct": " 4", "wrong": " 5"}, {"name": "x", "prompt": 3, "correct": "b", "wrong": "c"}]`,
			`f.json: probe 1 ("x"): field "prompt": must be a string`},
		{`[{"name": "x", "prompt": "a", "correct": "", "wrong": "c"}]`, `probe 0 ("x"): field "correct": must not be empty`},
		{`[{"name": "x", "prompt": "a", "correct": "b", "wrong": "b"}]`, `probe 0 ("x"): field "wrong": same as the correct answer`},
		{`[{"name": "x", "prompt": "a", "correct": "b", "wrong": "c", "alternates": "d"}]`, `probe 0 ("x"): field "alternates": must be an array`},
		{`[{"name": "x", "prompt": "a", "correct": "b", "wrong": "c", "alternates": [""]}]`, `field "alternates": entry 0 is empty`},
		{`[{"name": "x", "prompt": "a", "correct": "b", "wrong": "c", "corect": "d"}]`, `probe 0 ("x"): field "corect": unknown field`},
		{`[{"name": null, "prompt": "a", "correct": "b", "wrong": "c"}]`, `probe 0: field "name": must be a string`},
		{`[{"name": "x", "prompt": "a", "correct": "b", "wrong": "c"}, {"name": "x", "prompt": "d", "correct": "e", "wrong": "f"}]`,
			`f.json: probe 1 ("x"): field "name": duplicates probe 0`},
		{`[{"prompt": "a", "correct": "b", "wrong": "c"}] x`, `trailing data`},
		// the whole-file errors say what was found, in JSON terms, not Go's
		{`{}`, `f.json: want a JSON array of probe objects, found a JSON object`},
		{`"probes"`, `found a JSON string`},
		{``, `f.json: empty, want a JSON array`},
		{`[{"prompt": "a"`, `f.json: the JSON ends early`},
		{`[{"prompt": "a"} {"prompt": "b"}]`, `f.json: invalid JSON at byte 18: invalid character '{' after array element`},
	} {
		_, err := ParseProbes([]byte(c.data), "f.json")
		require.ErrorContains(t, err, c.want, c.data)
		require.NotContains(t, err.Error(), "Go value", c.data)
		require.NotContains(t, err.Error(), "RawMessage", c.data)
	}
	_, err := ParseProbes(make([]byte, MaxProbeFileSize+1), "huge.json")
	require.ErrorContains(t, err, "bfs: probes huge.json: file larger than 4 MiB")
	_, err = LoadProbes(t.TempDir())
	require.ErrorContains(t, err, "a directory, want a JSON file of probes")
}

func FuzzParseProbes(f *testing.F) {
	for _, name := range BuiltinSets() {
		data, err := builtinFS.ReadFile("probes/" + name + ".json")
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte(`[{"prompt": "a", "correct": "b", "wrong": "c", "alternates": ["d"]}]`))
	f.Add([]byte(`[{"prompt": "a", "correct": "b", "wrong": "b"}]`))
	f.Add([]byte(`[{"prompt": "a", "correct": "b", "wrong": "c", "alternates": []}]`))
	f.Add([]byte(`[{"name": "x", "prompt": "a", "correct": "b", "wrong": "c"}, {"name": "x"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := ParseProbes(data, "fuzz.json")
		if err != nil {
			return
		}
		// A parsed set is valid and survives a round trip.
		var buf bytes.Buffer
		require.NoError(t, WriteProbes(&buf, set))
		back, err := ParseProbes(buf.Bytes(), "fuzz.json")
		require.NoError(t, err)
		require.Equal(t, set, back)
	})
}
