package patch

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/stretchr/testify/require"
)

// fakeShapes are small stand-ins for the seven projections: (rows, cols). down_proj has three
// groups per row, like Bonsai's 96 against 32, so code that assumes 32 groups shows up.
var fakeShapes = map[string][2]int{
	"q_proj": {8, 256}, "k_proj": {4, 256}, "v_proj": {4, 256}, "o_proj": {8, 256},
	"gate_proj": {12, 256}, "up_proj": {12, 256}, "down_proj": {8, 384},
}

// fakeModel is a Target over random GGUF Q1_0 blocks.
type fakeModel struct {
	layers int
	fp     string
	data   map[string][]byte // "L1.up_proj" -> (rows*cols/128*18) Q1_0 blocks
	mats   map[string]*q1.Matrix
}

func matName(layer int, proj string) string { return fmt.Sprintf("L%d.%s", layer, proj) }

// newFake builds a model with random signs and scales.
func newFake(tb testing.TB, seed uint64, layers int) *fakeModel {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	m := &fakeModel{layers: layers, fp: fmt.Sprintf("fake-%d", seed), data: map[string][]byte{}}
	for l := range layers {
		for proj, s := range fakeShapes {
			buf := make([]byte, s[0]*s[1]/q1.GroupSize*q1.BlockBytes)
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			m.data[matName(l, proj)] = buf
		}
	}
	m.rebind(tb)
	return m
}

func (m *fakeModel) rebind(tb testing.TB) {
	tb.Helper()
	m.mats = map[string]*q1.Matrix{}
	for name, buf := range m.data {
		var l int
		var proj string
		_, err := fmt.Sscanf(name, "L%d.%s", &l, &proj)
		require.NoError(tb, err)
		s := fakeShapes[proj]
		mat, err := q1.FromQ1_0(name, s[0], s[1], buf)
		require.NoError(tb, err)
		m.mats[name] = mat
	}
}

func (m *fakeModel) NumLayers() int      { return m.layers }
func (m *fakeModel) Fingerprint() string { return m.fp }
func (m *fakeModel) Matrix(layer int, proj string) (*q1.Matrix, error) {
	mat, ok := m.mats[matName(layer, proj)]
	if !ok {
		return nil, fmt.Errorf("no tensor L%d.%s", layer, proj)
	}
	return mat, nil
}

// clone deep-copies the model (same fingerprint).
func (m *fakeModel) clone(tb testing.TB) *fakeModel {
	c := &fakeModel{layers: m.layers, fp: m.fp, data: map[string][]byte{}}
	for k, v := range m.data {
		c.data[k] = bytes.Clone(v)
	}
	c.rebind(tb)
	return c
}

// bitPos is one sign bit of the model.
type bitPos struct {
	name     string
	row, col int
}

// expectedBits computes, from the flip list alone and the shapes, which sign bits a patch
// flips: each flip toggles its bits, so overlaps and repeats cancel.
func expectedBits(flips []Flip) map[bitPos]bool {
	out := map[bitPos]bool{}
	toggle := func(p bitPos) {
		if out[p] {
			delete(out, p)
		} else {
			out[p] = true
		}
	}
	for _, f := range flips {
		proj, err := CanonicalProj(f.Proj)
		if err != nil {
			panic(err)
		}
		name := matName(f.Layer, proj)
		cols := fakeShapes[proj][1]
		switch {
		case f.Group == -1 && f.Col == -1:
			for c := range cols {
				toggle(bitPos{name, f.Row, c})
			}
		case f.Col == -1:
			for c := f.Group * 128; c < f.Group*128+128; c++ {
				toggle(bitPos{name, f.Row, c})
			}
		default:
			toggle(bitPos{name, f.Row, f.Col})
		}
	}
	return out
}

// diffBits lists the bits that differ between two models by reading the raw Q1_0 blocks
// (block (r, c/128) at byte offset ((r*cols/128)+c/128)*18, sign bytes after the 2-byte scale,
// weight j at bit j%8 of sign byte j/8). It also fails if any scale byte differs.
func diffBits(tb testing.TB, a, b *fakeModel) map[bitPos]bool {
	tb.Helper()
	out := map[bitPos]bool{}
	for name, da := range a.data {
		db := b.data[name]
		var l int
		var proj string
		fmt.Sscanf(name, "L%d.%s", &l, &proj)
		cols := fakeShapes[proj][1]
		for blk := 0; blk*18 < len(da); blk++ {
			base := blk * 18
			require.Equal(tb, da[base:base+2], db[base:base+2], "%s block %d: scale changed", name, blk)
			for j := range 128 {
				x := (da[base+2+j/8] ^ db[base+2+j/8]) >> (j % 8) & 1
				if x == 1 {
					r := blk / (cols / 128)
					c := blk%(cols/128)*128 + j
					out[bitPos{name, r, c}] = true
				}
			}
		}
	}
	return out
}

// equalData reports whether two models have identical bytes.
func equalData(a, b *fakeModel) bool {
	for k, v := range a.data {
		if !bytes.Equal(v, b.data[k]) {
			return false
		}
	}
	return true
}

// randomFlips draws n distinct valid flips on the fake model from rng.
func randomFlips(rng *rand.Rand, layers, n int) []Flip {
	seen := map[Flip]bool{}
	var out []Flip
	for len(out) < n {
		proj := ProjName(rng.IntN(NumProj))
		s := fakeShapes[proj]
		l, r := rng.IntN(layers), rng.IntN(s[0])
		var f Flip
		switch rng.IntN(3) {
		case 0:
			f = RowFlip(l, proj, r)
		case 1:
			f = GroupFlip(l, proj, r, rng.IntN(s[1]/128))
		default:
			f = BitFlip(l, proj, r, rng.IntN(s[1]))
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}
