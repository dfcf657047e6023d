package runtime

import (
	"fmt"
	"math"

	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

// The checks both formats share. Each format reads its file into a Config and a declared (the
// numbers that come with the weights, and the names the file gives them); bind (qwen3.go) calls
// Model.validate on the bound model, so a GGUF file and an MLX directory are held to the same
// rules and a bad number is reported under the key the user can find in the file.

// maxContext bounds context lengths read from a file (as gguf and mlx bound every size).
const maxContext = 1 << 24

// fileKeys names, in the words of one format, where each checked number comes from.
type fileKeys struct {
	rmsEps, ropeBase                                                  string
	yarnFactor, yarnOrigContext, yarnBetaFast, yarnBetaSlow, yarnAttn string
	vocabSize                                                         string // "" when the format has none
	tokens                                                            string // the tokenizer's token list
}

// declared is what a file says next to its weights that validate checks against them.
type declared struct {
	keys      fileKeys
	rmsEps    float64      // as written, before the conversion to float32
	yarn      bool         // the file asks for YaRN rope scaling
	ids       []declaredID // special token ids (bos, eos, padding) that are present
	tokens    int          // size of the tokenizer's token list; -1 when not read at load
	vocabSize int          // declared vocabulary size; 0 when absent
	// scaleTensor names the tensor holding a matrix's scales, for messages.
	scaleTensor func(matrix string) string
}

// declaredID is one special token id and the key it was read from.
type declaredID struct {
	key string
	id  int64
}

// validate checks a bound model against the rules every Qwen3 model must meet: consistent
// head counts, finite and positive numerics, special ids and the tokenizer inside the
// embedding, and finite scales in every 1-bit matrix (one linear pass over the scale bytes,
// which stay packed in the mapping).
func (m *Model) validate(d declared) error {
	c := m.Config
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("%d query heads are not a multiple of %d kv heads", c.Heads, c.KVHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("head dim %d is odd", c.HeadDim)
	}
	if err := checkNumerics(c, d); err != nil {
		return err
	}
	for _, s := range d.ids {
		if s.id < 0 || s.id >= int64(m.Vocab) {
			return fmt.Errorf("%s is %d, outside the %d rows [0,%d) of %s", s.key, s.id, m.Vocab, m.Vocab, m.Embed.Name)
		}
	}
	if d.tokens > m.Vocab {
		return fmt.Errorf("%s has %d tokens but %s has only %d rows: ids from %d on could not be embedded",
			d.keys.tokens, d.tokens, m.Embed.Name, m.Vocab, m.Vocab)
	}
	if d.vocabSize > 0 && d.vocabSize < m.Vocab {
		return fmt.Errorf("%s is %d, smaller than the %d rows of %s", d.keys.vocabSize, d.vocabSize, m.Vocab, m.Embed.Name)
	}
	return m.checkAllScales(d.scaleTensor)
}

// checkNumerics rejects NaN, infinite, zero or negative values where the maths needs a
// positive finite number, naming the key each came from.
func checkNumerics(c Config, d declared) error {
	k := d.keys
	if err := positive(k.rmsEps, d.rmsEps); err != nil {
		return err
	}
	if f := float32(d.rmsEps); !(f > 0) || math.IsInf(float64(f), 0) {
		return fmt.Errorf("%s is %g, which float32 cannot hold (it becomes %g); want a finite number > 0", k.rmsEps, d.rmsEps, f)
	}
	if err := positive(k.ropeBase, c.Rope.Base); err != nil {
		return err
	}
	if !d.yarn {
		return nil
	}
	r := c.Rope
	const why = " (yarn rope scaling)"
	if err := positive(k.yarnFactor, r.Factor); err != nil {
		return fmt.Errorf("%w%s", err, why)
	}
	if r.OrigContext <= 0 || r.OrigContext > maxContext {
		return fmt.Errorf("%s is %d (0 when missing), want 1..%d%s", k.yarnOrigContext, r.OrigContext, maxContext, why)
	}
	if r.Base == 1 {
		return fmt.Errorf("%s is 1, which yarn rope scaling cannot use (it divides by ln base)", k.ropeBase)
	}
	for _, v := range []struct {
		key string
		x   float64
	}{{k.yarnBetaFast, r.BetaFast}, {k.yarnBetaSlow, r.BetaSlow}} {
		if err := positive(v.key, v.x); err != nil {
			return fmt.Errorf("%w%s", err, why)
		}
	}
	if math.IsNaN(r.AttnFactor) || math.IsInf(r.AttnFactor, 0) || r.AttnFactor < 0 {
		return fmt.Errorf("%s is %g, want a finite number >= 0%s", k.yarnAttn, r.AttnFactor, why)
	}
	return nil
}

// positive checks that x is a finite number > 0.
func positive(key string, x float64) error {
	if !(x > 0) || math.IsInf(x, 0) {
		return fmt.Errorf("%s is %g, want a finite number > 0", key, x)
	}
	return nil
}

// finiteVector rejects a norm weight vector holding NaN or an infinity.
func finiteVector(name string, v []float32) error {
	for i, x := range v {
		if x-x != 0 { // NaN or ±Inf
			return fmt.Errorf("tensor %s: value %d of %d is %g; norm weights must be finite", name, i, len(v), x)
		}
	}
	return nil
}

// checkAllScales scans the scales of every 1-bit matrix, spread over the CPU threads, and
// returns the error of the first bad matrix in model order.
func (m *Model) checkAllScales(tensor func(string) string) error {
	mats := []*q1.Matrix{m.Embed}
	if !m.Tied {
		mats = append(mats, m.Output)
	}
	for l := range m.Layers {
		mats = append(mats, m.Layers[l].Proj[:]...)
	}
	errs := make([]error, len(mats))
	cpu.ParallelFor(len(mats), func(i int) { errs[i] = checkScales(mats[i], tensor) })
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkScales rejects a matrix with a NaN or infinite scale: in fp16 and bf16 alike, a value
// whose exponent bits are all ones. Only the two scale bytes of each group are read.
func checkScales(mt *q1.Matrix, tensor func(string) string) error {
	mask := uint16(0x7c00) // fp16 exponent
	if mt.Kind == q1.ScaleNegBF16 {
		mask = 0x7f80
	}
	s, stride, n := mt.Scales, mt.ScaleStride, mt.Rows*mt.Groups
	if n > 0 && len(s) < (n-1)*stride+2 {
		return fmt.Errorf("tensor %s: %d scale bytes for %d groups", tensor(mt.Name), len(s), n)
	}
	for i, o := 0, 0; i < n; i, o = i+1, o+stride {
		if h := uint16(s[o]) | uint16(s[o+1])<<8; h&mask == mask {
			return fmt.Errorf("tensor %s: row %d, group %d: scale is %g (bits %#04x); every scale must be finite",
				tensor(mt.Name), i/mt.Groups, i%mt.Groups, mt.Scale(i/mt.Groups, i%mt.Groups), h)
		}
	}
	return nil
}

// checkTokenizer checks a tokenizer built for m (from GGUF metadata or tokenizer.json) against
// the embedding: every id it can produce must have a row. Model.Tokenizer is meant to call it.
func (m *Model) checkTokenizer(t *tokenizer.Tokenizer) error {
	if t.Vocab() > m.Vocab {
		return fmt.Errorf("the tokenizer has %d tokens but %s has only %d rows: ids from %d on could not be embedded",
			t.Vocab(), m.Embed.Name, m.Vocab, m.Vocab)
	}
	return nil
}

// LogitsError reports logits that are NaN or infinite: the forward pass broke down (bad
// weights, an overflow), and nothing sampled or printed from them would mean anything.
type LogitsError struct {
	Pos   int     // position in the sequence (0 = first token of the context)
	ID    int     // the first vocabulary id whose logit is bad
	Value float32 // NaN, +Inf or -Inf
}

// Error returns "runtime: forward pass produced NaN logits at position 3 (id 17)".
func (e *LogitsError) Error() string {
	return fmt.Sprintf("runtime: forward pass produced %g logits at position %d (id %d)", e.Value, e.Pos, e.ID)
}

// CheckLogits returns a *LogitsError for the first NaN or infinite value of logits, rows of
// vocab values for consecutive positions from pos0, or nil when all are finite.
func CheckLogits(logits []float32, vocab, pos0 int) error {
	for i, v := range logits {
		if v-v != 0 { // NaN or ±Inf
			return &LogitsError{Pos: pos0 + i/max(vocab, 1), ID: i % max(vocab, 1), Value: v}
		}
	}
	return nil
}
