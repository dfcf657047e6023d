package patch_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/gguf"
)

// ggufBit returns the byte offset in the file and the bit of weight (row, col) of a Q1_0
// tensor, by docs/FORMATS.md §8.6: row·rowBytes + (col/128)·18 + 2 + (col%128)/8, bit col%8.
func ggufBit(f *gguf.File, name string, row, col int) (int, uint) {
	t, ok := f.Tensor(name)
	if !ok {
		panic(name)
	}
	cols := int(t.Dims[0])
	rowBytes := cols / 128 * 18
	return int(f.DataOffset) + int(t.Offset) + row*rowBytes + col/128*18 + 2 + col%128/8, uint(col % 8)
}

// TestApplyFlipsExactlyTheExpectedBits applies a patch with row, group and bit flips to a
// testdata model and compares the whole mapped file with the original bytes.
func TestApplyFlipsExactlyTheExpectedBits(t *testing.T) {
	path := filepath.Join(testenv.Root(t), "testdata", "tiny-4layer.gguf")
	orig, err := os.ReadFile(path)
	require.NoError(t, err)
	m, err := runtime.Load(path)
	require.NoError(t, err)
	defer m.Close()
	f, err := gguf.Open(path) // an independent view of the file, to compute offsets
	require.NoError(t, err)
	defer f.Close()

	p := &patch.Patch{Name: "t", Fingerprint: m.Fingerprint(), Flips: []patch.Flip{
		patch.RowFlip(1, "up_proj", 17),      // 128 bits
		patch.RowFlip(3, "down_proj", 2),     // 384 bits (3 groups)
		patch.GroupFlip(0, "q_proj", 200, 0), // 128 bits
		patch.BitFlip(2, "o_proj", 5, 131),   // 1 bit
	}}
	want := map[int]byte{} // file offset -> xor mask
	addRow := func(name string, row, cols int) {
		for c := 0; c < cols; c++ {
			o, b := ggufBit(f, name, row, c)
			want[o] ^= 1 << b
		}
	}
	addRow("blk.1.ffn_up.weight", 17, 128)
	addRow("blk.3.ffn_down.weight", 2, 384)
	addRow("blk.0.attn_q.weight", 200, 128)
	o, b := ggufBit(f, "blk.2.attn_output.weight", 5, 131)
	want[o] ^= 1 << b

	a := patch.NewApplied(m)
	require.NoError(t, a.Apply(p, false))
	st, err := p.Stats(m)
	require.NoError(t, err)
	require.EqualValues(t, 128+384+128+1, st.BitsFlipped)

	// The runtime's matrices alias its own mapping of the file; read it back through Data views.
	mapped := make([]byte, len(orig))
	copy(mapped, orig)
	for layer := 0; layer < m.NumLayers(); layer++ {
		for _, proj := range patch.Projections() {
			mt, err := m.Matrix(layer, proj)
			require.NoError(t, err)
			tname := mt.Name
			ti, ok := f.Tensor(tname)
			require.True(t, ok, tname)
			start := int(f.DataOffset + ti.Offset)
			// Bits starts 2 bytes into the first block and runs to the end of the tensor.
			copy(mapped[start+2:start+int(ti.Size)], mt.Bits)
		}
	}
	diffBits := 0
	for i := range orig {
		if x := orig[i] ^ mapped[i]; x != 0 {
			require.Equal(t, want[i], x, "byte %#x", i)
			diffBits += popcount(x)
		}
	}
	for off, mask := range want {
		require.Equal(t, mask, orig[off]^mapped[off], "byte %#x", off)
	}
	require.Equal(t, 128+384+128+1, diffBits)

	require.NoError(t, a.Revert("t"))
	for layer := 0; layer < m.NumLayers(); layer++ {
		for _, proj := range patch.Projections() {
			mt, _ := m.Matrix(layer, proj)
			ti, _ := f.Tensor(mt.Name)
			start := int(f.DataOffset + ti.Offset)
			require.Equal(t, orig[start+2:start+int(ti.Size)], mt.Bits, "revert restores %s", mt.Name)
		}
	}
}

func popcount(x byte) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// TestUpRowFlipNegatesTheUnit checks the semantics of a row flip numerically: flipping row r
// of up_proj gives the same logits as negating unit r's up-projection output (and so its
// contribution silu(g_r)·u_r to the down projection) in the unpatched model.
func TestUpRowFlipNegatesTheUnit(t *testing.T) {
	m, err := runtime.Load(filepath.Join(testenv.Root(t), "testdata", "tiny-4layer.gguf"))
	require.NoError(t, err)
	defer m.Close()
	toks := []int32{116, 257, 32, 99, 97, 116, 115}
	const layer, row = 2, 77
	run := func(hook runtime.Hook) []float32 {
		x := make([]float32, len(toks)*m.Hidden)
		m.Embedding(toks, x)
		m.RunLayers(0, m.NumLayers(), x, []runtime.Seq{{N: len(toks)}}, hook)
		out := make([]float32, len(toks)*m.Vocab)
		m.Logits(x, len(toks), out)
		return out
	}
	base := run(nil)
	negated := run(func(l int, p runtime.Proj, in, out []float32, n int) {
		if l == layer && p == runtime.ProjUp {
			for i := 0; i < n; i++ {
				out[i*m.FFN+row] = -out[i*m.FFN+row]
			}
		}
	})
	a := patch.NewApplied(m)
	require.NoError(t, a.Apply(&patch.Patch{Name: "r", Fingerprint: m.Fingerprint(), Flips: []patch.Flip{patch.RowFlip(layer, "up_proj", row)}}, false))
	flipped := run(nil)
	require.NoError(t, a.Revert("r"))
	var moved, worst float64
	for i := range base {
		moved = math.Max(moved, math.Abs(float64(flipped[i]-base[i])))
		worst = math.Max(worst, math.Abs(float64(flipped[i]-negated[i])))
	}
	require.Greater(t, moved, 1e-3, "the flip changes the logits")
	require.Less(t, worst, 1e-4, "flipped weights == negated unit")
	require.Equal(t, base, run(nil), "revert restores the exact logits")
}
