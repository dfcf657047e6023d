package synth

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime/gguf"
	"github.com/bankai-metal/bankai-metal/runtime/mlx"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// ChatTemplate is the ChatML template recorded in synthetic files (the Qwen3 one is used for
// formatting regardless; this only documents the format).
const ChatTemplate = "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"

// KVs returns the GGUF metadata of the model.
func (s Spec) KVs() []gguf.KV {
	tokens, types, merges := Vocabulary(s.Vocab)
	kv := []gguf.KV{
		gguf.NewKV("general.architecture", "qwen3"),
		gguf.NewKV("general.name", s.Name),
		gguf.NewKV("general.alignment", uint32(32)),
		gguf.NewKV("qwen3.block_count", uint32(s.Layers)),
		gguf.NewKV("qwen3.context_length", uint32(s.Context)),
		gguf.NewKV("qwen3.embedding_length", uint32(s.Hidden)),
		gguf.NewKV("qwen3.feed_forward_length", uint32(s.FFN)),
		gguf.NewKV("qwen3.attention.head_count", uint32(s.Heads)),
		gguf.NewKV("qwen3.attention.head_count_kv", uint32(s.KVHeads)),
		gguf.NewKV("qwen3.attention.key_length", uint32(s.HeadDim)),
		gguf.NewKV("qwen3.attention.value_length", uint32(s.HeadDim)),
		gguf.NewKV("qwen3.rope.freq_base", float32(1e6)),
		gguf.NewKV("qwen3.attention.layer_norm_rms_epsilon", float32(1e-6)),
	}
	if s.Yarn {
		kv = append(kv, gguf.NewKV("qwen3.rope.scaling.type", "yarn"),
			gguf.NewKV("qwen3.rope.scaling.factor", float32(4)),
			gguf.NewKV("qwen3.rope.scaling.original_context_length", uint32(16384)))
	}
	return append(kv,
		gguf.NewKV("tokenizer.ggml.model", "gpt2"),
		gguf.NewKV("tokenizer.ggml.pre", "qwen2"),
		gguf.NewKV("tokenizer.ggml.tokens", tokens),
		gguf.NewKV("tokenizer.ggml.token_type", types),
		gguf.NewKV("tokenizer.ggml.merges", merges),
		gguf.NewKV("tokenizer.ggml.eos_token_id", uint32(TokImEnd)),
		gguf.NewKV("tokenizer.ggml.bos_token_id", uint32(TokEndOfText)),
		gguf.NewKV("tokenizer.ggml.padding_token_id", uint32(TokEndOfText)),
		gguf.NewKV("tokenizer.ggml.add_bos_token", false),
		gguf.NewKV("tokenizer.chat_template", ChatTemplate),
	)
}

// WriteGGUF writes the model as a GGUF file (atomically).
func (s Spec) WriteGGUF(path string) error {
	if err := s.Validate(); err != nil {
		return err
	}
	return gguf.WriteFile(path, s.KVs(), s.GGUFTensors())
}

