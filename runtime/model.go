// Package runtime loads Bonsai 1-bit Qwen3 models (GGUF or MLX) and runs them.
package runtime

import (
	"fmt"
	"io"

	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/mlx"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

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
	// Threads bounds the goroutines of the CPU forward pass (0: GOMAXPROCS). Results never
	// depend on it.
	Threads int

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

// workers is the thread count the CPU kernels of m run on.
func (m *Model) workers() cpu.Workers { return cpu.Workers(m.Threads) }
