package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/gguf"
	"github.com/bankai-metal/bankai-metal/runtime/mlx"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

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
	arch, _ := f.String("general.architecture")
	if arch != "qwen3" {
		return nil, fmt.Errorf("architecture %q is not supported (want qwen3)", arch)
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
	var c Config
	var err error
	c.Arch = arch
	if c.NLayers, err = u("block_count", -1); err != nil {
		return nil, err
	}
	if c.Hidden, err = u("embedding_length", -1); err != nil {
		return nil, err
	}
	if c.FFN, err = u("feed_forward_length", -1); err != nil {
		return nil, err
	}
	if c.Heads, err = u("attention.head_count", -1); err != nil {
		return nil, err
	}
	if c.KVHeads, err = u("attention.head_count_kv", c.Heads); err != nil {
		return nil, err
	}
	if c.HeadDim, err = u("attention.key_length", c.Hidden/c.Heads); err != nil {
		return nil, err
	}
	if c.Context, err = u("context_length", 0); err != nil {
		return nil, err
	}
	d := declared{keys: ggufKeys, tokens: -1, scaleTensor: func(name string) string { return name }}
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
		return nil, fmt.Errorf("rope scaling %q is not supported", t)
	}
	if flErr != nil {
		return nil, flErr
	}
	if v, ok := f.Uint(arch + ".rope.dimension_count"); ok && int(v) != c.HeadDim {
		return nil, fmt.Errorf("partial rotary width %d (head dim %d) is not supported", v, c.HeadDim)
	}
	for _, key := range []string{"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id"} {
		if kv, ok := f.Get(key); ok {
			id, ok := f.Int(key)
			if !ok {
				return nil, fmt.Errorf("metadata %s is a %s, want a token id", key, kv.Type)
			}
			d.ids = append(d.ids, declaredID{"metadata " + key, id})
		}
	}
	if toks, ok := f.Strings("tokenizer.ggml.tokens"); ok {
		d.tokens = len(toks)
	}

	types := map[string]int{}
	for _, t := range f.Tensors {
		types[t.Type.String()]++
	}
	matrix := func(name string, rows, cols int) (*q1.Matrix, error) {
		t, ok := f.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("missing tensor %s", name)
		}
		if t.Type != gguf.TypeQ1_0 {
			return nil, fmt.Errorf("tensor %s has type %s, want Q1_0", name, t.Type)
		}
		if len(t.Dims) != 2 || t.Dims[0] != uint64(cols) || (rows > 0 && t.Dims[1] != uint64(rows)) {
			return nil, fmt.Errorf("tensor %s has shape %v, want [%d %d]", name, t.Dims, cols, rows)
		}
		return q1.FromQ1_0(name, int(t.Dims[1]), cols, f.Data(t))
	}
	vector := func(name string, n int) ([]float32, error) {
		t, ok := f.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("missing tensor %s", name)
		}
		if len(t.Dims) != 1 || t.Dims[0] != uint64(n) {
			return nil, fmt.Errorf("tensor %s has shape %v, want [%d]", name, t.Dims, n)
		}
		v, err := floats(name, t.Type.String(), f.Data(t), n)
		if err != nil {
			return nil, err
		}
		return v, finiteVector(name, v)
	}
	m := &Model{Config: c}
	if m.Embed, err = matrix("token_embd.weight", -1, c.Hidden); err != nil {
		return nil, err
	}
	m.Vocab = m.Embed.Rows
	if _, ok := f.Tensor("output.weight"); ok {
		if m.Output, err = matrix("output.weight", m.Vocab, c.Hidden); err != nil {
			return nil, err
		}
	} else {
		m.Output, m.Tied = m.Embed, true
	}
	if m.OutNorm, err = vector("output_norm.weight", c.Hidden); err != nil {
		return nil, err
	}
	// Grow the layers as their tensors are found: a block count far past what the file holds
	// fails at the first missing tensor instead of allocating for it.
	for l := 0; l < c.NLayers; l++ {
		m.Layers = append(m.Layers, Layer{})
		L := &m.Layers[l]
		p := fmt.Sprintf("blk.%d.", l)
		for _, v := range []struct {
			dst  *[]float32
			name string
			n    int
		}{{&L.AttnNorm, "attn_norm", c.Hidden}, {&L.QNorm, "attn_q_norm", c.HeadDim},
			{&L.KNorm, "attn_k_norm", c.HeadDim}, {&L.FFNNorm, "ffn_norm", c.Hidden}} {
			if *v.dst, err = vector(p+v.name+".weight", v.n); err != nil {
				return nil, err
			}
		}
		for pr := Proj(0); pr < NumProj; pr++ {
			rows, cols := m.projShape(pr)
			if L.Proj[pr], err = matrix(p+pr.GGUFName()+".weight", rows, cols); err != nil {
				return nil, err
			}
		}
	}
	if err := m.validate(d); err != nil {
		return nil, err
	}
	name, _ := f.String("general.name")
	note, _ := f.String(PatchNoteKey)
	m.Source = Source{Format: "gguf", Size: f.Size, Name: name, TensorTypes: types, PatchNote: note, tok: tokSource{gguf: f}}
	m.closer = f
	return m, nil
}

