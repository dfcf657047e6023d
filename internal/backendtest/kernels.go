package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/metal"
	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/shaders"
)

// Sizes chooses the cases of CheckKernels.
type Sizes struct {
	// Lengths are the row counts and vector lengths swept (rows of matrices, widths of norms,
	// element counts, attention contexts).
	Lengths []int
	// Cols are the matrix widths (multiples of 128).
	Cols []int
	// MaxWork skips matrix cases with rows·cols·n above it (0: no limit).
	MaxWork int
}

// FullSizes sweeps around the kernels' internal boundaries (simdgroup 32, group 128, threadgroups
// of 256) and the real Bonsai widths 4096 and 12288.
var FullSizes = Sizes{
	Lengths: []int{1, 31, 32, 33, 127, 128, 129, 255, 256, 257, 4096, 12288},
	Cols:    []int{128, 256, 4096, 12288},
	MaxWork: 4096 * 12288 * 5,
}

// layouts are the three storages of a 1-bit matrix.
var layouts = []string{"gguf", "mlx-f16", "mlx-bf16"}

// RandomMatrix returns a rows x cols matrix with random signs and scales in [0.01, 0.1) in the
// given layout ("gguf": 18-byte blocks; "mlx-f16", "mlx-bf16": sign bytes plus a bias = −d).
func RandomMatrix(rng *rand.Rand, layout string, rows, cols int) *q1.Matrix {
	groups := rows * cols / q1.GroupSize
	d := func() float32 { return 0.01 + 0.09*rng.Float32() }
	var m *q1.Matrix
	var err error
	switch layout {
	case "gguf":
		data := make([]byte, groups*q1.BlockBytes)
		for g := 0; g < groups; g++ {
			b := data[g*q1.BlockBytes:]
			h := q1.F32ToF16(d())
			b[0], b[1] = byte(h), byte(h>>8)
			for i := 2; i < q1.BlockBytes; i++ {
				b[i] = byte(rng.Uint32())
			}
		}
		m, err = q1.FromQ1_0("random", rows, cols, data)
	default:
		bits := make([]byte, rows*cols/8)
		for i := range bits {
			bits[i] = byte(rng.Uint32())
		}
		scales := make([]byte, 2*groups)
		kind := q1.ScaleNegF16
		for g := 0; g < groups; g++ {
			h := q1.F32ToF16(-d())
			if layout == "mlx-bf16" {
				kind = q1.ScaleNegBF16
				h = uint16(math.Float32bits(-d()) >> 16)
			}
			scales[2*g], scales[2*g+1] = byte(h), byte(h>>8)
		}
		m, err = q1.FromSplit("random", rows, cols, bits, scales, kind)
	}
	if err != nil {
		panic(err) // shapes are multiples of 128 by construction
	}
	return m
}

// RandomFloats returns n values uniform in [−1, 1).
func RandomFloats(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 2*rng.Float32() - 1
	}
	return v
}

// CheckKernels compares every kernel run by k with its Go twin: float kernels by NMSE ≤ MaxNMSE,
// exact ones (embedding rows, residual add, whole-row flips) bit for bit.
func CheckKernels(t *testing.T, k *metal.KernelRunner, sz Sizes) {
	t.Run("matvec_q1", func(t *testing.T) { checkMatVec(t, k, sz) })
	t.Run("embed_q1", func(t *testing.T) { checkEmbed(t, k, sz) })
	t.Run("rms_norm", func(t *testing.T) { checkNorm(t, k, sz) })
	t.Run("add_silu_mul", func(t *testing.T) { checkElementwise(t, k, sz) })
	t.Run("rope_neox", func(t *testing.T) { checkRope(t, k) })
	t.Run("attention", func(t *testing.T) { checkAttention(t, k, sz) })
	t.Run("flip_delta", func(t *testing.T) { checkFlip(t, k) })
}

func checkMatVec(t *testing.T, k *metal.KernelRunner, sz Sizes) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, rows := range sz.Lengths {
		for _, cols := range sz.Cols {
			// n = 1 is decode; 5 spans two MV_NT=4 tiles, the second partial.
			for _, n := range []int{1, 5} {
				if sz.MaxWork > 0 && rows*cols*n > sz.MaxWork {
					continue
				}
				layout := layouts[(rows+cols/128+n)%len(layouts)] // rotate layouts over cases
				m := RandomMatrix(rng, layout, rows, cols)
				x := RandomFloats(rng, n*cols)
				want := make([]float32, n*rows)
				cpu.MatMul(m, x, n, want)
				got, err := k.MatMul(m, x, n)
				require.NoError(t, err)
				requireClose(t, got, want, MaxNMSE, fmt.Sprintf("%s %dx%d n=%d", layout, rows, cols, n))
			}
		}
	}
	// Every layout at one odd shape.
	for _, layout := range layouts {
		m := RandomMatrix(rng, layout, 33, 384)
		x := RandomFloats(rng, 3*384)
		want := make([]float32, 3*33)
		cpu.MatMul(m, x, 3, want)
		got, err := k.MatMul(m, x, 3)
		require.NoError(t, err)
		requireClose(t, got, want, MaxNMSE, layout+" 33x384 n=3")
	}
}

func checkEmbed(t *testing.T, k *metal.KernelRunner, sz Sizes) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i, cols := range sz.Cols {
		layout := layouts[i%len(layouts)]
		m := RandomMatrix(rng, layout, 300, cols)
		tokens := []int32{0, 299, 17, 17, 256, 1, 128}
		want := make([]float32, len(tokens)*cols)
		for j, tok := range tokens {
			m.DequantRow(int(tok), want[j*cols:(j+1)*cols])
		}
		got, err := k.Embedding(m, tokens)
		require.NoError(t, err)
		requireExact(t, got, want, fmt.Sprintf("%s embedding width %d", layout, cols))
	}
}

