package runtime_test

import (
	"encoding/binary"
	"math"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/gguf"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
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

// kvs applies several metadata edits in order.
func kvs(edits ...func([]gguf.KV) []gguf.KV) func([]gguf.KV) []gguf.KV {
	return func(kv []gguf.KV) []gguf.KV {
		for _, e := range edits {
			kv = e(kv)
		}
		return kv
	}
}

// yarn declares valid YaRN scaling (factor 4, original context 16384), then applies edit.
func yarn(edit func([]gguf.KV) []gguf.KV) func([]gguf.KV) []gguf.KV {
	return kvs(setKV("qwen3.rope.scaling.type", "yarn"), setKV("qwen3.rope.scaling.factor", float32(4)),
		setKV("qwen3.rope.scaling.original_context_length", uint32(16384)), edit)
}

// setF32 sets value i of an F32 vector.
func setF32(i int, v float32) func(*gguf.WriteTensor) {
	return func(w *gguf.WriteTensor) { binary.LittleEndian.PutUint32(w.Data[4*i:], math.Float32bits(v)) }
}

// setScale sets the fp16 scale d of Q1_0 block b (row-major: row r, group g is r*groups+g).
func setScale(b int, bits uint16) func(*gguf.WriteTensor) {
	return func(w *gguf.WriteTensor) { binary.LittleEndian.PutUint16(w.Data[b*q1.BlockBytes:], bits) }
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
		{"yarn without factor", setKV("qwen3.rope.scaling.type", "yarn"), nil,
			"metadata qwen3.rope.scaling.factor is 0, want a finite number > 0 (yarn rope scaling)"},
		{"yarn without original context", kvs(setKV("qwen3.rope.scaling.type", "yarn"), setKV("qwen3.rope.scaling.factor", float32(4))), nil,
			"metadata qwen3.rope.scaling.original_context_length is 0 (0 when missing), want 1..16777216 (yarn rope scaling)"},
		{"NaN yarn factor", yarn(setKV("qwen3.rope.scaling.factor", float32(math.NaN()))), nil,
			"metadata qwen3.rope.scaling.factor is NaN, want a finite number > 0 (yarn rope scaling)"},
		{"negative yarn beta", yarn(setKV("qwen3.rope.scaling.yarn_beta_fast", float32(-32))), nil,
			"metadata qwen3.rope.scaling.yarn_beta_fast is -32, want a finite number > 0 (yarn rope scaling)"},
		{"infinite yarn attn factor", yarn(setKV("qwen3.rope.scaling.attn_factor", float32(math.Inf(1)))), nil,
			"metadata qwen3.rope.scaling.attn_factor is +Inf, want a finite number >= 0 (yarn rope scaling)"},
		{"yarn with rope base 1", yarn(setKV("qwen3.rope.freq_base", float32(1))), nil,
			"metadata qwen3.rope.freq_base is 1, which yarn rope scaling cannot use"},
		{"NaN rms eps", setKV("qwen3.attention.layer_norm_rms_epsilon", float32(math.NaN())), nil,
			"metadata qwen3.attention.layer_norm_rms_epsilon is NaN, want a finite number > 0"},
		{"rms eps below float32", setKV("qwen3.attention.layer_norm_rms_epsilon", 1e-50), nil,
			"metadata qwen3.attention.layer_norm_rms_epsilon is 1e-50, which float32 cannot hold"},
		{"rms eps as a string", setKV("qwen3.attention.layer_norm_rms_epsilon", "1e-6"), nil,
			"metadata qwen3.attention.layer_norm_rms_epsilon is a string, want a number"},
		{"infinite rope base", setKV("qwen3.rope.freq_base", float32(math.Inf(1))), nil,
			"metadata qwen3.rope.freq_base is +Inf, want a finite number > 0"},
		{"zero rope base", setKV("qwen3.rope.freq_base", float32(0)), nil,
			"metadata qwen3.rope.freq_base is 0, want a finite number > 0"},
		{"eos id past the embedding", setKV("tokenizer.ggml.eos_token_id", uint32(264)), nil,
			"metadata tokenizer.ggml.eos_token_id is 264, outside the 264 rows [0,264) of token_embd.weight"},
		{"negative bos id", setKV("tokenizer.ggml.bos_token_id", int32(-5)), nil,
			"metadata tokenizer.ggml.bos_token_id is -5, outside the 264 rows"},
		{"padding id as a string", setKV("tokenizer.ggml.padding_token_id", "0"), nil,
			"metadata tokenizer.ggml.padding_token_id is a string, want a token id"},
		{"more tokens than rows", setKV("tokenizer.ggml.tokens", make([]string, 300)), nil,
			"metadata tokenizer.ggml.tokens has 300 tokens but token_embd.weight has only 264 rows"},
		{"NaN in a norm", nil, editTensor("blk.1.attn_q_norm.weight", setF32(5, float32(math.NaN()))),
			"tensor blk.1.attn_q_norm.weight: value 5 of 64 is NaN; norm weights must be finite"},
		{"infinity in the output norm", nil, editTensor("output_norm.weight", setF32(127, float32(math.Inf(-1)))),
			"tensor output_norm.weight: value 127 of 128 is -Inf; norm weights must be finite"},
		{"NaN scale", nil, editTensor("blk.0.ffn_up.weight", setScale(3*1+0, 0x7e00)),
			"tensor blk.0.ffn_up.weight: row 3, group 0: scale is NaN (bits 0x7e00); every scale must be finite"},
		{"infinite embedding scale", nil, editTensor("token_embd.weight", setScale(263, 0xfc00)),
			"tensor token_embd.weight: row 263, group 0: scale is -Inf (bits 0xfc00)"},
		{"infinite scale in the LM head", nil, editTensor("output.weight", setScale(7, 0x7c00)),
			"tensor output.weight: row 7, group 0: scale is +Inf (bits 0x7c00)"},
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

// TestLoadBoundsAllocation checks that a block count far past the tensors in the file fails
// without allocating for the layers it claims (16M layers would be gigabytes).
func TestLoadBoundsAllocation(t *testing.T) {
	p := writeVariant(t, setKV("qwen3.block_count", uint32(1<<24)), nil)
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	_, err := runtime.Load(p)
	goruntime.ReadMemStats(&after)
	require.ErrorContains(t, err, "missing tensor blk.2.attn_norm.weight")
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "bytes allocated")
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
