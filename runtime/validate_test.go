package runtime_test

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/mlx"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

// writeMLXVariant writes the tiny synthetic model as an MLX directory, with config.json edited
// as a JSON object and the safetensors bytes edited in place.
func writeMLXVariant(t *testing.T, editCfg func(map[string]any), editST func(st *mlx.Safetensors)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mlx")
	require.NoError(t, synth.Tiny().WriteMLX(dir))
	if editCfg != nil {
		path := filepath.Join(dir, mlx.ConfigFile)
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		var cfg map[string]any
		require.NoError(t, json.Unmarshal(raw, &cfg))
		editCfg(cfg)
		raw, err = json.Marshal(cfg)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, raw, 0o644))
	}
	if editST != nil {
		path := filepath.Join(dir, mlx.WeightsFile)
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		st, err := mlx.ParseSafetensors(raw) // tensor data aliases raw
		require.NoError(t, err)
		editST(st)
		require.NoError(t, os.WriteFile(path, raw, 0o644))
	}
	return dir
}

func setCfg(key string, v any) func(map[string]any) {
	return func(c map[string]any) { c[key] = v }
}

func yarnCfg(extra map[string]any) func(map[string]any) {
	return func(c map[string]any) {
		rs := map[string]any{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16384}
		for k, v := range extra {
			rs[k] = v
		}
		c["rope_scaling"] = rs
	}
}

// TestLoadMLXRejectsBadNumbers holds config.json to the same rules as GGUF metadata (see
// TestLoadRejectsBadModels), reported under the config.json key.
func TestLoadMLXRejectsBadNumbers(t *testing.T) {
	cases := []struct {
		name   string
		editC  func(map[string]any)
		editST func(*mlx.Safetensors)
		want   string
	}{
		{"yarn factor 0", yarnCfg(map[string]any{"factor": 0}), nil,
			"config.json rope_scaling.factor is 0, want a finite number > 0 (yarn rope scaling)"},
		{"negative yarn factor", yarnCfg(map[string]any{"factor": -4}), nil,
			"config.json rope_scaling.factor is -4, want a finite number > 0 (yarn rope scaling)"},
		{"yarn without original context", yarnCfg(map[string]any{"original_max_position_embeddings": 0}), nil,
			"config.json rope_scaling.original_max_position_embeddings is 0 (0 when missing), want 1..16777216"},
		{"negative beta", yarnCfg(map[string]any{"beta_slow": -1}), nil,
			"config.json rope_scaling.beta_slow is -1, want a finite number > 0 (yarn rope scaling)"},
		{"negative attention factor", yarnCfg(map[string]any{"attention_factor": -0.5}), nil,
			"config.json rope_scaling.attention_factor is -0.5, want a finite number >= 0"},
		{"eos id past the embedding", setCfg("eos_token_id", 264), nil,
			"config.json eos_token_id is 264, outside the 264 rows [0,264) of model.embed_tokens"},
		{"bos id in a list past the embedding", setCfg("bos_token_id", []int{9999}), nil,
			"config.json bos_token_id is 9999, outside the 264 rows"},
		{"vocab size below the rows", setCfg("vocab_size", 100), nil,
			"config.json vocab_size is 100, smaller than the 264 rows of model.embed_tokens"},
		{"rms eps below float32", setCfg("rms_norm_eps", 1e-50), nil,
			"config.json rms_norm_eps is 1e-50, which float32 cannot hold"},
		{"NaN in a norm", nil, func(st *mlx.Safetensors) {
			binary.LittleEndian.PutUint16(st.Tensors["model.layers.1.input_layernorm.weight"].Data[2*9:], 0x7e00)
		}, "tensor model.layers.1.input_layernorm.weight: value 9 of 128 is NaN; norm weights must be finite"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeMLXVariant(t, c.editC, c.editST)
			m, err := runtime.Load(dir)
			if err == nil {
				m.Close()
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
			require.True(t, strings.HasPrefix(err.Error(), "model: "+dir+": "), err.Error())
		})
	}
	// The unedited directory loads, so each failure above is the edit's.
	m, err := runtime.Load(writeMLXVariant(t, nil, nil))
	require.NoError(t, err)
	m.Close()
}

