package gguf

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
)

// Facts below come from /work/shared/oracle/README.md and docs/FORMATS.md §4.

// nQwen3Tensors is the tensor count of a 2-layer untied Qwen3 file: 11 per layer (docs/FORMATS.md §4.1:
// attn_norm, attn_q/k/v, attn_q_norm, attn_k_norm, attn_output, ffn_norm, ffn_gate/up/down) plus
// token_embd, output_norm and output.
const nQwen3Tensors = 2*11 + 3

// checkQwen3Tensors checks names, the type rule (norms F32, every matrix Q1_0) and the byte sizes.
func checkQwen3Tensors(t *testing.T, f *File, hidden, ffn, qDim, kvDim, vocab uint64, tied bool) {
	t.Helper()
	want := nQwen3Tensors
	if tied {
		want--
	}
	require.Len(t, f.Tensors, want)
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if strings.HasSuffix(ti.Name, "norm.weight") {
			require.Equal(t, TypeF32, ti.Type, ti.Name)
			require.Len(t, ti.Dims, 1, ti.Name)
		} else {
			require.Equal(t, TypeQ1_0, ti.Type, ti.Name)
			require.Len(t, ti.Dims, 2, ti.Name)
		}
		require.Equal(t, wantSize(ti.Dims, ti.Type), ti.Size, ti.Name)
		require.Len(t, f.Data(ti), int(ti.Size))
	}
	shapes := map[string][]uint64{
		"token_embd.weight":        {hidden, vocab},
		"blk.0.attn_norm.weight":   {hidden},
		"blk.1.attn_q.weight":      {hidden, qDim},
		"blk.1.attn_k.weight":      {hidden, kvDim},
		"blk.0.attn_v.weight":      {hidden, kvDim},
		"blk.0.attn_output.weight": {qDim, hidden},
		"blk.1.ffn_gate.weight":    {hidden, ffn},
		"blk.1.ffn_up.weight":      {hidden, ffn},
		"blk.0.ffn_down.weight":    {ffn, hidden},
		"output_norm.weight":       {hidden},
	}
	if !tied {
		shapes["output.weight"] = []uint64{hidden, vocab}
	}
	for name, dims := range shapes {
		ti, ok := f.Tensor(name)
		require.True(t, ok, name)
		require.Equal(t, dims, ti.Dims, name)
	}
	_, ok := f.Tensor("output.weight")
	require.Equal(t, !tied, ok, "output.weight present only when untied")
}

func requireUint(t *testing.T, f *File, key string, want uint64) {
	t.Helper()
	got, ok := f.Uint(key)
	require.True(t, ok, key)
	require.Equal(t, want, got, key)
}

func requireString(t *testing.T, f *File, key, want string) {
	t.Helper()
	got, ok := f.String(key)
	require.True(t, ok, key)
	require.Equal(t, want, got, key)
}

// checkRewrite asserts that writing the parsed file back reproduces it byte for byte: the oracle
// files keep KV order and types, lay tensors out contiguously in info order, and pad every tensor
// (including the last) with zeros, exactly as Write does.
func checkRewrite(t *testing.T, f *File) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, f.KV, writeTensorsOf(f)))
	require.True(t, bytes.Equal(f.Bytes(), buf.Bytes()), "rewrite differs from the original")
}

func TestOracleTiny(t *testing.T) {
	for _, tc := range []struct {
		file string
		tied bool
	}{{"tiny-q1.gguf", false}, {"tiny-q1-tied.gguf", true}} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := Open(testenv.Shared(t, "oracle", tc.file))
			require.NoError(t, err)
			defer f.Close()
			require.Equal(t, uint32(3), f.Version)
			requireString(t, f, "general.architecture", "qwen3")
			requireUint(t, f, "qwen3.embedding_length", 128)
			requireUint(t, f, "qwen3.block_count", 2)
			requireUint(t, f, "qwen3.feed_forward_length", 256)
			requireUint(t, f, "qwen3.attention.head_count", 2)
			requireUint(t, f, "qwen3.attention.head_count_kv", 1)
			requireUint(t, f, "qwen3.attention.key_length", 64)
			requireUint(t, f, "qwen3.context_length", 256)
			requireUint(t, f, "general.file_type", 40)
			requireUint(t, f, "tokenizer.ggml.eos_token_id", 261)
			requireUint(t, f, "tokenizer.ggml.bos_token_id", 259)
			requireUint(t, f, "tokenizer.ggml.padding_token_id", 259)
			requireString(t, f, "tokenizer.ggml.model", "gpt2")
			requireString(t, f, "tokenizer.ggml.pre", "qwen2")
			kv, ok := f.Get(AlignmentKey)
			require.True(t, ok, "the tiny files carry general.alignment")
			require.Equal(t, KV{Key: AlignmentKey, Type: ValueUint32, Value: uint32(32)}, kv)
			require.Equal(t, uint64(32), f.Alignment)
			for _, k := range []string{"qwen3.rope.scaling.type", "qwen3.rope.scaling.factor"} {
				_, ok := f.Get(k)
				require.False(t, ok, "no rope scaling keys in the tiny models: %s", k)
			}
			tokens, ok := f.Strings("tokenizer.ggml.tokens")
			require.True(t, ok)
			require.Len(t, tokens, 262)
			require.Equal(t, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}, tokens[259:])
			merges, ok := f.Strings("tokenizer.ggml.merges")
			require.True(t, ok)
			require.Equal(t, []string{"\u0120 t", "h e", "\u0120t he"}, merges)
			types, ok := f.Int32s("tokenizer.ggml.token_type")
			require.True(t, ok)
			require.Equal(t, []int32{3, 3, 3}, types[259:], "control tokens")
			checkQwen3Tensors(t, f, 128, 256, 2*64, 64, 262, tc.tied)
			checkRewrite(t, f)
		})
	}
}

