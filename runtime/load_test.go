package runtime_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/gguf"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

// writeVariant writes the tiny synthetic model with its metadata and tensors edited.
func writeVariant(t *testing.T, editKV func([]gguf.KV) []gguf.KV, editT func([]gguf.WriteTensor) []gguf.WriteTensor) string {
	t.Helper()
	s := synth.Tiny()
	ts := s.GGUFTensors()
	kv := s.KVs()
	if editKV != nil {
		kv = editKV(kv)
	}
	if editT != nil {
		ts = editT(ts)
	}
	p := filepath.Join(t.TempDir(), "m.gguf")
	require.NoError(t, gguf.WriteFile(p, kv, ts))
	return p
}

func setKV(key string, v any) func([]gguf.KV) []gguf.KV {
	return func(kv []gguf.KV) []gguf.KV {
		for i := range kv {
			if kv[i].Key == key {
				if v == nil {
					return append(kv[:i:i], kv[i+1:]...)
				}
				kv[i] = gguf.NewKV(key, v)
				return kv
			}
		}
		return append(kv, gguf.NewKV(key, v))
	}
}

func dropTensor(name string) func([]gguf.WriteTensor) []gguf.WriteTensor {
	return func(ts []gguf.WriteTensor) []gguf.WriteTensor {
		for i := range ts {
			if ts[i].Name == name {
				return append(ts[:i:i], ts[i+1:]...)
			}
		}
		panic("no tensor " + name)
	}
}

func editTensor(name string, f func(*gguf.WriteTensor)) func([]gguf.WriteTensor) []gguf.WriteTensor {
	return func(ts []gguf.WriteTensor) []gguf.WriteTensor {
		for i := range ts {
			if ts[i].Name == name {
				f(&ts[i])
			}
		}
		return ts
	}
}

func TestLoadRejectsBadModels(t *testing.T) {
	cases := []struct {
		name   string
		editKV func([]gguf.KV) []gguf.KV
		editT  func([]gguf.WriteTensor) []gguf.WriteTensor
		want   string
	}{
		{"wrong architecture", setKV("general.architecture", "llama"), nil, `architecture "llama" is not supported`},
		{"missing block count", setKV("qwen3.block_count", nil), nil, "missing metadata key qwen3.block_count"},
		{"absurd block count", setKV("qwen3.block_count", uint32(1<<30)), nil, "qwen3.block_count = 1073741824 out of range"},
		{"more layers than tensors", setKV("qwen3.block_count", uint32(3)), nil, "missing tensor blk.2.attn_norm.weight"},
		{"heads not multiple of kv heads", setKV("qwen3.attention.head_count_kv", uint32(3)), nil, "tensor blk.0.attn_k.weight has shape"},
		{"hidden size disagrees with tensors", setKV("qwen3.embedding_length", uint32(256)), nil, "tensor token_embd.weight has shape [128 264], want [256"},
		{"missing required tensor", nil, dropTensor("blk.1.ffn_down.weight"), "missing tensor blk.1.ffn_down.weight"},
		{"missing norm", nil, dropTensor("output_norm.weight"), "missing tensor output_norm.weight"},
		{"norm of wrong length", nil, editTensor("blk.0.ffn_norm.weight", func(w *gguf.WriteTensor) {
			w.Dims, w.Data = []uint64{64}, w.Data[:256]
		}), "tensor blk.0.ffn_norm.weight has shape [64], want [128]"},
		{"matrix stored as F32", nil, editTensor("blk.0.attn_q.weight", func(w *gguf.WriteTensor) {
			w.Type, w.Data = gguf.TypeF32, make([]byte, 4*w.Dims[0]*w.Dims[1])
		}), "tensor blk.0.attn_q.weight has type F32, want Q1_0"},
		{"mis-shaped projection", nil, editTensor("blk.1.ffn_up.weight", func(w *gguf.WriteTensor) {
			w.Dims[1] /= 2
			w.Data = w.Data[:len(w.Data)/2]
		}), "tensor blk.1.ffn_up.weight has shape [128 192], want [128 384]"},
		{"unsupported rope scaling", setKV("qwen3.rope.scaling.type", "longrope"), nil, `rope scaling "longrope" is not supported`},
		{"yarn without original context", setKV("qwen3.rope.scaling.type", "yarn"), nil, "yarn rope scaling needs qwen3.rope.scaling.factor > 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeVariant(t, c.editKV, c.editT)
			m, err := runtime.Load(p)
			if err == nil {
				m.Close()
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
			require.True(t, strings.HasPrefix(err.Error(), "model: "), err.Error())
		})
	}
}

func TestForwardRejectsBadTokens(t *testing.T) {
	m := loadModel(t, writeVariant(t, nil, nil))
	_, err := m.Forward(m.NewKVCache(8), []int32{1, 264}, false)
	require.ErrorContains(t, err, "token 264 at position 1 out of range [0,264)")
	_, err = m.Forward(m.NewKVCache(1), []int32{1, 2}, false)
	require.ErrorIs(t, err, runtime.ErrContextFull)
}

// TestGGUFAndMLXAreTheSameModel checks that the two loaders build the same in-memory model:
// the same bits and scales give bit-identical logits.
func TestGGUFAndMLXAreTheSameModel(t *testing.T) {
	s := synth.Tiny()
	s.Tied = true
	dir := t.TempDir()
	require.NoError(t, s.WriteGGUF(filepath.Join(dir, "m.gguf")))
	require.NoError(t, s.WriteMLX(filepath.Join(dir, "mlx")))
	g := loadModel(t, filepath.Join(dir, "m.gguf"))
	x := loadModel(t, filepath.Join(dir, "mlx"))
	require.Equal(t, g.Config, x.Config)
	toks := []int32{116, 257, 32, 99, 97, 116, 115}
	a, err := g.Forward(g.NewKVCache(16), toks, true)
	require.NoError(t, err)
	b, err := x.Forward(x.NewKVCache(16), toks, true)
	require.NoError(t, err)
	require.Equal(t, a, b)
	require.NotEqual(t, g.Fingerprint(), x.Fingerprint(), "the fingerprint tells GGUF from MLX")
}

// TestPrefillEqualsDecode checks that a batched prefill and token-by-token decoding through
// the KV cache give the same logits, on a model with YaRN and a GQA ratio of 2.
func TestPrefillEqualsDecode(t *testing.T) {
	s := synth.Tiny()
	s.Yarn = true
	p := filepath.Join(t.TempDir(), "m.gguf")
	require.NoError(t, s.WriteGGUF(p))
	m := loadModel(t, p)
	toks := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	all, err := m.Forward(m.NewKVCache(16), toks, true)
	require.NoError(t, err)
	c := m.NewKVCache(16)
	for i, tok := range toks {
		one, err := m.Forward(c, []int32{tok}, false)
		require.NoError(t, err)
		require.Equal(t, all[i*m.Vocab:(i+1)*m.Vocab], one, "position %d", i)
	}
}
