// Package synth generates Bonsai-format models with random 1-bit weights, deterministically from
// a seed, in any Qwen3 shape: tiny ones for tests and demos, 8B-shaped ones for benchmarks.
package synth

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// Spec is the shape of a synthetic model.
type Spec struct {
	Name    string
	Layers  int
	Hidden  int
	FFN     int
	Heads   int
	KVHeads int
	HeadDim int
	Vocab   int // embedding rows; at least the 264 tokens of the synthetic tokenizer
	Context int
	Tied    bool
	Yarn    bool // declare YaRN (factor 4, original context 16384) like Bonsai-8B
	Seed    uint64
}

// Tiny is the built-in demo and test model: 2 layers, hidden 128, 264-token byte-level vocab.
func Tiny() Spec {
	return Spec{Name: "bankai-tiny", Layers: 2, Hidden: 128, FFN: 384, Heads: 4, KVHeads: 2, HeadDim: 64,
		Vocab: TinyVocab, Context: 4096, Seed: 1}
}

// Bonsai8B has the shapes of Bonsai-8B (untied, YaRN).
func Bonsai8B() Spec {
	return Spec{Name: "synthetic-8B", Layers: 36, Hidden: 4096, FFN: 12288, Heads: 32, KVHeads: 8, HeadDim: 128,
		Vocab: 151669, Context: 65536, Yarn: true, Seed: 8}
}

// Bonsai4B has the shapes of Bonsai-4B (tied, attention width 4096 != hidden 2560).
func Bonsai4B() Spec {
	return Spec{Name: "synthetic-4B", Layers: 36, Hidden: 2560, FFN: 9728, Heads: 32, KVHeads: 8, HeadDim: 128,
		Vocab: 151669, Context: 32768, Tied: true, Seed: 4}
}

// Bonsai1_7B has the shapes of Bonsai-1.7B (tied).
func Bonsai1_7B() Spec {
	return Spec{Name: "synthetic-1.7B", Layers: 28, Hidden: 2048, FFN: 6144, Heads: 16, KVHeads: 8, HeadDim: 128,
		Vocab: 151669, Context: 32768, Tied: true, Seed: 17}
}

// Presets maps the names accepted by `bankai-metal testmodel --shape`.
var Presets = map[string]func() Spec{"tiny": Tiny, "8b": Bonsai8B, "4b": Bonsai4B, "1.7b": Bonsai1_7B}

// Validate checks that the shape is buildable.
func (s Spec) Validate() error {
	switch {
	case s.Layers <= 0 || s.Hidden <= 0 || s.FFN <= 0 || s.Heads <= 0 || s.KVHeads <= 0 || s.HeadDim <= 0:
		return fmt.Errorf("synth: sizes must be positive: layers %d, hidden %d, ffn %d, heads %d, kv heads %d, head dim %d",
			s.Layers, s.Hidden, s.FFN, s.Heads, s.KVHeads, s.HeadDim)
	case s.Hidden%q1.GroupSize != 0 || s.FFN%q1.GroupSize != 0 || (s.Heads*s.HeadDim)%q1.GroupSize != 0:
		return fmt.Errorf("synth: hidden %d, ffn %d and heads*head_dim %d must be multiples of 128", s.Hidden, s.FFN, s.Heads*s.HeadDim)
	case s.Heads%s.KVHeads != 0:
		return fmt.Errorf("synth: %d heads not a multiple of %d kv heads", s.Heads, s.KVHeads)
	case s.HeadDim%2 != 0:
		return fmt.Errorf("synth: odd head dim %d", s.HeadDim)
	case s.Vocab < TinyVocab:
		return fmt.Errorf("synth: vocab %d smaller than the %d-token tokenizer", s.Vocab, TinyVocab)
	}
	return nil
}

// Tensor is one generated tensor in GGUF naming and ne order.
type Tensor struct {
	Name string
	Dims []int     // ne order: (cols, rows) for matrices, (n) for vectors
	Q1   []byte    // Q1_0 blocks, when a matrix
	F32  []float32 // when a vector
}

