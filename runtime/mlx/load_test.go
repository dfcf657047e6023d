package mlx

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// tinyConfig is a 2-layer Qwen3 whose attention width (2 heads x 128) differs from hidden (128).
func tinyConfig() Config {
	return Config{
		ModelType: "qwen3", Architectures: []string{"Qwen3ForCausalLM"},
		HiddenSize: 128, IntermediateSize: 256, NumHiddenLayers: 2,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, HeadDim: 128,
		RMSNormEps: 1e-6, RopeTheta: 1e6, MaxPositionEmbeddings: 4096, VocabSize: 12,
		RopeScaling:  &RopeScaling{Type: "yarn", Factor: 4, OriginalMaxPositionEmbeddings: 16384},
		Quantization: Quantization{GroupSize: 128, Bits: 1},
		BOSTokenID:   -1, EOSTokenID: 11,
	}
}

const tinyVocab = 12

// tinyModel is a generated model: the tensors to write and what Open must give back.
type tinyModel struct {
	cfg     Config
	tensors []*Tensor
	mats    map[string]*q1.Matrix // source matrices (GGUF Q1_0 storage)
	vecs    map[string][]float32
}

// newTiny builds random matrices in GGUF Q1_0 storage, with d on a 1/1024 grid in [1/64, 1/8]
// (exact in f16 and bf16), and norms on a 1/128 grid in [0.5, 1.5].
func newTiny(t *testing.T, dtype string, seed uint64) *tinyModel {
	rng := rand.New(rand.NewPCG(seed, 1))
	c := tinyConfig()
	m := &tinyModel{cfg: c, mats: map[string]*q1.Matrix{}, vecs: map[string][]float32{}}
	addMat := func(prefix string, rows, cols int) {
		data := make([]byte, rows*cols/128*q1.BlockBytes) // (rows, cols/128) blocks
		for b := 0; b < len(data); b += q1.BlockBytes {
			d := float32(16+rng.IntN(113)) / 1024
			binary.LittleEndian.PutUint16(data[b:], q1.F32ToF16(d))
			for i := 2; i < q1.BlockBytes; i++ {
				data[b+i] = byte(rng.Uint32())
			}
		}
		mat, err := q1.FromQ1_0(prefix, rows, cols, data)
		require.NoError(t, err)
		ts, err := MatrixTensors(prefix, mat, dtype)
		require.NoError(t, err)
		m.mats[prefix] = mat
		m.tensors = append(m.tensors, ts...)
	}
	addVec := func(name string, n int) {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(64+rng.IntN(129)) / 128
		}
		tn, err := VectorTensor(name, v, dtype)
		require.NoError(t, err)
		m.vecs[name] = v
		m.tensors = append(m.tensors, tn)
	}
	h, q, kv, ff := c.HiddenSize, c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim, c.IntermediateSize
	addMat("model.embed_tokens", tinyVocab, h)
	addMat("lm_head", tinyVocab, h)
	addVec("model.norm.weight", h)
	for l := 0; l < c.NumHiddenLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		addMat(p+"self_attn.q_proj", q, h)
		addMat(p+"self_attn.k_proj", kv, h)
		addMat(p+"self_attn.v_proj", kv, h)
		addMat(p+"self_attn.o_proj", h, q)
		addMat(p+"mlp.gate_proj", ff, h)
		addMat(p+"mlp.up_proj", ff, h)
		addMat(p+"mlp.down_proj", h, ff)
		addVec(p+"input_layernorm.weight", h)
		addVec(p+"post_attention_layernorm.weight", h)
		addVec(p+"self_attn.q_norm.weight", c.HeadDim)
		addVec(p+"self_attn.k_norm.weight", c.HeadDim)
	}
	return m
}

func (m *tinyModel) tensor(name string) *Tensor {
	for _, t := range m.tensors {
		if t.Name == name {
			return t
		}
	}
	panic("no tensor " + name) // test bug
}

func (m *tinyModel) drop(name string) {
	m.tensors = slices.DeleteFunc(m.tensors, func(t *Tensor) bool { return t.Name == name })
}

// requireSame checks that a loaded model holds exactly the generated weights.
func requireSame(t *testing.T, want *tinyModel, got *Model) {
	require.Equal(t, want.cfg, got.Config)
	require.Len(t, got.Matrices, len(want.mats))
	for name, w := range want.mats {
		g := got.Matrices[name]
		require.NotNil(t, g, name)
		require.Equal(t, [3]int{w.Rows, w.Cols, w.Groups}, [3]int{g.Rows, g.Cols, g.Groups}, name)
		for r := 0; r < w.Rows; r++ {
			for gi := 0; gi < w.Groups; gi++ {
				require.Equal(t, w.Scale(r, gi), g.Scale(r, gi), "%s row %d group %d", name, r, gi)
				require.Equal(t, w.GroupSigns(r, gi), g.GroupSigns(r, gi), "%s row %d group %d", name, r, gi)
			}
		}
	}
	require.Equal(t, want.vecs, got.Vectors)
}

