package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

func randomMatrix(tb testing.TB, rows, cols int, seed uint64) *q1.Matrix {
	rng := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, rows*cols/q1.GroupSize*q1.BlockBytes)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for i := 0; i < len(data); i += q1.BlockBytes { // sane fp16 scales in [0.5, 1)
		data[i], data[i+1] = byte(rng.Uint32()), 0x38
	}
	m, err := q1.FromQ1_0("w", rows, cols, data)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func benchMatMul(b *testing.B, rows, cols, n int) { benchKernel(b, MatMul, rows, cols, n) }

// benchKernel runs kernel on a rows x cols matrix and n vectors at every available SIMD level,
// reporting weight bytes, CPU time per call and GMAC/s.
func benchKernel(b *testing.B, kernel func(*q1.Matrix, []float32, int, []float32), rows, cols, n int) {
	m := randomMatrix(b, rows, cols, 1)
	x := randVec(rand.New(rand.NewPCG(1, 2)), n*cols)
	out := make([]float32, n*rows)
	for _, l := range Levels() {
		b.Run(l.String(), func(b *testing.B) {
			withLevel(b, l, func() {
				b.SetBytes(int64(rows) * int64(cols/q1.GroupSize) * q1.BlockBytes)
				c0 := cpuTime()
				for b.Loop() {
					kernel(m, x, n, out)
				}
				b.ReportMetric((cpuTime()-c0)*1e3/float64(b.N), "cpu-ms/op")
				b.ReportMetric(float64(rows)*float64(cols)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
		})
	}
}

// BenchmarkMatVec12288x4096 is the 8B gate/up mat-vec (decode); GB/s counts weight bytes.
func BenchmarkMatVec12288x4096(b *testing.B) { benchMatMul(b, 12288, 4096, 1) }

// BenchmarkMatVec4096x12288 is the 8B down mat-vec.
func BenchmarkMatVec4096x12288(b *testing.B) { benchMatMul(b, 4096, 12288, 1) }

// BenchmarkMatMul12288x4096x64 is the gate/up product for a 64-token prefill.
func BenchmarkMatMul12288x4096x64(b *testing.B) { benchMatMul(b, 12288, 4096, 64) }

// BenchmarkMatMul4096x12288x16 is the down product for a 16-token prefill.
func BenchmarkMatMul4096x12288x16(b *testing.B) { benchMatMul(b, 4096, 12288, 16) }

// BenchmarkMatMulRow1x4096x64 is one row over 64 vectors, as bfs recomputes a flipped row.
func BenchmarkMatMulRow1x4096x64(b *testing.B) { benchMatMul(b, 1, 4096, 64) }