// projShape returns the (rows, cols) of a projection.
func (c Config) projShape(p Proj) (rows, cols int) {
	switch p {
	case ProjQ:
		return c.QDim(), c.Hidden
	case ProjK, ProjV:
		return c.KVDim(), c.Hidden
	case ProjO:
		return c.Hidden, c.QDim()
	case ProjGate, ProjUp:
		return c.FFN, c.Hidden
	}
	return c.Hidden, c.FFN
}

func (m *Model) checkTokens(tokens []int32) error {
	if len(tokens) == 0 {
		return errors.New("no tokens")
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= m.Vocab {
			return fmt.Errorf("token %d at position %d out of range [0,%d)", t, i, m.Vocab)
		}
	}
	return nil
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
	mc := d.Config
	if mc.ModelType != "qwen3" {
		return nil, fmt.Errorf("config.json model_type %q is not supported (want qwen3)", mc.ModelType)
	}
	var c Config
	c.Arch = "qwen3"
	c.NLayers, c.Hidden, c.FFN = mc.NumHiddenLayers, mc.HiddenSize, mc.IntermediateSize
	c.Heads, c.KVHeads, c.HeadDim = mc.NumAttentionHeads, mc.NumKeyValueHeads, mc.HeadDim
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.Heads <= 0 || c.NLayers <= 0 || c.Hidden <= 0 || c.FFN <= 0 {
		return nil, fmt.Errorf("config.json: missing or bad sizes (layers %d, hidden %d, ffn %d, heads %d)", c.NLayers, c.Hidden, c.FFN, c.Heads)
	}
	if c.HeadDim == 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	c.Context = mc.MaxPositionEmbeddings
	dc := declared{keys: mlxKeys, rmsEps: mc.RMSNormEps, tokens: -1, vocabSize: mc.VocabSize,
		scaleTensor: func(name string) string { return name + ".biases" }}
	if dc.rmsEps == 0 {
		dc.rmsEps = 1e-6
	}
	c.RMSEps = float32(dc.rmsEps)
	base := mc.RopeTheta
	if base == 0 {
		base = 10000
	}
	c.Rope = cpu.Rope{Dim: c.HeadDim, Base: base, BetaFast: 32, BetaSlow: 1}
	if rs := mc.RopeScaling; rs != nil {
		switch rs.Type {
		case "yarn":
			dc.yarn = true
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
				return nil, fmt.Errorf("config.json: linear rope scaling %g is not supported", rs.Factor)
			}
		default:
			return nil, fmt.Errorf("config.json: rope scaling %q is not supported", rs.Type)
		}
	}
	for _, s := range []struct {
		key string
		id  int
	}{{"config.json bos_token_id", mc.BOSTokenID}, {"config.json eos_token_id", mc.EOSTokenID}} {
		if s.id >= 0 {
			dc.ids = append(dc.ids, declaredID{s.key, int64(s.id)})
		}
	}
	m := &Model{Config: c}
	matrix := func(name string, rows, cols int) (*q1.Matrix, error) {
		mt, ok := d.Matrices[name]
		if !ok {
			return nil, fmt.Errorf("missing quantised tensor %s.weight", name)
		}
		if mt.Cols != cols || (rows > 0 && mt.Rows != rows) {
			return nil, fmt.Errorf("tensor %s.weight is %dx%d, want %dx%d (config.json)", name, mt.Rows, mt.Cols, rows, cols)
		}
		return mt, nil
	}
	vector := func(name string, n int) ([]float32, error) {
		v, ok := d.Vectors[name]
		if !ok {
			return nil, fmt.Errorf("missing tensor %s", name)
		}
		if len(v) != n {
			return nil, fmt.Errorf("tensor %s has %d elements, want %d (config.json)", name, len(v), n)
		}
		return v, finiteVector(name, v)
	}
	var err error
	if m.Embed, err = matrix("model.embed_tokens", -1, c.Hidden); err != nil {
		return nil, err
	}
	m.Vocab = m.Embed.Rows
	if _, ok := d.Matrices["lm_head"]; ok {
		if m.Output, err = matrix("lm_head", m.Vocab, c.Hidden); err != nil {
			return nil, err
		}
	} else if mc.TieWordEmbeddings {
		m.Output, m.Tied = m.Embed, true
	} else {
		return nil, errors.New("no lm_head and tie_word_embeddings is false")
	}
	if m.OutNorm, err = vector("model.norm.weight", c.Hidden); err != nil {
		return nil, err
	}
	m.Layers = make([]Layer, c.NLayers)
	for l := range m.Layers {
		L := &m.Layers[l]
		p := fmt.Sprintf("model.layers.%d.", l)
		for _, v := range []struct {
			dst  *[]float32
			name string
			n    int
		}{{&L.AttnNorm, "input_layernorm", c.Hidden}, {&L.QNorm, "self_attn.q_norm", c.HeadDim},
			{&L.KNorm, "self_attn.k_norm", c.HeadDim}, {&L.FFNNorm, "post_attention_layernorm", c.Hidden}} {
			if *v.dst, err = vector(p+v.name+".weight", v.n); err != nil {
				return nil, err
			}
		}
		for pr := Proj(0); pr < NumProj; pr++ {
			rows, cols := m.projShape(pr)
			mod := "self_attn."
			if pr >= ProjGate {
				mod = "mlp."
			}
			if L.Proj[pr], err = matrix(p+mod+pr.String(), rows, cols); err != nil {
				return nil, err
			}
		}
	}
	if err := m.validate(dc); err != nil {
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
