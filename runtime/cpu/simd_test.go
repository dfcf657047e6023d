package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// withLevel runs f at SIMD level l and restores the previous level.
func withLevel(t testing.TB, l Level, f func()) {
	t.Helper()
	old := SIMD()
	require.NoError(t, SetSIMD(l))
	defer func() { require.NoError(t, SetSIMD(old)) }()
	f()
}

func TestParseAndSetLevel(t *testing.T) {
	for l := LevelPurego; l < numLevels; l++ {
		got, err := ParseLevel(l.String())
		require.NoError(t, err)
		require.Equal(t, l, got)
	}
	_, err := ParseLevel("sse9")
	require.ErrorContains(t, err, `unknown SIMD level "sse9"`)

	ls := Levels()
	require.Equal(t, LevelPurego, ls[0])
	require.Contains(t, ls, SIMD(), "the active level is an available one")
	// AVX-512 kernels are not written: the level is never available and cannot be set.
	err = SetSIMD(LevelAVX512)
	require.ErrorContains(t, err, "avx512 is not available")
	require.NotEqual(t, LevelAVX512, SIMD())
	require.Error(t, SetSIMD(numLevels))
	require.NoError(t, SetSIMD(SIMD()))
}

func TestChooseLevel(t *testing.T) {
	ls := Levels()
	best := ls[len(ls)-1]
	l, warn := chooseLevel("")
	require.Equal(t, best, l)
	require.Empty(t, warn)
	l, warn = chooseLevel("PureGo")
	require.Equal(t, LevelPurego, l)
	require.Empty(t, warn)
	l, warn = chooseLevel("avx512")
	require.Equal(t, best, l, "an unavailable level falls back to the best one")
	require.Contains(t, warn, "BANKAI_SIMD=avx512: not available")
	l, warn = chooseLevel("bogus")
	require.Equal(t, best, l)
	require.Contains(t, warn, `unknown SIMD level "bogus"`)
}

// randomKindMatrix is a random matrix with every scale kind's storage: GGUF Q1_0 blocks for
// ScaleF16, split sign and scale arrays for the MLX kinds. Scales are random finite bit
// patterns (zeros, subnormals and both signs included).
func randomKindMatrix(t testing.TB, kind q1.ScaleKind, rows, cols int, seed uint64) *q1.Matrix {
	rng := rand.New(rand.NewPCG(seed, 7))
	groups := cols / q1.GroupSize
	scale := func() (byte, byte) {
		for {
			h := uint16(rng.Uint32())
			if kind == q1.ScaleNegBF16 {
				h = h&0x807f | uint16(rng.IntN(40)+107)<<7 // exponents near 1 (and a few small)
				if rng.IntN(16) == 0 {
					h &= 0x807f // zero or subnormal
				}
				return byte(h), byte(h >> 8)
			}
			if h>>10&0x1f != 0x1f { // not Inf or NaN
				return byte(h), byte(h >> 8)
			}
		}
	}
	if kind == q1.ScaleF16 {
		data := make([]byte, rows*groups*q1.BlockBytes)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		for i := 0; i < len(data); i += q1.BlockBytes {
			data[i], data[i+1] = scale()
		}
		m, err := q1.FromQ1_0("w", rows, cols, data)
		require.NoError(t, err)
		return m
	}
	bits := make([]byte, rows*cols/8)
	for i := range bits {
		bits[i] = byte(rng.Uint32())
	}
	scales := make([]byte, rows*groups*2)
	for i := 0; i < len(scales); i += 2 {
		scales[i], scales[i+1] = scale()
	}
	m, err := q1.FromSplit("w", rows, cols, bits, scales, kind)
	require.NoError(t, err)
	return m
}

// randomActivations is (n, cols) of values whose size varies from block to block, with a few
// all-zero blocks and exact quantisation ties.
func randomActivations(rng *rand.Rand, n, cols int) []float32 {
	x := make([]float32, n*cols)
	for b := 0; b < len(x); b += Q8Block {
		switch rng.IntN(12) {
		case 0: // all zero
		case 1: // integers with amax 127: q = round(x), ties included
			for i := range Q8Block {
				x[b+i] = float32(rng.IntN(255)-127) + 0.5*float32(rng.IntN(2))
			}
			x[b+rng.IntN(Q8Block)] = 127
		default:
			s := math.Exp(rng.NormFloat64() * 4)
			for i := range Q8Block {
				x[b+i] = float32(rng.NormFloat64() * s)
			}
		}
	}
	return x
}

// sharedKernel is MatMulShared or MatMulQ8Shared as a method expression.
type sharedKernel func(w Workers, ms []*q1.Matrix, x []float32, n int, outs [][]float32)

// atLevels runs kernel on ms at every available level and thread count and holds each result
// to the pure-Go one bit for bit.
func atLevels(t *testing.T, kernel sharedKernel, ms []*q1.Matrix, x []float32, n int, threads []int, name string) {
	t.Helper()
	run := func(w Workers) [][]float32 {
		outs := make([][]float32, len(ms))
		for i, m := range ms {
			outs[i] = make([]float32, n*m.Rows)
			for j := range outs[i] {
				outs[i][j] = float32(math.NaN()) // every output must be written
			}
		}
		kernel(w, ms, x, n, outs)
		return outs
	}
	var want [][]float32
	withLevel(t, LevelPurego, func() { want = run(0) })
	for _, l := range Levels() {
		for _, th := range threads {
			var got [][]float32
			withLevel(t, l, func() { got = run(Workers(th)) })
			for i := range ms {
				requireSameBits(t, want[i], got[i], "%s level %s threads %d matrix %d", name, l, th, i)
			}
		}
	}
}