func TestWriteDirOpen(t *testing.T) {
	for _, dtype := range []string{"F16", "BF16"} {
		t.Run(dtype, func(t *testing.T) {
			tiny := newTiny(t, dtype, 7)
			dir := t.TempDir()
			tok, tokCfg := []byte(`{"model":{}}`), []byte(`{"add_bos_token":false}`)
			require.NoError(t, WriteDir(dir, tiny.cfg, tiny.tensors, tok, tokCfg))

			// The MLX encoding itself: scales = 2d and biases = -d (docs/FORMATS.md §8.4).
			decode := map[string]func(uint16) float32{"F16": q1.F16ToF32, "BF16": q1.BF16ToF32}[dtype]
			src := tiny.mats["model.layers.0.mlp.down_proj"]
			s, b := tiny.tensor("model.layers.0.mlp.down_proj.scales"), tiny.tensor("model.layers.0.mlp.down_proj.biases")
			for i := 0; i < src.Rows*src.Groups; i++ {
				d := src.Scale(i/src.Groups, i%src.Groups)
				require.Equal(t, 2*d, decode(binary.LittleEndian.Uint16(s.Data[2*i:])))
				require.Equal(t, -d, decode(binary.LittleEndian.Uint16(b.Data[2*i:])))
			}

			m, err := Open(dir)
			require.NoError(t, err)
			defer m.Close()
			requireSame(t, tiny, m)
			require.Equal(t, tok, m.TokenizerJSON)
			require.Equal(t, tokCfg, m.TokenizerConfigJSON)
			fi, err := os.Stat(filepath.Join(dir, WeightsFile))
			require.NoError(t, err)
			require.Equal(t, fi.Size(), m.Size)

			// Flipping a bit changes the mapping, which the matrix aliases, but never the file.
			before, err := os.ReadFile(filepath.Join(dir, WeightsFile))
			require.NoError(t, err)
			up := m.Matrices["model.layers.1.mlp.up_proj"]
			w0 := up.Weight(5, 130)
			up.Flip(5, -1, 130)
			require.Equal(t, -w0, up.Weight(5, 130))
			st, err := ParseSafetensors(m.maps[0])
			require.NoError(t, err)
			require.NotEqual(t, tiny.tensor("model.layers.1.mlp.up_proj.weight").Data, st.Tensors["model.layers.1.mlp.up_proj.weight"].Data)
			after, err := os.ReadFile(filepath.Join(dir, WeightsFile))
			require.NoError(t, err)
			require.Equal(t, before, after)

			require.NoError(t, m.Close())
			require.NoError(t, m.Close(), "Close twice")
		})
	}
}

// writeSharded rewrites dir's weights as two shards plus an index, removing model.safetensors.
func writeSharded(t *testing.T, dir string, tiny *tinyModel) map[string]string {
	shards := [2][]*Tensor{}
	where := map[string]string{}
	names := []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
	for _, tn := range tiny.tensors {
		i := 0
		if strings.HasPrefix(tn.Name, "model.layers.1.") || strings.HasPrefix(tn.Name, "lm_head") {
			i = 1
		}
		shards[i] = append(shards[i], tn)
		where[tn.Name] = names[i]
	}
	for i, ts := range shards {
		require.NoError(t, WriteSafetensors(filepath.Join(dir, names[i]), ts, map[string]string{"format": "mlx"}))
	}
	writeIndex(t, dir, where)
	require.NoError(t, os.Remove(filepath.Join(dir, WeightsFile)))
	return where
}

func writeIndex(t *testing.T, dir string, where map[string]string) {
	raw, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": where})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, IndexFile), raw, 0o644))
}

func TestOpenSharded(t *testing.T) {
	tiny := newTiny(t, "F16", 8)
	dir := t.TempDir()
	require.NoError(t, WriteDir(dir, tiny.cfg, tiny.tensors, nil, nil))
	writeSharded(t, dir, tiny)
	m, err := Open(dir)
	require.NoError(t, err)
	defer m.Close()
	requireSame(t, tiny, m)
	require.Nil(t, m.TokenizerJSON)
	require.Nil(t, m.TokenizerConfigJSON)
	var size int64
	for _, f := range []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		size += fi.Size()
	}
	require.Equal(t, size, m.Size)
}

func TestOpenTied(t *testing.T) {
	tiny := newTiny(t, "F16", 9)
	tiny.cfg.TieWordEmbeddings = true
	for _, suf := range []string{".weight", ".scales", ".biases"} {
		tiny.drop("lm_head" + suf)
	}
	delete(tiny.mats, "lm_head")
	dir := t.TempDir()
	require.NoError(t, WriteDir(dir, tiny.cfg, tiny.tensors, nil, nil))
	m, err := Open(dir)
	require.NoError(t, err)
	defer m.Close()
	requireSame(t, tiny, m)
}