func TestOracleTiedMatchesUntied(t *testing.T) {
	untied, err := Open(testenv.Shared(t, "oracle", "tiny-q1.gguf"))
	require.NoError(t, err)
	defer untied.Close()
	tied, err := Open(testenv.Shared(t, "oracle", "tiny-q1-tied.gguf"))
	require.NoError(t, err)
	defer tied.Close()
	// "exactly the same tensors as tiny-q1.gguf except that output.weight is missing"
	require.Equal(t, untied.KV, tied.KV)
	for i := range tied.Tensors {
		a := &tied.Tensors[i]
		b, ok := untied.Tensor(a.Name)
		require.True(t, ok, a.Name)
		require.Equal(t, b.Dims, a.Dims)
		require.Equal(t, b.Type, a.Type)
		require.Equal(t, untied.Data(b), tied.Data(a), a.Name)
	}
}

func TestOracleQwen3Vocab(t *testing.T) {
	path := testenv.Shared(t, "oracle", "qwen3vocab-q1.gguf")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	f, err := Parse(data)
	require.NoError(t, err)
	requireString(t, f, "general.architecture", "qwen3")
	requireUint(t, f, "qwen3.embedding_length", 128)
	requireUint(t, f, "qwen3.feed_forward_length", 384)
	requireUint(t, f, "qwen3.attention.key_length", 128)
	requireUint(t, f, "qwen3.context_length", 65536)
	requireUint(t, f, "general.file_type", 41)
	requireString(t, f, "qwen3.rope.scaling.type", "yarn")
	factor, ok := f.Float("qwen3.rope.scaling.factor")
	require.True(t, ok)
	require.Equal(t, 4.0, factor)
	requireUint(t, f, "qwen3.rope.scaling.original_context_length", 16384)
	eps, ok := f.Float("qwen3.attention.layer_norm_rms_epsilon")
	require.True(t, ok)
	require.Equal(t, float64(float32(1e-6)), eps)
	_, ok = f.Get(AlignmentKey)
	require.False(t, ok, "general.alignment is absent here")
	require.Equal(t, uint64(DefaultAlignment), f.Alignment)

	tokens, ok := f.Strings("tokenizer.ggml.tokens")
	require.True(t, ok)
	require.Len(t, tokens, 151669)
	require.Equal(t, "<|endoftext|>", tokens[151643])
	require.Equal(t, "<|im_end|>", tokens[151645])
	require.Equal(t, "<think>", tokens[151667])
	require.Equal(t, "</s>", tokens[128247])
	merges, ok := f.Strings("tokenizer.ggml.merges")
	require.True(t, ok)
	require.Len(t, merges, 151387)
	require.Equal(t, "\u0120 \u0120", merges[0], "docs/FORMATS.md §4.2 example")
	types, ok := f.Int32s("tokenizer.ggml.token_type")
	require.True(t, ok)
	require.Len(t, types, 151669)
	require.Equal(t, int32(1), types[0])
	require.Equal(t, int32(3), types[151645], "<|im_end|> is control")
	require.Equal(t, int32(4), types[151667], "<think> is user-defined")
	requireUint(t, f, "tokenizer.ggml.eos_token_id", 151645)
	requireUint(t, f, "tokenizer.ggml.bos_token_id", 151643)
	addBOS, ok := f.Bool("tokenizer.ggml.add_bos_token")
	require.True(t, ok)
	require.False(t, addBOS)
	tmpl, ok := f.String("tokenizer.chat_template")
	require.True(t, ok)
	require.Contains(t, tmpl, "<|im_start|>")

	checkQwen3Tensors(t, f, 128, 384, 2*128, 128, 151669, false)
	checkRewrite(t, f)
}
