package synth_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

// TestTestdataUpToDate regenerates the committed models and requires identical bytes: the
// generator is deterministic, and testdata/ matches it (run `go generate ./testdata` if not).
func TestTestdataUpToDate(t *testing.T) {
	root := testenv.Root(t)
	for name, s := range synth.TestdataModels() {
		dir := t.TempDir()
		require.NoError(t, s.WriteGGUF(filepath.Join(dir, name+".gguf")))
		require.NoError(t, s.WriteMLX(filepath.Join(dir, name+"-mlx")))
		for _, rel := range []string{name + ".gguf", name + "-mlx/model.safetensors", name + "-mlx/config.json", name + "-mlx/tokenizer.json"} {
			got, err := os.ReadFile(filepath.Join(dir, rel))
			require.NoError(t, err)
			want, err := os.ReadFile(filepath.Join(root, "testdata", rel))
			require.NoError(t, err, "testdata/%s missing: run go generate ./testdata", rel)
			require.True(t, string(got) == string(want), "testdata/%s is stale: run go generate ./testdata", rel)
		}
	}
}

func TestSpecsLoad(t *testing.T) {
	for name, s := range synth.TestdataModels() {
		p := filepath.Join(testenv.Root(t), "testdata", name+".gguf")
		m, err := runtime.Load(p)
		require.NoError(t, err, name)
		require.Equal(t, s.Layers, m.NumLayers())
		require.Equal(t, s.Heads*s.HeadDim, m.QDim())
		require.Equal(t, s.Tied, m.Tied)
		require.Equal(t, s.Yarn, m.Rope.Factor > 1)
		tok, err := m.Tokenizer()
		require.NoError(t, err)
		require.Equal(t, []int32{116, 257, 32, 99, 97, 116, 115}, tok.Encode("the cats", true))
		m.Close()
	}
	require.Error(t, synth.Spec{Layers: 1, Hidden: 100, FFN: 128, Heads: 1, KVHeads: 1, HeadDim: 64, Vocab: 300}.Validate())
}

// A bad shape is reported in the user's words (sizes by name), not as a Go struct dump.
func TestValidateNamesSizes(t *testing.T) {
	s := synth.Tiny()
	s.Layers = -1
	err := s.Validate()
	require.ErrorContains(t, err, "layers -1")
	require.NotContains(t, err.Error(), "{")
}