func checkNorm(t *testing.T, k *metal.KernelRunner, sz Sizes) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, width := range sz.Lengths {
		for _, rows := range []int{1, 3} {
			x := RandomFloats(rng, rows*width)
			w := RandomFloats(rng, width)
			want := make([]float32, len(x))
			cpu.RMSNorm(want, x, w, 1e-6)
			got, err := k.RMSNorm(x, w, 1e-6)
			require.NoError(t, err)
			requireClose(t, got, want, MaxNMSE, fmt.Sprintf("width %d rows %d", width, rows))
		}
	}
}

func checkElementwise(t *testing.T, k *metal.KernelRunner, sz Sizes) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range sz.Lengths {
		a, b := RandomFloats(rng, n), RandomFloats(rng, n)
		sum := append([]float32(nil), a...)
		cpu.Add(sum, b)
		got, err := k.Add(a, b)
		require.NoError(t, err)
		requireExact(t, got, sum, fmt.Sprintf("add %d", n)) // one rounding per element, as in Go

		for i := range a {
			a[i] *= 8 // gate values over the useful range of silu
		}
		want := make([]float32, n)
		cpu.SiluMul(want, a, b)
		got, err = k.SiluMul(a, b)
		require.NoError(t, err)
		requireClose(t, got, want, MaxNMSE, fmt.Sprintf("silu_mul %d", n))
	}
}

func checkRope(t *testing.T, k *metal.KernelRunner) {
	rng := rand.New(rand.NewPCG(9, 10))
	ropes := []cpu.Rope{
		{Dim: 64, Base: 1e6},
		{Dim: 128, Base: 1e6, Factor: 4, OrigContext: 16384, BetaFast: 32, BetaSlow: 1, AttnFactor: 1}, // YaRN
	}
	for _, r := range ropes {
		for _, c := range []struct{ pos0, n, heads int }{{0, 1, 1}, {5, 3, 4}, {4000, 2, 32}, {70000, 1, 8}} {
			cos, sin := r.Tables(c.pos0, c.n)
			x := RandomFloats(rng, c.n*c.heads*r.Dim)
			want := append([]float32(nil), x...)
			cpu.ApplyRope(want, c.n, c.heads, r.Dim, cos, sin)
			got, err := k.ApplyRope(x, c.n, c.heads, r.Dim, cos, sin)
			require.NoError(t, err)
			requireClose(t, got, want, MaxNMSE, fmt.Sprintf("dim %d factor %g pos %d n %d heads %d", r.Dim, r.Factor, c.pos0, c.n, c.heads))
		}
	}
}

func checkAttention(t *testing.T, k *metal.KernelRunner, sz Sizes) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, ctx := range sz.Lengths {
		for _, c := range []struct{ heads, kvHeads, dim int }{{4, 2, 64}, {2, 1, 128}} {
			for _, n := range []int{1, min(ctx, 5)} {
				q := RandomFloats(rng, n*c.heads*c.dim)
				kk := RandomFloats(rng, ctx*c.kvHeads*c.dim)
				v := RandomFloats(rng, ctx*c.kvHeads*c.dim)
				for i := range q {
					q[i] *= 4 // peakier softmax than unit-scale inputs give
				}
				want := make([]float32, len(q))
				cpu.Attention(want, q, kk, v, n, ctx, c.heads, c.kvHeads, c.dim, make([]float32, ctx))
				got, err := k.Attention(q, kk, v, n, ctx, c.heads, c.kvHeads, c.dim)
				require.NoError(t, err)
				requireClose(t, got, want, MaxNMSE, fmt.Sprintf("ctx %d n %d heads %d/%d dim %d", ctx, n, c.heads, c.kvHeads, c.dim))
			}
		}
	}
}

func checkFlip(t *testing.T, k *metal.KernelRunner) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, layout := range layouts {
		const rows, cols, n = 33, 384, 3
		m := RandomMatrix(rng, layout, rows, cols)
		x := RandomFloats(rng, n*cols)
		base := make([]float32, n*rows)
		cpu.MatMul(m, x, n, base)
		flips := []shaders.FlipDesc{
			{Row: 0, Group: -1, Col: -1}, {Row: 32, Group: -1, Col: -1}, // whole rows
			{Row: 5, Group: 0, Col: -1}, {Row: 5, Group: 2, Col: -1}, {Row: 31, Group: 1, Col: -1}, // groups
			{Row: 7, Group: -1, Col: 0}, {Row: 7, Group: -1, Col: 383}, {Row: 20, Group: -1, Col: 200}, // weights
		}
		got, err := k.FlipDelta(m, x, n, base, flips)
		require.NoError(t, err)
		require.Len(t, got, len(flips)*n)
		for f, fl := range flips {
			out := append([]float32(nil), base...)
			cpu.FlipDelta(m, x, n, out, int(fl.Row), int(fl.Group), int(fl.Col))
			want := make([]float32, n)
			for i := range want {
				want[i] = out[i*rows+int(fl.Row)]
			}
			where := fmt.Sprintf("%s flip %+v", layout, fl)
			if fl.Group < 0 && fl.Col < 0 {
				requireExact(t, got[f*n:(f+1)*n], want, where) // a negation
			} else {
				requireClose(t, got[f*n:(f+1)*n], want, MaxNMSE, where)
			}
		}
	}
}
