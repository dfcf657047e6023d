package cpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// randQ1 returns a random rows x cols matrix in the GGUF Q1_0 layout, scales in ±[0.25, 1.25).
func randQ1(t testing.TB, rng *rand.Rand, rows, cols int) *q1.Matrix {
	data := make([]byte, rows*cols/q1.GroupSize*q1.BlockBytes)
	for o := 0; o < len(data); o += q1.BlockBytes {
		d := float32(0.25 + rng.Float64())
		if rng.IntN(8) == 0 {
			d = -d
		}
		binary.LittleEndian.PutUint16(data[o:], q1.F32ToF16(d))
		for b := 2; b < q1.BlockBytes; b++ {
			data[o+b] = byte(rng.Uint32())
		}
	}
	m, err := q1.FromQ1_0("w", rows, cols, data)
	require.NoError(t, err)
	return m
}

func gradVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// MatMulT against a naive dequantised loop in float64. A float32 sum of R terms in a fixed order,
// each rounded once, is within (R+1)·2^-24·Σ|term| of the exact sum: that is the bound.
// The bits must not depend on the thread count, nor on how many tokens share the call.
func TestTransposeMatMulT(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range []struct{ rows, cols, n int }{
		{1, 128, 1}, {1, 128, 3}, {7, 384, 1}, {7, 384, 5}, {7, 384, 40}, {300, 4096, 1}, {300, 4096, 33},
	} {
		t.Run(fmt.Sprintf("%dx%d_n%d", s.rows, s.cols, s.n), func(t *testing.T) {
			m := randQ1(t, rng, s.rows, s.cols)
			dOut := gradVec(rng, s.n*s.rows)
			dOut[0] = 0                         // a zero coefficient takes the skip
			w := make([]float64, s.rows*s.cols) // the naive test dequantises; the kernel never does
			for r := 0; r < s.rows; r++ {
				for c := 0; c < s.cols; c++ {
					w[r*s.cols+c] = float64(m.Weight(r, c))
				}
			}
			got1 := make([]float32, s.n*s.cols)
			for i := range got1 {
				got1[i] = float32(math.NaN()) // overwritten, not accumulated into
			}
			Workers(1).MatMulT(m, dOut, s.n, got1)
			worst := 0.0
			for tk := 0; tk < s.n; tk++ {
				for c := 0; c < s.cols; c++ {
					var want, abs float64
					for r := 0; r < s.rows; r++ {
						x := float64(dOut[tk*s.rows+r]) * w[r*s.cols+c]
						want += x
						abs += math.Abs(x)
					}
					err := math.Abs(float64(got1[tk*s.cols+c]) - want)
					bound := float64(s.rows+1) * 0x1p-24 * abs
					require.LessOrEqualf(t, err, bound, "token %d col %d: %v, want %v", tk, c, got1[tk*s.cols+c], want)
					if abs > 0 {
						worst = max(worst, err/abs)
					}
				}
			}
			t.Logf("worst |err|/Σ|term| = %.2g (bound %.2g)", worst, float64(s.rows+1)*0x1p-24)
			got3 := make([]float32, s.n*s.cols)
			Workers(3).MatMulT(m, dOut, s.n, got3)
			requireBitsT(t, got1, got3, "threads 1 vs 3")
			last := make([]float32, s.cols) // the last token alone
			Workers(3).MatMulT(m, dOut[(s.n-1)*s.rows:], 1, last)
			requireBitsT(t, got1[(s.n-1)*s.cols:], last, "last token alone")
		})
	}
}

// BenchmarkMatMulT12288x4096 is the transposed product of an 8B gate/up-shaped matrix
// (12288 x 4096) for 32 tokens.
func BenchmarkMatMulT12288x4096(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := randQ1(b, rng, 12288, 4096)
	const n = 32
	dOut := gradVec(rng, n*m.Rows)
	dIn := make([]float32, n*m.Cols)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		MatMulT(m, dOut, n, dIn)
	}
	b.ReportMetric(float64(m.Rows)*float64(m.Cols)*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
}

func TestTransposeBits8(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for range 100 {
		x := rng.Uint64()
		y := transpose8(x)
		for k := range 8 {
			for i := range 8 {
				require.Equal(t, x>>(8*k+i)&1, y>>(8*i+k)&1, "element (%d, %d) of %#x", k, i, x)
			}
		}
	}
}

// requireBitsT fails unless want and got hold the same float32 bits.
func requireBitsT(t *testing.T, want, got []float32, msg string, args ...any) {
	t.Helper()
	require.Equal(t, len(want), len(got), fmt.Sprintf(msg, args...))
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			t.Fatalf("%s: index %d: %v vs %v", fmt.Sprintf(msg, args...), i, got[i], want[i])
		}
	}
}
