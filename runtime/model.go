// Package runtime loads Bonsai 1-bit Qwen3 models (GGUF or MLX) and runs them.
package runtime

import (
	"fmt"
	"io"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/mlx"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

// Config holds the hyper-parameters of a Qwen3 model, read from the file.
type Config struct {
	Arch    string
	NLayers int // decoder layers
	Hidden  int // n_embd
	FFN     int // n_ff
	Heads   int
	KVHeads int
	HeadDim int
	Vocab   int // rows of the embedding
	Context int // trained context length (0 if unknown)
	RMSEps  float32
	Rope    cpu.Rope
	Tied    bool // the LM head is the embedding
}

// QDim is the width of the query projection (Heads·HeadDim; not always Hidden).
func (c Config) QDim() int { return c.Heads * c.HeadDim }

// KVDim is the width of the key and value projections.
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim }

// Proj names a projection of a decoder layer, by its Hugging Face name.
type Proj int

// The seven projections of a Qwen3 layer, in the order of patch's one list of their names.
const (
	ProjQ Proj = iota
	ProjK
	ProjV
	ProjO
	ProjGate
	ProjUp
	ProjDown
	NumProj
)

// String is the Hugging Face name of the projection ("up_proj").
func (p Proj) String() string { return patch.ProjName(int(p)) }

// GGUFName is the GGUF tensor stem of the projection ("ffn_up").
func (p Proj) GGUFName() string { return patch.ProjGGUF(int(p)) }

// ParseProj accepts a Hugging Face name (up_proj) or a GGUF name (ffn_up).
func ParseProj(s string) (Proj, error) {
	i, err := patch.ProjIndex(s)
	return Proj(i), err
}

// Layer holds the weights of one decoder layer.
type Layer struct {
	AttnNorm []float32 // (Hidden)
	QNorm    []float32 // (HeadDim)
	KNorm    []float32 // (HeadDim)
	FFNNorm  []float32 // (Hidden)
	Proj     [NumProj]*q1.Matrix
}

// Model is a loaded Qwen3 model. Its 1-bit matrices alias the (copy-on-write) file mapping.
type Model struct {
	Config
	Embed   *q1.Matrix // (Vocab, Hidden)
	Layers  []Layer
	OutNorm []float32  // (Hidden)
	Output  *q1.Matrix // (Vocab, Hidden); the same matrix as Embed when tied
	Source  Source
	// Numerics selects the arithmetic of the CPU forward pass (NumericsFloat unless set).
	Numerics Numerics

	closer      io.Closer
	mlx         *mlx.Model // the MLX source, for SaveCopy
	fingerprint string
	tok         *tokenizer.Tokenizer
}

// Source says where a model came from.
type Source struct {
	Path   string
	Format string // "gguf" or "mlx"
	Size   int64  // bytes of the weight files
	Name   string // general.name or the directory name
	// TensorTypes counts tensors by storage type ("Q1_0": 254, "F32": 145).
	TensorTypes map[string]int
	// PatchNote is what a patched copy records about the patches applied to it ("" if none).
	PatchNote string
	tok       tokSource
}

// Close releases the file mappings. The model must not be used afterwards.
func (m *Model) Close() error {
	if m.closer == nil {
		return nil
	}
	err := m.closer.Close()
	m.closer = nil
	return err
}

// NumLayers returns the number of decoder layers.
func (m *Model) NumLayers() int { return len(m.Layers) }

// Matrix returns the 1-bit matrix of a projection, by Hugging Face or GGUF name.
func (m *Model) Matrix(layer int, proj string) (*q1.Matrix, error) {
	p, err := ParseProj(proj)
	if err != nil {
		return nil, err
	}
	if layer < 0 || layer >= len(m.Layers) {
		return nil, fmt.Errorf("layer %d out of range [0,%d)", layer, len(m.Layers))
	}
	return m.Layers[layer].Proj[p], nil
}

// Params returns the number of weights (1-bit matrices plus norms; the tied head counted once).
func (m *Model) Params() int64 {
	n := int64(m.Embed.Rows) * int64(m.Embed.Cols)
	if !m.Tied {
		n += int64(m.Output.Rows) * int64(m.Output.Cols)
	}
	for _, l := range m.Layers {
		for _, p := range l.Proj {
			n += int64(p.Rows) * int64(p.Cols)
		}
		n += int64(len(l.AttnNorm) + len(l.QNorm) + len(l.KNorm) + len(l.FFNNorm))
	}
	return n + int64(len(m.OutNorm))
}

// The projection list is patch's; the enum must match it.
var _ [NumProj]struct{} = [patch.NumProj]struct{}{}
