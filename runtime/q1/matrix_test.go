package q1

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHalfRoundTrip(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		if math.IsNaN(float64(f)) {
			continue
		}
		require.Equal(t, uint16(h), F32ToF16(f), "pattern %#04x (%g)", h, f)
	}
	// Round to nearest even: 1 + 2^-11 is halfway between 1 and 1+2^-10 and rounds to 1.
	require.Equal(t, uint16(0x3c00), F32ToF16(1+1.0/2048))
	require.Equal(t, uint16(0x3c02), F32ToF16(1+3.0/2048))
	require.Equal(t, uint16(0x7c00), F32ToF16(70000))        // overflow to +inf
	require.Equal(t, uint16(0x0001), F32ToF16(5.9604645e-8)) // smallest subnormal
	require.Equal(t, float32(-2), BF16ToF32(0xc000))
}

// TestViewsAgree builds the same matrix as GGUF blocks and as split sign/bias arrays (MLX)
// and checks that every accessor and every flip agrees.
func TestViewsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, cols = 5, 256
	g := cols / GroupSize
	blocks := make([]byte, rows*g*BlockBytes)
	bits := make([]byte, rows*cols/8)
	bias := make([]byte, rows*g*2)
	for i := 0; i < rows*g; i++ {
		d := float32(0.01 + rng.Float64())
		h := F32ToF16(d)
		binary.LittleEndian.PutUint16(blocks[i*BlockBytes:], h)
		binary.LittleEndian.PutUint16(bias[2*i:], F32ToF16(-F16ToF32(h)))
		for j := 0; j < 16; j++ {
			b := byte(rng.Uint32())
			blocks[i*BlockBytes+2+j], bits[i*16+j] = b, b
		}
	}
	a, err := FromQ1_0("a", rows, cols, blocks)
	require.NoError(t, err)
	b, err := FromSplit("b", rows, cols, bits, bias, ScaleNegF16)
	require.NoError(t, err)
	check := func() {
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				require.Equal(t, a.Weight(r, c), b.Weight(r, c))
			}
		}
	}
	check()
	w10, w31, w4 := a.Weight(1, 0), a.Weight(3, 130), a.Weight(4, 200)
	for _, m := range []*Matrix{a, b} {
		m.Flip(1, -1, -1)
		m.Flip(3, 1, -1)
		m.Flip(4, -1, 200)
	}
	check()
	require.Equal(t, -w10, a.Weight(1, 0))
	require.Equal(t, -w31, a.Weight(3, 130))
	require.Equal(t, -w4, a.Weight(4, 200))
	_, err = FromQ1_0("bad", 2, 100, nil)
	require.ErrorContains(t, err, "100 columns is not a multiple of 128")
	_, err = FromQ1_0("short", 2, 128, make([]byte, 10))
	require.ErrorContains(t, err, "data is 10 bytes, want 36")
}

// TestKindOfAndCheckFlip checks the one decoding of (group, col) and the range checks against
// a 4x256 matrix (2 groups per row).
func TestKindOfAndCheckFlip(t *testing.T) {
	for _, c := range []struct {
		group, col int
		want       Kind
	}{{-1, -1, KindRow}, {0, -1, KindGroup}, {5, -1, KindGroup}, {-1, 0, KindBit}, {-1, 300, KindBit},
		{0, 0, KindInvalid}, {-2, -1, KindInvalid}, {-1, -2, KindInvalid}, {3, 7, KindInvalid}} {
		require.Equal(t, c.want, KindOf(c.group, c.col), "group %d col %d", c.group, c.col)
	}
	m, err := FromQ1_0("m", 4, 256, make([]byte, 4*2*BlockBytes))
	require.NoError(t, err)
	require.NoError(t, m.CheckFlip(3, -1, -1))
	require.NoError(t, m.CheckFlip(0, 1, -1))
	require.NoError(t, m.CheckFlip(2, -1, 255))
	require.EqualError(t, m.CheckFlip(4, -1, -1), "row 4 out of range [0,4)")
	require.EqualError(t, m.CheckFlip(-1, -1, -1), "row -1 out of range [0,4)")
	require.EqualError(t, m.CheckFlip(0, 2, -1), "group 2 out of range [0,2)")
	require.EqualError(t, m.CheckFlip(0, -1, 256), "col 256 out of range [0,256)")
	require.ErrorContains(t, m.CheckFlip(0, 0, 0), "want a row (both -1), group (col -1) or bit (group -1) flip")
	// Flip of a group then of each of its bits is the identity.
	m.Flip(1, 1, -1)
	for c := 128; c < 256; c++ {
		m.Flip(1, -1, c)
	}
	require.Equal(t, make([]byte, len(m.Bits)), m.Bits)
}
