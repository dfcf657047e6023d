package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/gguf"
	"github.com/bankai-metal/bankai-metal/runtime/mlx"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// The two formats. Each reads its metadata into a Config and a declared, and looks up the
// layout's tensors (qwen3.go) by the names its files give them; bind does the rest.

// Load opens a Bonsai model: a GGUF file or an MLX 1-bit directory.
func Load(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if st.IsDir() {
		return LoadMLX(path)
	}
	return LoadGGUF(path)
}

// tokSource remembers where the tokenizer lives.
type tokSource struct {
	gguf             *gguf.File
	json, configJSON []byte
}

// LoadGGUF opens a GGUF file (Q1_0 matrices, F32/F16/BF16 norms).
func LoadGGUF(path string) (*Model, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m, err := bindGGUF(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	m.Source.Path = path
	return m, nil
}

func bindGGUF(f *gguf.File) (*Model, error) {
	c, d, err := ggufConfig(f)
	if err != nil {
		return nil, err
	}
	m, err := bind(c, d, ggufTensors{f})
	if err != nil {
		return nil, err
	}
	types := map[string]int{}
	for _, t := range f.Tensors {
		types[t.Type.String()]++
	}
	name, _ := f.String("general.name")
	note, _ := f.String(PatchNoteKey)
	m.Source = Source{Format: "gguf", Size: f.Size, Name: name, TensorTypes: types, PatchNote: note, tok: tokSource{gguf: f}}
	m.closer = f
	return m, nil
}

// ggufConfig reads the hyper-parameters, and the numbers validate checks, from the metadata.
func ggufConfig(f *gguf.File) (Config, declared, error) {
	arch, _ := f.String("general.architecture")
	if arch != "qwen3" {
		return Config{}, declared{}, fmt.Errorf("architecture %q is not supported (want qwen3)", arch)
	}
	u := func(key string, def int) (int, error) {
		v, ok := f.Uint(arch + "." + key)
		if !ok {
			if def >= 0 {
				return def, nil
			}
			return 0, fmt.Errorf("missing metadata key %s.%s", arch, key)
		}
		if v == 0 || v > 1<<24 {
			return 0, fmt.Errorf("metadata %s.%s = %d out of range", arch, key, v)
		}
		return int(v), nil
	}
	// fl reads a float; a key that is present but not a number is an error, never the default.
	var flErr error
	fl := func(key string, def float64) float64 {
		kv, ok := f.Get(arch + "." + key)
		if !ok {
			return def
		}
		v, ok := f.Float(kv.Key)
		if !ok && flErr == nil {
			flErr = fmt.Errorf("metadata %s is a %s, want a number", kv.Key, kv.Type)
		}
		return v
	}
	c := Config{Arch: arch}
	d := declared{keys: ggufKeys, tokens: -1, scaleTensor: func(name string) string { return name }}
	var err error
	if c.NLayers, err = u("block_count", -1); err != nil {
		return c, d, err
	}
	if c.Hidden, err = u("embedding_length", -1); err != nil {
		return c, d, err
	}
	if c.FFN, err = u("feed_forward_length", -1); err != nil {
		return c, d, err
	}
	if c.Heads, err = u("attention.head_count", -1); err != nil {
		return c, d, err
	}
	if c.KVHeads, err = u("attention.head_count_kv", c.Heads); err != nil {
		return c, d, err
	}
	if c.HeadDim, err = u("attention.key_length", c.Hidden/c.Heads); err != nil {
		return c, d, err
	}
	if c.Context, err = u("context_length", 0); err != nil {
		return c, d, err
	}
	d.rmsEps = fl("attention.layer_norm_rms_epsilon", 1e-6)
	c.RMSEps = float32(d.rmsEps)
	c.Rope = cpu.Rope{Dim: c.HeadDim, Base: fl("rope.freq_base", 10000), BetaFast: 32, BetaSlow: 1}
	if t, _ := f.String(arch + ".rope.scaling.type"); t == "yarn" {
		d.yarn = true
		c.Rope.Factor = fl("rope.scaling.factor", 0)
		if orig, ok := f.Uint(arch + ".rope.scaling.original_context_length"); ok {
			c.Rope.OrigContext = int(min(orig, maxContext+1))
		}
		c.Rope.BetaFast = fl("rope.scaling.yarn_beta_fast", 32)
		c.Rope.BetaSlow = fl("rope.scaling.yarn_beta_slow", 1)
		c.Rope.AttnFactor = fl("rope.scaling.attn_factor", 1)
	} else if t != "" && t != "none" && t != "linear" {
		return c, d, fmt.Errorf("rope scaling %q is not supported", t)
	}
	if flErr != nil {
		return c, d, flErr
	}
	if v, ok := f.Uint(arch + ".rope.dimension_count"); ok && int(v) != c.HeadDim {
		return c, d, fmt.Errorf("partial rotary width %d (head dim %d) is not supported", v, c.HeadDim)
	}
	for _, key := range []string{"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id"} {
		if kv, ok := f.Get(key); ok {
			id, ok := f.Int(key)
			if !ok {
				return c, d, fmt.Errorf("metadata %s is a %s, want a token id", key, kv.Type)
			}
			d.ids = append(d.ids, declaredID{"metadata " + key, id})
		}
	}
	if toks, ok := f.Strings("tokenizer.ggml.tokens"); ok {
		d.tokens = len(toks)
	}
	return c, d, nil
}

// ggufKeys names the metadata keys of the numbers validate checks.
var ggufKeys = fileKeys{
	rmsEps:          "metadata qwen3.attention.layer_norm_rms_epsilon",
	ropeBase:        "metadata qwen3.rope.freq_base",
	yarnFactor:      "metadata qwen3.rope.scaling.factor",
	yarnOrigContext: "metadata qwen3.rope.scaling.original_context_length",
	yarnBetaFast:    "metadata qwen3.rope.scaling.yarn_beta_fast",
	yarnBetaSlow:    "metadata qwen3.rope.scaling.yarn_beta_slow",
	yarnAttn:        "metadata qwen3.rope.scaling.attn_factor",
	tokens:          "metadata tokenizer.ggml.tokens",
}

// ggufNaming is the GGUF names of the layout (docs/FORMATS.md §4.1): token_embd.weight,
// blk.3.attn_norm.weight, blk.3.ffn_up.weight, output_norm.weight, output.weight.
var ggufNaming = naming{layer: "blk.%d.", proj: Proj.GGUFName, stem: [numRoles]string{
	roleEmbed: "token_embd", roleAttnNorm: "attn_norm", roleQNorm: "attn_q_norm", roleKNorm: "attn_k_norm",
	roleFFNNorm: "ffn_norm", roleOutNorm: "output_norm", roleOutput: "output"}}

// ggufTensors looks up the layout's tensors in a GGUF file. GGUF dims are (cols, rows).
type ggufTensors struct{ f *gguf.File }

func (ggufTensors) name(w weight) string { return ggufNaming.name(w) }

func (g ggufTensors) matrix(w weight, rows, cols int) (*q1.Matrix, error) {
	name := g.name(w)
	t, ok := g.f.Tensor(name)
	if !ok {
		if w.role == roleOutput {
			return nil, nil // no output.weight: the head is the embedding
		}
		return nil, fmt.Errorf("missing tensor %s", name)
	}
	if t.Type != gguf.TypeQ1_0 {
		return nil, fmt.Errorf("tensor %s has type %s, want Q1_0", name, t.Type)
	}
	if len(t.Dims) != 2 || t.Dims[0] != uint64(cols) || (rows > 0 && t.Dims[1] != uint64(rows)) {
		return nil, fmt.Errorf("tensor %s has shape %v, want [%d %d]", name, t.Dims, cols, rows)
	}
	return q1.FromQ1_0(name, int(t.Dims[1]), cols, g.f.Data(t))
}

func (g ggufTensors) vector(w weight, n int) ([]float32, error) {
	name := g.name(w)
	t, ok := g.f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("missing tensor %s", name)
	}
	if len(t.Dims) != 1 || t.Dims[0] != uint64(n) {
		return nil, fmt.Errorf("tensor %s has shape %v, want [%d]", name, t.Dims, n)
	}
	return floats(name, t.Type.String(), g.f.Data(t), n)
}

