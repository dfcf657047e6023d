package mlx

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
)

// FuzzConfig: ParseConfig never panics, and what it accepts encodes to a config.json that
// parses to the same encoding. Seeds: the test config, the committed testdata/*-mlx configs.
func FuzzConfig(f *testing.F) {
	seed, err := MarshalConfig(tinyConfig())
	require.NoError(f, err)
	f.Add(seed)
	f.Add([]byte(`{"model_type":"qwen3","hidden_size":128,"intermediate_size":256,"num_hidden_layers":2,` +
		`"num_attention_heads":2,"num_key_value_heads":1,"rms_norm_eps":1e-6,"rope_theta":1e6,` +
		`"rope_scaling":{"type":"yarn","factor":4},"eos_token_id":[5,6],"quantization_config":{"group_size":128,"bits":1}}`))
	root := testenv.Root(f)
	for _, d := range []string{"tiny-mlx", "tiny-tied-yarn-mlx", "tiny-4layer-mlx"} {
		if raw, err := os.ReadFile(filepath.Join(root, "testdata", d, ConfigFile)); err == nil {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			require.Contains(t, err.Error(), "mlx: config.json: ")
			return
		}
		once, err := MarshalConfig(c)
		require.NoError(t, err)
		c2, err := ParseConfig(once)
		require.NoError(t, err)
		twice, err := MarshalConfig(c2)
		require.NoError(t, err)
		require.Equal(t, string(once), string(twice))
	})
}

// FuzzIndex: parseIndex never panics; what it accepts lists each shard once, sorted, every
// one a plain file name, and every tensor's shard among them.
func FuzzIndex(f *testing.F) {
	where := map[string]string{"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
		"lm_head.weight": "model-00002-of-00002.safetensors"}
	seed, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 123}, "weight_map": where})
	require.NoError(f, err)
	f.Add(seed)
	f.Add([]byte(`{"weight_map": {"a": "../x.safetensors"}}`))
	f.Add([]byte(`{"weight_map": {}}`))
	f.Add([]byte(`{"weight_map": {"a": "x", "b": "x", "c": "y"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, files, err := parseIndex(data)
		if err != nil {
			return
		}
		require.True(t, slices.IsSorted(files))
		require.Equal(t, len(files), len(slices.Compact(slices.Clone(files))))
		for name, file := range w {
			require.Contains(t, files, file, "tensor %q", name)
		}
		for _, file := range files {
			require.Equal(t, filepath.Base(file), file)
			require.NotContains(t, []string{"", ".", ".."}, file)
		}
	})
}