// nanModel loads the tiny model with a NaN in layer 1's attention norm, which every position's
// logits inherit.
func nanModel(t *testing.T) *runtime.Model {
	m := loadModel(t, writeVariant(t, nil, nil))
	m.Layers[1].AttnNorm[3] = float32(nan())
	return m
}

func nan() float64 { var z float64; return z / z }

// TestForwardRejectsNaNLogits checks that a forward pass that breaks down is an error naming
// the position, and that the cache does not keep the failed tokens.
func TestForwardRejectsNaNLogits(t *testing.T) {
	m := nanModel(t)
	c := m.NewKVCache(8)
	_, err := m.Forward(c, []int32{1, 2, 3, 4}, false)
	var le *runtime.LogitsError
	require.ErrorAs(t, err, &le)
	require.EqualError(t, err, "runtime: forward pass produced NaN logits at position 3 (id 0)")
	require.Equal(t, 0, c.Len(), "the failed tokens are not committed")
	_, err = m.Forward(c, []int32{1, 2}, true)
	require.EqualError(t, err, "runtime: forward pass produced NaN logits at position 0 (id 0)")
}

// TestGenerateStopsOnNaN checks that generation fails before sampling anything from NaN
// logits (which would be token 0, a NUL byte, printed with success).
func TestGenerateStopsOnNaN(t *testing.T) {
	_, tok := synthModel(t)
	m := nanModel(t)
	s, err := runtime.NewCPU(m).NewSession(32)
	require.NoError(t, err)
	var emitted []string
	_, err = runtime.Generate(t.Context(), s, tok, []int32{1, 2, 3}, runtime.GenerateOptions{MaxTokens: 4},
		func(text string) error { emitted = append(emitted, text); return nil })
	require.EqualError(t, err, "runtime: forward pass produced NaN logits at position 2 (id 0)")
	require.Empty(t, emitted)

	// A session that does not check its logits itself (as another backend might not) is
	// caught by Generate before sampling.
	_, err = runtime.Generate(t.Context(), &uncheckedSession{vocab: m.Vocab}, tok, []int32{1, 2, 3},
		runtime.GenerateOptions{MaxTokens: 4}, func(text string) error { emitted = append(emitted, text); return nil })
	require.EqualError(t, err, "runtime: forward pass produced NaN logits at position 2 (id 0)")
	require.Empty(t, emitted)
}

// uncheckedSession returns NaN logits for every forward.
type uncheckedSession struct{ n, vocab int }

func (s *uncheckedSession) Forward(tokens []int32, all bool) ([]float32, error) {
	s.n += len(tokens)
	out := make([]float32, s.vocab)
	for i := range out {
		out[i] = float32(nan())
	}
	return out, nil
}
func (s *uncheckedSession) Len() int       { return s.n }
func (s *uncheckedSession) Close() error   { return nil }
func (s *uncheckedSession) Max() int       { return 32 }
func (s *uncheckedSession) Truncate(n int) { s.n = min(s.n, n) }

func TestCheckLogits(t *testing.T) {
	require.NoError(t, runtime.CheckLogits([]float32{0, -1e30, 3.5, 1e30}, 2, 0))
	inf := float32(1e30)
	inf *= inf
	err := runtime.CheckLogits([]float32{0, 1, 2, 3, 4, inf}, 3, 10)
	require.EqualError(t, err, "runtime: forward pass produced +Inf logits at position 11 (id 2)")
	err = runtime.CheckLogits([]float32{0, -inf}, 2, 0)
	require.EqualError(t, err, "runtime: forward pass produced -Inf logits at position 0 (id 1)")
}
