package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/stretchr/testify/require"
)

// splitMatrix returns a random rows x cols matrix in the MLX layout (separate sign and scale
// arrays) with scales of the given kind, magnitudes in [0.5, 1).
func splitMatrix(t *testing.T, rng *rand.Rand, rows, cols int, kind q1.ScaleKind) *q1.Matrix {
	bits := make([]byte, rows*cols/8)
	for i := range bits {
		bits[i] = byte(rng.Uint32())
	}
	scales := make([]byte, rows*cols/q1.GroupSize*2)
	for i := 0; i < len(scales); i += 2 {
		switch kind {
		case q1.ScaleNegBF16: // -[0.5, 1): sign, exponent 126, 7 random mantissa bits
			scales[i], scales[i+1] = byte(rng.Uint32())&0x7f, 0xbf
		default: // ±[0.5, 1) in fp16
			scales[i], scales[i+1] = byte(rng.Uint32()), 0x38|byte(rng.Uint32())&0x03
			if kind == q1.ScaleNegF16 {
				scales[i+1] |= 0x80
			}
		}
	}
	m, err := q1.FromSplit("w", rows, cols, bits, scales, kind)
	require.NoError(t, err)
	return m
}

// rowCopy returns row r of m as a one-row matrix in the MLX layout, as bfs builds a flipped row.
func rowCopy(m *q1.Matrix, r int) *q1.Matrix {
	var bits, scales []byte
	for g := 0; g < m.Groups; g++ {
		bits = append(bits, m.GroupSigns(r, g)...)
		o := (r*m.Groups + g) * m.ScaleStride
		scales = append(scales, m.Scales[o], m.Scales[o+1])
	}
	return &q1.Matrix{Name: m.Name, Rows: 1, Cols: m.Cols, Groups: m.Groups, Bits: bits,
		BitStride: q1.GroupSignBytes, Scales: scales, ScaleStride: 2, Kind: m.Kind}
}

func requireSameBits(t *testing.T, want, got []float32, msg string, args ...any) {
	t.Helper()
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			require.Failf(t, "results differ", "%s: index %d: %v vs %v", fmt.Sprintf(msg, args...), i, want[i], got[i])
		}
	}
}

// Every path (nibble tables for few rows, 256-entry tables for one vector, interleaved tables
// for two to four vectors, tiles and row blocks, worker chunks) must give each vector the same
// bits as MatMul of that vector alone, and each row the same bits as a one-row copy of it.
func TestMatMulPathsBitIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, sh := range []struct{ rows, cols int }{
		{1, 128}, {7, 384}, {nibbleRows, 256}, {20, 4096}, {nibbleRows + 1, 256}, {70, 640}, {700, 12288},
	} {
		for _, kind := range []q1.ScaleKind{q1.ScaleF16, q1.ScaleNegF16, q1.ScaleNegBF16} {
			m := splitMatrix(t, rng, sh.rows, sh.cols, kind)
			if kind == q1.ScaleF16 {
				m = randomMatrix(t, sh.rows, sh.cols, uint64(sh.rows)) // GGUF blocks
			}
			const n = 9 // two blocks of four, then one
			x := randVec(rng, n*sh.cols)
			single := make([]float32, n*sh.rows)
			for v := range n {
				MatMul(m, x[v*sh.cols:(v+1)*sh.cols], 1, single[v*sh.rows:(v+1)*sh.rows])
			}
			for _, th := range []int{1, 2, 3} {
				for _, nn := range []int{2, 4, 7, n} {
					got := make([]float32, nn*sh.rows)
					Workers(th).MatMul(m, x, nn, got)
					requireSameBits(t, single[:nn*sh.rows], got, "shape %+v kind %d threads %d n %d", sh, kind, th, nn)
				}
			}
			for _, r := range []int{0, sh.rows / 2, sh.rows - 1} {
				one := make([]float32, n)
				MatMul(rowCopy(m, r), x, n, one)
				for v := range n {
					requireSameBits(t, single[v*sh.rows+r:v*sh.rows+r+1], one[v:v+1], "shape %+v kind %d row %d vector %d", sh, kind, r, v)
				}
			}
		}
	}
}