// floats converts a small F32/F16/BF16 vector.
func floats(name, typ string, b []byte, n int) ([]float32, error) {
	out := make([]float32, n)
	switch typ {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "F16":
		for i := range out {
			out[i] = q1.F16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = q1.BF16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	default:
		return nil, fmt.Errorf("tensor %s has type %s, want F32, F16 or BF16", name, typ)
	}
	return out, nil
}

// LoadMLX opens an MLX 1-bit directory.
func LoadMLX(dir string) (*Model, error) {
	d, err := mlx.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m, err := bindMLX(d)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("model: %s: %w", dir, err)
	}
	m.Source.Path = dir
	return m, nil
}

func bindMLX(d *mlx.Model) (*Model, error) {
	c, dc, err := mlxConfig(d.Config)
	if err != nil {
		return nil, err
	}
	m, err := bind(c, dc, mlxTensors{d})
	if err != nil {
		return nil, err
	}
	m.Source = Source{Format: "mlx", Size: d.Size, Name: filepath.Base(d.Dir),
		TensorTypes: map[string]int{"Q1_0(mlx)": len(d.Matrices), "norm": len(d.Vectors)},
		tok:         tokSource{json: d.TokenizerJSON, configJSON: d.TokenizerConfigJSON}}
	if note, err := os.ReadFile(filepath.Join(d.Dir, PatchNoteFile)); err == nil {
		m.Source.PatchNote = string(note)
	}
	m.closer, m.mlx = d, d
	return m, nil
}

