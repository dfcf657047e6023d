package metal

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// randomMatrix returns a rows x cols matrix with random signs and fp16 scales, split layout.
func randomMatrix(t *testing.T, rng *rand.Rand, rows, cols int) *q1.Matrix {
	bits := make([]byte, rows*cols/8)
	for i := range bits {
		bits[i] = byte(rng.Uint32())
	}
	scales := make([]byte, 2*rows*cols/q1.GroupSize)
	for g := 0; g < len(scales); g += 2 {
		h := q1.F32ToF16(-0.01 - 0.09*rng.Float32())
		scales[g], scales[g+1] = byte(h), byte(h>>8)
	}
	m, err := q1.FromSplit("random", rows, cols, bits, scales, q1.ScaleNegF16)
	require.NoError(t, err)
	return m
}

// TestPlanFlips applies a plan on the CPU, each fixup's block matmul written over the output as
// the kernel does, and compares every batch row with a matmul by the matrix carrying every flip
// that covers that row. 13 rows make the last weight block overlap the one before it.
func TestPlanFlips(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 7))
	mat := randomMatrix(t, rng, 13, 256)
	m := &runtime.Model{Layers: []runtime.Layer{{}}}
	for p := range m.Layers[0].Proj {
		m.Layers[0].Proj[p] = mat
	}
	const rows = 10
	starts := []int{0, 3, 4}
	span := func(p runtime.Proj, row, group, col, start, n int) runtime.FlipSpan {
		return runtime.FlipSpan{Flip: patch.Flip{Proj: p.String(), Row: row, Group: group, Col: col}, Start: start, N: n}
	}
	for _, p := range []runtime.Proj{runtime.ProjUp, runtime.ProjK} {
		spans := []runtime.FlipSpan{
			span(p, 2, -1, -1, 0, 6),   // a row, rows 0..5
			span(p, 3, 1, -1, 2, 8),    // a group in the same block, overlapping
			span(p, 6, -1, -1, 5, 3),   // a row in the block [0,8) that the tail block [5,13) also covers
			span(p, 12, -1, 200, 1, 9), // a bit in the tail block
			span(p, 2, -1, -1, 4, 1),   // row 2 again: flipped back on row 4
			span(p, 9, -1, -1, 7, 0),   // empty
		}
		plan, err := planFlips(m, spans, starts, rows)
		require.NoError(t, err)
		x := make([]float32, rows*mat.Cols) // (rows, cols)
		for i := range x {
			x[i] = 2*rng.Float32() - 1
		}
		got := make([]float32, rows*mat.Rows) // (rows, Rows)
		cpu.MatMul(mat, x, rows, got)
		fixes := plan.fix[projKey{0, p}]
		require.NotEmpty(t, fixes)
		for _, f := range fixes {
			require.LessOrEqual(t, f.row0+f.rows, mat.Rows)
			if p == runtime.ProjK { // never across a sequence start
				for _, s := range starts {
					require.False(t, f.start < s && s < f.start+f.n, "fixup rows [%d,%d) straddle %d", f.start, f.start+f.n, s)
				}
			}
			blk := blockMatrix(mat, plan.w[f.off:], f.rows)
			out := make([]float32, f.n*f.rows)
			cpu.MatMul(blk, x[f.start*mat.Cols:], f.n, out)
			for t0 := 0; t0 < f.n; t0++ {
				copy(got[(f.start+t0)*mat.Rows+f.row0:], out[t0*f.rows:(t0+1)*f.rows])
			}
		}
		for r := 0; r < rows; r++ {
			flipped := cloneMatrix(mat)
			for _, f := range spans {
				if f.Start <= r && r < f.Start+f.N {
					flipped.Flip(f.Row, f.Group, f.Col)
				}
			}
			want := make([]float32, mat.Rows)
			cpu.MatMul(flipped, x[r*mat.Cols:], 1, want)
			require.Equal(t, want, got[r*mat.Rows:(r+1)*mat.Rows], "%v: batch row %d", p, r)
		}
	}
}

// cloneMatrix returns a copy of m with its own storage.
func cloneMatrix(m *q1.Matrix) *q1.Matrix {
	c := *m
	c.Bits = append([]byte(nil), m.Bits...)
	c.Scales = append([]byte(nil), m.Scales...)
	return &c
}