// MatMulShared must give each matrix MatMul's bits, also when the matrices together have
// enough rows for the 256-entry tables and one alone would use nibble tables.
func TestMatMulSharedMatchesMatMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, rows := range [][]int{{8, 8}, {40, 8, 8}, {300, 100}} {
		ms := make([]*q1.Matrix, len(rows))
		for i, r := range rows {
			ms[i] = randomMatrix(t, r, 512, uint64(100+i))
		}
		for _, n := range []int{1, 2, 6} {
			x := randVec(rng, n*512)
			outs := make([][]float32, len(ms))
			for i, m := range ms {
				outs[i] = make([]float32, n*m.Rows)
			}
			MatMulShared(ms, x, n, outs)
			for i, m := range ms {
				want := make([]float32, n*m.Rows)
				MatMul(m, x, n, want)
				requireSameBits(t, want, outs[i], "rows %v n %d matrix %d", rows, n, i)
			}
		}
	}
}

// The MLX layouts and scale kinds against the float64 reference.
func TestMatMulSplitLayoutsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, kind := range []q1.ScaleKind{q1.ScaleNegF16, q1.ScaleNegBF16} {
		for _, sh := range []struct{ rows, cols, n int }{{5, 256, 1}, {5, 256, 3}, {65, 384, 1}, {65, 384, 6}} {
			m := splitMatrix(t, rng, sh.rows, sh.cols, kind)
			x := randVec(rng, sh.n*sh.cols)
			out := make([]float32, sh.n*sh.rows)
			MatMul(m, x, sh.n, out)
			ref := refMatMul(m, sh.rows, sh.cols, x, sh.n)
			for i := range out {
				require.InDelta(t, ref[i], float64(out[i]), 1e-5*math.Sqrt(float64(sh.cols))*4, "kind %d shape %+v index %d", kind, sh, i)
			}
		}
	}
}

// rowScales must decode every 16-bit pattern of every kind exactly like q1.Matrix.Scale
// (subnormals, zeros, infinities and NaNs included).
func TestRowScalesMatchScale(t *testing.T) {
	scales := make([]byte, 2<<16) // one row of 65536 groups, scale g = g
	for h := range 1 << 16 {
		scales[2*h], scales[2*h+1] = byte(h), byte(h>>8)
	}
	for _, kind := range []q1.ScaleKind{q1.ScaleF16, q1.ScaleNegF16, q1.ScaleNegBF16} {
		m := &q1.Matrix{Rows: 1, Cols: 128 << 16, Groups: 1 << 16, Scales: scales, ScaleStride: 2, Kind: kind}
		got := make([]float32, m.Groups)
		rowScales(m, 0, got)
		for g, v := range got {
			require.Equal(t, math.Float32bits(m.Scale(0, g)), math.Float32bits(v), "kind %d pattern %#04x", kind, g)
		}
	}
}

// The tables: T_k[b] is the signed sum of the 8 inputs (exactly, for small integers), and the
// nibble and interleaved layouts hold the same values as the 256-entry one.
func TestTablesAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	const cols = 256
	x := make([]float32, vecBlock*cols) // (4, cols)
	for i := range x {
		x[i] = float32(rng.IntN(41) - 20)
	}
	t4 := make([]float32, cols*32*vecBlock)
	buildLUT8x4(x, t4, 0, cols/8)
	for v := range vecBlock {
		xv := x[v*cols : (v+1)*cols]
		t8 := make([]float32, cols*32)
		tn := make([]float32, cols*4)
		buildLUT8(xv, t8, 0, cols/8)
		buildNibbles(xv, tn)
		for k := range cols / 8 {
			for b := range 256 {
				var want float32
				for i := range 8 {
					if b>>i&1 == 1 {
						want += xv[8*k+i]
					} else {
						want -= xv[8*k+i]
					}
				}
				require.Equal(t, want, t8[256*k+b], "vector %d slice %d byte %#x", v, k, b)
				require.Equal(t, math.Float32bits(t8[256*k+b]), math.Float32bits(t4[(256*k+b)*vecBlock+v]))
				require.Equal(t, math.Float32bits(t8[256*k+b]), math.Float32bits(tn[32*k+b&15]+tn[32*k+16+b>>4]))
			}
		}
	}
}