// q8AtLevels is atLevels for MatMulQ8Shared (the Q8 path).
func q8AtLevels(t *testing.T, ms []*q1.Matrix, x []float32, n int, threads []int, name string) {
	t.Helper()
	atLevels(t, Workers.MatMulQ8Shared, ms, x, n, threads, name)
}

func TestQ8LevelsBitIdenticalSmall(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	kinds := []q1.ScaleKind{q1.ScaleF16, q1.ScaleNegF16, q1.ScaleNegBF16}
	for rows := 1; rows <= 257; rows++ {
		cols := q1.GroupSize * (1 + rows%3)
		n := 1 + rows%9
		m := randomKindMatrix(t, kinds[rows%3], rows, cols, uint64(rows))
		x := randomActivations(rng, n, cols)
		q8AtLevels(t, []*q1.Matrix{m}, x, n, []int{1, 3}, fmt.Sprintf("rows %d cols %d n %d", rows, cols, n))
	}
}

func TestQ8LevelsBitIdenticalShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, sh := range []struct {
		rows, cols, n int
		kind          q1.ScaleKind
	}{
		{4096, 128, 1, q1.ScaleF16},
		{300, 4096, 1, q1.ScaleF16},
		{1, 12288, 6, q1.ScaleNegF16},
		{129, 12288, 5, q1.ScaleF16},
		{777, 1152, 70, q1.ScaleNegBF16}, // more vectors than one preparation chunk
		{4096, 4096, 2, q1.ScaleF16},
		{50, 2560, 8, q1.ScaleNegF16}, // tiles of groups: 8 + 8 + 4
	} {
		m := randomKindMatrix(t, sh.kind, sh.rows, sh.cols, uint64(sh.rows*sh.cols))
		x := randomActivations(rng, sh.n, sh.cols)
		q8AtLevels(t, []*q1.Matrix{m}, x, sh.n, []int{1, 2, 4}, fmt.Sprintf("%+v", sh))
	}
	if testing.Short() {
		return
	}
	// the 8B gate/up pair, shared input, and down
	gate := randomKindMatrix(t, q1.ScaleF16, 12288, 4096, 1)
	up := randomKindMatrix(t, q1.ScaleF16, 12288, 4096, 2)
	q8AtLevels(t, []*q1.Matrix{gate, up}, randomActivations(rng, 5, 4096), 5, []int{2}, "8B gate/up")
	down := randomKindMatrix(t, q1.ScaleF16, 4096, 12288, 3)
	q8AtLevels(t, []*q1.Matrix{down}, randomActivations(rng, 1, 12288), 1, []int{1, 2}, "8B down")
}

// TestQ8TwinMatchesLaneTables holds the Go twin of the assembly (q8RowsRef) to q8Row.
func TestQ8TwinMatchesLaneTables(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for i, kind := range []q1.ScaleKind{q1.ScaleF16, q1.ScaleNegF16, q1.ScaleNegBF16} {
		const rows, cols, n = 70, 640, 6
		m := randomKindMatrix(t, kind, rows, cols, uint64(i))
		x := randomActivations(rng, n, cols)
		G := cols / q1.GroupSize
		buf := make([]uint32, 2*q8VecBlock*G*q8GroupWords)
		prepareQ8SIMD(Workers(0).count(), x, n, cols, buf)
		q, v := make([]int8, cols), q8Vec{d: make([]float32, cols/Q8Block), lut: make([]float32, cols*4)}
		for j := range n {
			b, nb := j/q8VecBlock, min(q8VecBlock, n-j/q8VecBlock*q8VecBlock)
			got := make([]float32, rows)
			q8RowsRef(m, 0, rows, buf[b*q8VecBlock*G*q8GroupWords+j%q8VecBlock*q8GroupWords:], nb*q8GroupWords, got)
			v.prepare(x[j*cols:(j+1)*cols], q)
			want := make([]float32, rows)
			for r := range want {
				want[r] = q8Row(m, r, &v)
			}
			requireSameBits(t, want, got, "kind %d vector %d", kind, j)
		}
	}
}

// matMulAtLevels is atLevels for MatMulShared (the float path).
func matMulAtLevels(t *testing.T, ms []*q1.Matrix, x []float32, n int, threads []int, name string) {
	t.Helper()
	atLevels(t, Workers.MatMulShared, ms, x, n, threads, name)
}

func TestMatMulLevelsBitIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	kinds := []q1.ScaleKind{q1.ScaleF16, q1.ScaleNegF16, q1.ScaleNegBF16}
	for rows := 1; rows <= 257; rows += 4 {
		cols := q1.GroupSize * (1 + rows%3)
		n := 1 + rows%9
		m := randomKindMatrix(t, kinds[rows%3], rows+128, cols, uint64(rows)) // past nibbleRows
		x := randomActivations(rng, n, cols)
		matMulAtLevels(t, []*q1.Matrix{m}, x, n, []int{1, 3}, fmt.Sprintf("rows %d cols %d n %d", rows+128, cols, n))
	}
	for _, sh := range []struct{ rows, cols, n int }{{4096, 128, 4}, {300, 4096, 8}, {129, 12288, 5}, {2048, 2048, 13}} {
		m := randomKindMatrix(t, q1.ScaleF16, sh.rows, sh.cols, uint64(sh.rows))
		matMulAtLevels(t, []*q1.Matrix{m, m}, randomActivations(rng, sh.n, sh.cols), sh.n, []int{1, 2}, fmt.Sprintf("%+v", sh))
	}
}