// TestRunFlippedClosed checks that a closed backend refuses work and frees its KV stores.
func TestRunFlippedClosed(t *testing.T) {
	m := tinyModel(t, false)
	rb := testBackend(t, m)
	b := rb.(*backend)
	c := m.NewKVCache(4)
	x := make([]float32, 2*m.Hidden)
	require.NoError(t, b.RunFlipped(0, 1, x, []runtime.Seq{{N: 2, Cache: c}}, nil))
	s, held := b.kv.lookup(c, 0, 1)
	require.NotNil(t, s)
	require.Equal(t, 2, held)
	_, held = b.kv.lookup(c, 0, 2)
	require.Zero(t, held, "layer 1 was not run")
	require.NoError(t, b.Close())
	require.ErrorIs(t, b.RunFlipped(0, 1, x, []runtime.Seq{{N: 2}}, nil), errClosed)
	s, _ = b.kv.lookup(c, 0, 1)
	require.Nil(t, s)
	require.Zero(t, b.kv.bytes)
}

// TestKVStoreGrowth continues a cache past its store's first allocation: the positions held are
// kept, and the result equals a run whose store never grew.
func TestKVStoreGrowth(t *testing.T) {
	m := tinyModel(t, false)
	rb := testBackend(t, m)
	defer rb.Close()
	b := rb.(*backend)
	rng := rand.New(rand.NewPCG(3, 9))
	first, second := 3, 70
	x := make([]float32, (first+second)*m.Hidden)
	for i := range x {
		x[i] = 0.2*rng.Float32() - 0.1
	}
	run := func(c *runtime.KVCache) []float32 {
		y := append([]float32(nil), x...)
		require.NoError(t, b.RunFlipped(0, 1, y[:first*m.Hidden], []runtime.Seq{{N: first, Cache: c}}, nil))
		c.Commit(first)
		require.NoError(t, b.RunFlipped(0, 1, y[first*m.Hidden:], []runtime.Seq{{N: second, Cache: c}}, nil))
		return y
	}
	grown := m.NewKVCache(1000)
	got := run(grown)
	s, held := b.kv.lookup(grown, 0, 1)
	require.Equal(t, first+second, held)
	require.Equal(t, 2*64, s.cap, "the store doubled from 64 positions")
	want := run(m.NewKVCache(first + second))
	require.Equal(t, want, got)
}

// TestKVStoreSweep checks that past the budget, the stores of dropped caches are released.
func TestKVStoreSweep(t *testing.T) {
	m := tinyModel(t, false)
	rb := testBackend(t, m)
	defer rb.Close()
	b := rb.(*backend)
	x := make([]float32, m.Hidden)
	func() {
		c := m.NewKVCache(2)
		require.NoError(t, b.RunFlipped(0, 1, x, []runtime.Seq{{N: 1, Cache: c}}, nil))
	}()
	b.kv.mu.Lock()
	one := b.kv.bytes
	b.kv.budget = one // the next store passes it
	b.kv.mu.Unlock()
	c := m.NewKVCache(2)
	require.NoError(t, b.RunFlipped(0, 1, x, []runtime.Seq{{N: 1, Cache: c}}, nil))
	b.kv.mu.Lock()
	defer b.kv.mu.Unlock()
	require.EqualValues(t, 1, b.kv.swept)
	require.Len(t, b.kv.byCache, 1, "the dropped cache's store is gone")
	require.Equal(t, one, b.kv.bytes)
	require.Equal(t, max(kvBudget, 2*one), b.kv.budget)
}

// TestRunFlippedSplit runs a batch larger than flipChunk allows in one command buffer: one
// layer per command buffer gives bit for bit the same result as one command buffer.
func TestRunFlippedSplit(t *testing.T) {
	m := tinyModel(t, false)
	rb := testBackend(t, m)
	defer rb.Close()
	b := rb.(*backend)
	rng := rand.New(rand.NewPCG(8, 1))
	seqs := []runtime.Seq{{N: 3}, {N: 2, Cache: m.NewKVCache(2)}}
	x := make([]float32, 5*m.Hidden)
	for i := range x {
		x[i] = 0.2*rng.Float32() - 0.1
	}
	flips := []runtime.FlipSpan{{Flip: patch.Flip{Layer: 1, Proj: runtime.ProjGate.String(), Row: 3, Group: -1, Col: -1}, Start: 1, N: 3}}
	one := append([]float32(nil), x...)
	require.NoError(t, b.RunFlipped(0, 2, one, seqs, flips))
	defer func(c int) { flipChunk = c }(flipChunk)
	flipChunk = 1 // 5 rows x 2 layers: one layer per command buffer
	seqs[1].Cache = m.NewKVCache(2)
	split := append([]float32(nil), x...)
	require.NoError(t, b.RunFlipped(0, 2, split, seqs, flips))
	require.Equal(t, one, split)
	require.NotEqual(t, x, split)
}