// GGUFTensors returns the tensors in GGUF form: Q1_0 matrices and F32 vectors.
func (s Spec) GGUFTensors() []gguf.WriteTensor {
	var ts []gguf.WriteTensor
	for _, t := range s.Tensors() {
		w := gguf.WriteTensor{Name: t.Name}
		for _, d := range t.Dims {
			w.Dims = append(w.Dims, uint64(d))
		}
		if t.Q1 != nil {
			w.Type, w.Data = gguf.TypeQ1_0, t.Q1
		} else {
			w.Type, w.Data = gguf.TypeF32, f32Bytes(t.F32)
		}
		ts = append(ts, w)
	}
	return ts
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// mlxName maps a GGUF tensor name to its MLX module name.
func mlxName(name string) string {
	var l int
	var rest string
	if _, err := fmt.Sscanf(name, "blk.%d.%s", &l, &rest); err == nil {
		m := map[string]string{
			"attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
			"attn_q_norm.weight": "self_attn.q_norm.weight", "attn_k_norm.weight": "self_attn.k_norm.weight",
		}
		if i, err := patch.ProjIndex(strings.TrimSuffix(rest, ".weight")); err == nil {
			return fmt.Sprintf("model.layers.%d.%s%s", l, mlx.ModulePrefix(i), patch.ProjName(i))
		}
		return fmt.Sprintf("model.layers.%d.%s", l, m[rest])
	}
	return map[string]string{"token_embd.weight": "model.embed_tokens", "output.weight": "lm_head",
		"output_norm.weight": "model.norm.weight"}[name]
}

// WriteMLX writes the same model as an MLX 1-bit directory (weights U32, scales 2d and biases
// -d in F16, norms F16) with a tokenizer.json for the synthetic vocabulary.
func (s Spec) WriteMLX(dir string) error {
	if err := s.Validate(); err != nil {
		return err
	}
	var ts []*mlx.Tensor
	for _, t := range s.Tensors() {
		name := mlxName(t.Name)
		if t.F32 != nil {
			b := make([]byte, 2*len(t.F32))
			for i, x := range t.F32 {
				binary.LittleEndian.PutUint16(b[2*i:], q1.F32ToF16(x))
			}
			ts = append(ts, &mlx.Tensor{Name: name, DType: "F16", Shape: []int64{int64(len(t.F32))}, Data: b})
			continue
		}
		cols, rows := t.Dims[0], t.Dims[1]
		g := cols / q1.GroupSize
		bits := make([]byte, rows*cols/8)
		scales := make([]byte, rows*g*2)
		biases := make([]byte, rows*g*2)
		for i := 0; i < rows*g; i++ {
			blk := t.Q1[i*q1.BlockBytes : (i+1)*q1.BlockBytes]
			copy(bits[i*16:], blk[2:])
			d := q1.F16ToF32(binary.LittleEndian.Uint16(blk))
			binary.LittleEndian.PutUint16(scales[2*i:], q1.F32ToF16(2*d))
			binary.LittleEndian.PutUint16(biases[2*i:], q1.F32ToF16(-d))
		}
		ts = append(ts,
			&mlx.Tensor{Name: name + ".weight", DType: "U32", Shape: []int64{int64(rows), int64(cols / 32)}, Data: bits},
			&mlx.Tensor{Name: name + ".scales", DType: "F16", Shape: []int64{int64(rows), int64(g)}, Data: scales},
			&mlx.Tensor{Name: name + ".biases", DType: "F16", Shape: []int64{int64(rows), int64(g)}, Data: biases})
	}
	cfg := mlx.Config{ModelType: "qwen3", Architectures: []string{"Qwen3ForCausalLM"},
		HiddenSize: s.Hidden, IntermediateSize: s.FFN, NumHiddenLayers: s.Layers, NumAttentionHeads: s.Heads,
		NumKeyValueHeads: s.KVHeads, HeadDim: s.HeadDim, RMSNormEps: 1e-6, RopeTheta: 1e6,
		MaxPositionEmbeddings: s.Context, VocabSize: s.Vocab, TieWordEmbeddings: s.Tied,
		Quantization: mlx.Quantization{GroupSize: 128, Bits: 1}, BOSTokenID: TokEndOfText, EOSTokenID: TokImEnd}
	if s.Yarn {
		cfg.RopeScaling = &mlx.RopeScaling{Type: "yarn", Factor: 4, OriginalMaxPositionEmbeddings: 16384}
	}
	tj, tc, err := s.TokenizerJSON()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return mlx.WriteDir(filepath.Clean(dir), cfg, ts, tj, tc)
}

// TokenizerJSON renders the synthetic vocabulary as Hugging Face tokenizer.json and
// tokenizer_config.json files (what WriteMLX writes beside the weights).
func (s Spec) TokenizerJSON() (tok, cfg []byte, err error) {
	tokens, types, merges := Vocabulary(s.Vocab)
	vocab := map[string]int{}
	var added []map[string]any
	for i, t := range tokens {
		if types[i] == 3 || types[i] == 4 {
			added = append(added, map[string]any{"id": i, "content": t, "single_word": false, "lstrip": false,
				"rstrip": false, "normalized": false, "special": types[i] == 3})
			continue
		}
		if types[i] == 1 {
			vocab[t] = i
		}
	}
	pairs := make([][2]string, len(merges))
	for i, m := range merges {
		fmt.Sscanf(m, "%s %s", &pairs[i][0], &pairs[i][1])
	}
	pattern := `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	doc := map[string]any{
		"version":      "1.0",
		"added_tokens": added,
		"normalizer":   map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}}},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": pairs},
	}
	if tok, err = json.Marshal(doc); err != nil {
		return nil, nil, err
	}
	cfg, err = json.Marshal(map[string]any{"add_bos_token": false, "bos_token": nil, "eos_token": "<|im_end|>",
		"pad_token": "<|endoftext|>", "chat_template": ChatTemplate, "model_max_length": s.Context})
	return tok, cfg, err
}