// Tensors generates every tensor of the model in GGUF order. Matrices get random sign bits and
// per-group scales d = base·U(0.5, 1.5) (fp16) with bases chosen so that activations stay O(1)
// and logits have a standard deviation of a few units; norm weights are U(0.5, 1.5) (q/k norms
// U(0.8, 2.0)) on a 1/128 grid, exact in f32, f16 and bf16.
func (s Spec) Tensors() []Tensor {
	rng := rand.New(rand.NewPCG(s.Seed, 0x9e3779b97f4a7c15))
	qd, kvd := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	mat := func(name string, rows, cols int, base float64) Tensor {
		return Tensor{Name: name, Dims: []int{cols, rows}, Q1: randomQ1(rng, rows, cols, base)}
	}
	vec := func(name string, n int, lo, hi float64) Tensor {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(math.Round((lo+(hi-lo)*rng.Float64())*128) / 128)
		}
		return Tensor{Name: name, Dims: []int{n}, F32: v}
	}
	in := 1 / math.Sqrt(float64(s.Hidden))
	out := []Tensor{mat("token_embd.weight", s.Vocab, s.Hidden, 1)}
	for l := 0; l < s.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		out = append(out,
			vec(p+"attn_norm.weight", s.Hidden, 0.5, 1.5),
			mat(p+"attn_q.weight", qd, s.Hidden, in),
			mat(p+"attn_k.weight", kvd, s.Hidden, in),
			mat(p+"attn_v.weight", kvd, s.Hidden, in),
			vec(p+"attn_q_norm.weight", s.HeadDim, 0.8, 2.0),
			vec(p+"attn_k_norm.weight", s.HeadDim, 0.8, 2.0),
			mat(p+"attn_output.weight", s.Hidden, qd, 0.5/math.Sqrt(float64(qd))),
			vec(p+"ffn_norm.weight", s.Hidden, 0.5, 1.5),
			mat(p+"ffn_gate.weight", s.FFN, s.Hidden, in),
			mat(p+"ffn_up.weight", s.FFN, s.Hidden, in),
			mat(p+"ffn_down.weight", s.Hidden, s.FFN, 1/math.Sqrt(float64(s.FFN))),
		)
	}
	out = append(out, vec("output_norm.weight", s.Hidden, 0.5, 1.5))
	if !s.Tied {
		out = append(out, mat("output.weight", s.Vocab, s.Hidden, 3*in))
	}
	return out
}

// randomQ1 returns rows x cols Q1_0 blocks with random bits and scales base·U(0.5,1.5).
func randomQ1(rng *rand.Rand, rows, cols int, base float64) []byte {
	nb := rows * cols / q1.GroupSize
	b := make([]byte, nb*q1.BlockBytes)
	for i := 0; i < nb; i++ {
		blk := b[i*q1.BlockBytes : (i+1)*q1.BlockBytes]
		binary.LittleEndian.PutUint16(blk, q1.F32ToF16(float32(base*(0.5+rng.Float64()))))
		binary.LittleEndian.PutUint64(blk[2:], rng.Uint64())
		binary.LittleEndian.PutUint64(blk[10:], rng.Uint64())
	}
	return b
}

// TestdataModels are the small models committed under testdata/ (as NAME.gguf and NAME-mlx/):
// the built-in tiny model, a tied one with YaRN, and a 4-layer one whose attention width differs
// from its hidden size (like Bonsai-4B).
func TestdataModels() map[string]Spec {
	tied := Tiny()
	tied.Name, tied.Tied, tied.Yarn, tied.Seed = "bankai-tiny-tied-yarn", true, true, 2
	deep := Tiny()
	deep.Name, deep.Layers, deep.Heads, deep.KVHeads, deep.Seed = "bankai-tiny-4layer", 4, 4, 1, 3 // q width 256 != hidden 128
	return map[string]Spec{"tiny": Tiny(), "tiny-tied-yarn": tied, "tiny-4layer": deep}
}
