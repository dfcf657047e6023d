package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// benchQ8 runs MatMulQ8 on a rows x cols matrix and n vectors at every available SIMD level.
func benchQ8(b *testing.B, rows, cols, n int) {
	m := randomMatrix(b, rows, cols, 1)
	x := randVec(rand.New(rand.NewPCG(1, 2)), n*cols)
	out := make([]float32, n*rows)
	for _, l := range Levels() {
		b.Run(l.String(), func(b *testing.B) {
			withLevel(b, l, func() {
				b.SetBytes(int64(rows) * int64(cols/q1.GroupSize) * q1.BlockBytes)
				c0 := cpuTime()
				for b.Loop() {
					MatMulQ8(m, x, n, out)
				}
				b.ReportMetric((cpuTime()-c0)*1e3/float64(b.N), "cpu-ms/op")
				b.ReportMetric(float64(rows)*float64(cols)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
		})
	}
}

// BenchmarkQ8MatVec12288x4096 is the 8B gate/up mat-vec (decode) with Q8_0 activations.
func BenchmarkQ8MatVec12288x4096(b *testing.B) { benchQ8(b, 12288, 4096, 1) }

// BenchmarkQ8MatVec4096x12288 is the 8B down mat-vec.
func BenchmarkQ8MatVec4096x12288(b *testing.B) { benchQ8(b, 4096, 12288, 1) }

// BenchmarkQ8MatMul12288x4096x64 is the gate/up product of a 64-token prefill.
func BenchmarkQ8MatMul12288x4096x64(b *testing.B) { benchQ8(b, 12288, 4096, 64) }

// BenchmarkQ8MatVec2048x2048 is a 1.7B-sized projection (decode).
func BenchmarkQ8MatVec2048x2048(b *testing.B) { benchQ8(b, 2048, 2048, 1) }
