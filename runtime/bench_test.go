package runtime_test

import (
	"path/filepath"
	"testing"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

// layer8B is one decoder layer with Bonsai-8B's shapes (and a small vocabulary).
func layer8B(b *testing.B) *runtime.Model {
	s := synth.Bonsai8B()
	s.Layers, s.Vocab = 1, synth.TinyVocab
	p := filepath.Join(b.TempDir(), "layer8b.gguf")
	if err := s.WriteGGUF(p); err != nil {
		b.Fatal(err)
	}
	m, err := runtime.Load(p)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

func benchLayer(b *testing.B, n int) {
	m := layer8B(b)
	x := make([]float32, n*m.Hidden) // (n, Hidden)
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = int32(i % 256)
	}
	m.Embedding(toks, x)
	var weights int64
	for _, p := range m.Layers[0].Proj {
		weights += int64(p.Rows) * int64(p.Cols)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.RunLayers(0, 1, x, []runtime.Seq{{N: n}}, nil)
	}
	b.ReportMetric(float64(weights)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkLayer8B_1 is one 8B-shaped decoder layer for a single token (decode).
func BenchmarkLayer8B_1(b *testing.B) { benchLayer(b, 1) }

// BenchmarkLayer8B_64 is one 8B-shaped decoder layer over 64 tokens (prefill).
func BenchmarkLayer8B_64(b *testing.B) { benchLayer(b, 64) }

// BenchmarkMatVec12288x4096 is the binary mat-vec of an 8B gate/up projection; GB/s counts
// the weight bytes read (18 bytes per 128 weights).
func BenchmarkMatVec12288x4096(b *testing.B) {
	m := layer8B(b)
	w := m.Layers[0].Proj[runtime.ProjUp]
	x := make([]float32, w.Cols)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	out := make([]float32, w.Rows)
	b.SetBytes(int64(w.Rows) * int64(w.Groups) * 18)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cpu.MatMul(w, x, 1, out)
	}
}