// mlxConfig reads the hyper-parameters, and the numbers validate checks, from config.json.
func mlxConfig(mc mlx.Config) (Config, declared, error) {
	if mc.ModelType != "qwen3" {
		return Config{}, declared{}, fmt.Errorf("config.json model_type %q is not supported (want qwen3)", mc.ModelType)
	}
	// ParseConfig has checked the sizes (head_dim filled in, heads a multiple of kv heads) and
	// that rms_norm_eps and rope_theta are present and positive.
	c := Config{Arch: "qwen3", NLayers: mc.NumHiddenLayers, Hidden: mc.HiddenSize, FFN: mc.IntermediateSize,
		Heads: mc.NumAttentionHeads, KVHeads: mc.NumKeyValueHeads, HeadDim: mc.HeadDim, Context: mc.MaxPositionEmbeddings,
		RMSEps: float32(mc.RMSNormEps), Rope: cpu.Rope{Dim: mc.HeadDim, Base: mc.RopeTheta, BetaFast: 32, BetaSlow: 1}}
	d := declared{keys: mlxKeys, rmsEps: mc.RMSNormEps, tokens: -1, vocabSize: mc.VocabSize,
		scaleTensor: func(name string) string { return name + ".biases" }}
	if rs := mc.RopeScaling; rs != nil {
		switch rs.Type {
		case "yarn":
			d.yarn = true
			c.Rope.Factor, c.Rope.OrigContext = rs.Factor, rs.OriginalMaxPositionEmbeddings
			// Zero means absent (the default stays); anything else, negative included, is
			// checked by validate like the GGUF values.
			if rs.BetaFast != 0 {
				c.Rope.BetaFast = rs.BetaFast
			}
			if rs.BetaSlow != 0 {
				c.Rope.BetaSlow = rs.BetaSlow
			}
			c.Rope.AttnFactor = rs.AttentionFactor
		case "", "default", "linear":
			if rs.Type == "linear" && rs.Factor != 1 && rs.Factor != 0 {
				return c, d, fmt.Errorf("config.json: linear rope scaling %g is not supported", rs.Factor)
			}
		default:
			return c, d, fmt.Errorf("config.json: rope scaling %q is not supported", rs.Type)
		}
	}
	for _, s := range []struct {
		key string
		id  int
	}{{"config.json bos_token_id", mc.BOSTokenID}, {"config.json eos_token_id", mc.EOSTokenID}} {
		if s.id >= 0 {
			d.ids = append(d.ids, declaredID{s.key, int64(s.id)})
		}
	}
	return c, d, nil
}

// mlxKeys names the config.json keys of the numbers validate checks.
var mlxKeys = fileKeys{
	rmsEps:          "config.json rms_norm_eps",
	ropeBase:        "config.json rope_theta",
	yarnFactor:      "config.json rope_scaling.factor",
	yarnOrigContext: "config.json rope_scaling.original_max_position_embeddings",
	yarnBetaFast:    "config.json rope_scaling.beta_fast",
	yarnBetaSlow:    "config.json rope_scaling.beta_slow",
	yarnAttn:        "config.json rope_scaling.attention_factor",
	vocabSize:       "config.json vocab_size",
	tokens:          "tokenizer.json",
}

// mlxNaming is the Hugging Face names of the layout (docs/FORMATS.md §8.2):
// model.embed_tokens.weight, model.layers.3.input_layernorm.weight,
// model.layers.3.mlp.up_proj.weight, model.norm.weight, lm_head.weight.
var mlxNaming = naming{layer: "model.layers.%d.", proj: mlxProj, stem: [numRoles]string{
	roleEmbed: "model.embed_tokens", roleAttnNorm: "input_layernorm", roleQNorm: "self_attn.q_norm",
	roleKNorm: "self_attn.k_norm", roleFFNNorm: "post_attention_layernorm", roleOutNorm: "model.norm", roleOutput: "lm_head"}}

// mlxProj is the module path of a projection: self_attn.q_proj, mlp.up_proj.
func mlxProj(p Proj) string { return mlx.ModulePrefix(int(p)) + p.String() }

// mlxTensors looks up the layout's tensors in an opened MLX directory, whose matrices are keyed
// by module (the name without ".weight") and vectors by tensor name.
type mlxTensors struct{ d *mlx.Model }

func (mlxTensors) name(w weight) string { return mlxNaming.name(w) }

func (x mlxTensors) matrix(w weight, rows, cols int) (*q1.Matrix, error) {
	name := x.name(w)
	mt, ok := x.d.Matrices[strings.TrimSuffix(name, ".weight")]
	switch {
	case !ok && w.role == roleOutput && x.d.Config.TieWordEmbeddings:
		return nil, nil // the head is the embedding
	case !ok && w.role == roleOutput:
		return nil, errors.New("no lm_head and tie_word_embeddings is false")
	case !ok:
		return nil, fmt.Errorf("missing quantised tensor %s", name)
	case mt.Cols != cols || (rows > 0 && mt.Rows != rows):
		return nil, fmt.Errorf("tensor %s is %dx%d, want %dx%d (config.json)", name, mt.Rows, mt.Cols, rows, cols)
	}
	return mt, nil
}

func (x mlxTensors) vector(w weight, n int) ([]float32, error) {
	name := x.name(w)
	v, ok := x.d.Vectors[name]
	if !ok {
		return nil, fmt.Errorf("missing tensor %s", name)
	}
	if len(v) != n {
		return nil, fmt.Errorf("tensor %s has %d elements, want %d (config.json)", name, len(v), n)
	}
	return v, nil
}
