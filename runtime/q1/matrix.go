// Package q1 defines the one weight type of bankai-metal: a 1-bit matrix of packed sign bits
// with one scale per group of 128 weights, kept in the storage it was loaded from.
package q1

import (
	"encoding/binary"
	"fmt"
	"math"
)

// GroupSize is the number of weights that share one scale.
const GroupSize = 128

// BlockBytes is the size of one GGUF Q1_0 block: an fp16 scale d and 16 bytes of sign bits.
const BlockBytes = 18

// GroupSignBytes is the number of sign bytes in one 128-weight group.
const GroupSignBytes = GroupSize / 8

// ScaleKind says how the two scale bytes of a group encode d.
type ScaleKind uint8

const (
	// ScaleF16 is an IEEE binary16 d (GGUF Q1_0).
	ScaleF16 ScaleKind = iota
	// ScaleNegF16 is an fp16 MLX bias equal to -d.
	ScaleNegF16
	// ScaleNegBF16 is a bf16 MLX bias equal to -d.
	ScaleNegBF16
)

// Matrix is a Rows x Cols 1-bit matrix: w[r][c] = +d[r][c/128] if bit (r,c) is 1, else -d.
//
// Row r holds the weights applied to the input vector to produce output r (a Hugging Face
// Linear weight [out, in], GGUF ne = [in, out]). Storage is whatever the file gave us, described
// by two strided byte views so that a GGUF file (18-byte blocks) and an MLX directory (a sign
// array plus a bias array) are the same type without a copy:
//
//	signs of group (r,g): Bits[(r*Groups+g)*BitStride :][:16], weight j of the group is bit j%8 of byte j/8
//	scale of group (r,g): Scales[(r*Groups+g)*ScaleStride :][:2], little-endian, decoded per Kind
//
// Bits may alias a copy-on-write file mapping: flipping bits changes the mapped pages of this
// process only, never the file.
type Matrix struct {
	Name        string
	Rows, Cols  int
	Groups      int // Cols / 128
	Bits        []byte
	BitStride   int
	Scales      []byte
	ScaleStride int
	Kind        ScaleKind
}

// FromQ1_0 wraps GGUF Q1_0 tensor data (rows*cols/128 blocks of 18 bytes) without copying.
func FromQ1_0(name string, rows, cols int, data []byte) (*Matrix, error) {
	if err := checkShape(name, rows, cols); err != nil {
		return nil, err
	}
	groups := cols / GroupSize
	need := rows * groups * BlockBytes
	if len(data) != need {
		return nil, fmt.Errorf("q1: %s: data is %d bytes, want %d for %dx%d Q1_0", name, len(data), need, rows, cols)
	}
	return &Matrix{Name: name, Rows: rows, Cols: cols, Groups: groups,
		Bits: data[2:], BitStride: BlockBytes, Scales: data, ScaleStride: BlockBytes, Kind: ScaleF16}, nil
}

// FromSplit wraps separate sign bytes (rows*cols/8, row-major, LSB first; the MLX uint32
// packing viewed as little-endian bytes) and 2-byte scales of the given kind, one per group.
func FromSplit(name string, rows, cols int, bits, scales []byte, kind ScaleKind) (*Matrix, error) {
	if err := checkShape(name, rows, cols); err != nil {
		return nil, err
	}
	groups := cols / GroupSize
	if len(bits) != rows*cols/8 {
		return nil, fmt.Errorf("q1: %s: sign data is %d bytes, want %d", name, len(bits), rows*cols/8)
	}
	if len(scales) != rows*groups*2 {
		return nil, fmt.Errorf("q1: %s: scale data is %d bytes, want %d", name, len(scales), rows*groups*2)
	}
	return &Matrix{Name: name, Rows: rows, Cols: cols, Groups: groups,
		Bits: bits, BitStride: GroupSignBytes, Scales: scales, ScaleStride: 2, Kind: kind}, nil
}

func checkShape(name string, rows, cols int) error {
	if rows <= 0 || cols <= 0 {
		return fmt.Errorf("q1: %s: bad shape %dx%d", name, rows, cols)
	}
	if cols%GroupSize != 0 {
		return fmt.Errorf("q1: %s: %d columns is not a multiple of %d", name, cols, GroupSize)
	}
	if rows > math.MaxInt32 || cols > math.MaxInt32 || rows > math.MaxInt/cols {
		return fmt.Errorf("q1: %s: shape %dx%d too large", name, rows, cols)
	}
	return nil
}

// Scale returns d for group g of row r.
func (m *Matrix) Scale(r, g int) float32 {
	o := (r*m.Groups + g) * m.ScaleStride
	h := uint16(m.Scales[o]) | uint16(m.Scales[o+1])<<8
	switch m.Kind {
	case ScaleNegF16:
		return -F16ToF32(h)
	case ScaleNegBF16:
		return -math.Float32frombits(uint32(h) << 16)
	}
	return F16ToF32(h)
}

// RowScales writes the Groups scales of row r into dst (len >= Groups).
func (m *Matrix) RowScales(r int, dst []float32) {
	for g := 0; g < m.Groups; g++ {
		dst[g] = m.Scale(r, g)
	}
}

// GroupSigns returns the 16 sign bytes of group g of row r. The slice aliases the storage.
func (m *Matrix) GroupSigns(r, g int) []byte {
	o := (r*m.Groups + g) * m.BitStride
	return m.Bits[o : o+GroupSignBytes : o+GroupSignBytes]
}

// Bit reports the sign bit of weight (r, c): true means +d.
func (m *Matrix) Bit(r, c int) bool {
	s := m.GroupSigns(r, c/GroupSize)
	j := c % GroupSize
	return s[j>>3]>>(j&7)&1 == 1
}

// Weight returns the dequantised weight (r, c).
func (m *Matrix) Weight(r, c int) float32 {
	d := m.Scale(r, c/GroupSize)
	if m.Bit(r, c) {
		return d
	}
	return -d
}

// Kind is the granularity of a flip, decoded from its (group, col) pair by KindOf.
type Kind uint8

const (
	// KindInvalid is a (group, col) pair that describes no granularity.
	KindInvalid Kind = iota
	// KindRow flips every sign bit of one output row (group -1, col -1).
	KindRow
	// KindGroup flips the 128 sign bits of one group of one row (group >= 0, col -1).
	KindGroup
	// KindBit flips one sign bit (group -1, col >= 0).
	KindBit
)

// String returns "row", "group", "bit" or "invalid".
func (k Kind) String() string {
	switch k {
	case KindRow:
		return "row"
	case KindGroup:
		return "group"
	case KindBit:
		return "bit"
	}
	return "invalid"
}

// KindOf is the one place a flip's granularity is read from its (group, col) pair: a row
// flip has both -1, a group flip has col -1, a bit flip has group -1.
func KindOf(group, col int) Kind {
	switch {
	case group == -1 && col == -1:
		return KindRow
	case group >= 0 && col == -1:
		return KindGroup
	case group == -1 && col >= 0:
		return KindBit
	}
	return KindInvalid
}

// CheckFlip reports whether (row, group, col) addresses sign bits of m, naming the value out
// of range: "row 99999 out of range [0,12288)".
func (m *Matrix) CheckFlip(row, group, col int) error {
	switch k := KindOf(group, col); {
	case k == KindInvalid:
		return fmt.Errorf("group %d and col %d: want a row (both -1), group (col -1) or bit (group -1) flip", group, col)
	case row < 0 || row >= m.Rows:
		return fmt.Errorf("row %d out of range [0,%d)", row, m.Rows)
	case k == KindGroup && group >= m.Groups:
		return fmt.Errorf("group %d out of range [0,%d)", group, m.Groups)
	case k == KindBit && col >= m.Cols:
		return fmt.Errorf("col %d out of range [0,%d)", col, m.Cols)
	}
	return nil
}

// Flip XORs the sign bits that (row, group, col) addresses (see KindOf): the whole row, one
// 128-weight group, or one weight. Scales are untouched, so it is its own inverse. The address
// must pass CheckFlip.
func (m *Matrix) Flip(row, group, col int) {
	switch KindOf(group, col) {
	case KindRow:
		for g := 0; g < m.Groups; g++ {
			m.flipGroup(row, g)
		}
	case KindGroup:
		m.flipGroup(row, group)
	case KindBit:
		s := m.GroupSigns(row, col/GroupSize)
		j := col % GroupSize
		s[j>>3] ^= 1 << (j & 7)
	}
}

// flipGroup negates the 128 weights of group g of row r with two 64-bit XORs (the group is
// only 2-byte aligned in GGUF, so it goes through encoding/binary).
func (m *Matrix) flipGroup(r, g int) {
	s := m.GroupSigns(r, g)
	binary.LittleEndian.PutUint64(s, ^binary.LittleEndian.Uint64(s))
	binary.LittleEndian.PutUint64(s[8:], ^binary.LittleEndian.Uint64(s[8:]))
}

// DequantRow writes the Cols weights of row r into dst.
func (m *Matrix) DequantRow(r int, dst []float32) {
	for g := 0; g < m.Groups; g++ {
		d := m.Scale(r, g)
		s := m.GroupSigns(r, g)
		out := dst[g*GroupSize : (g+1)*GroupSize]
		for j := range out {
			if s[j>>3]>>(j&7)&1 == 1 {
				out[j] = d
			} else {
				out[j] = -d
			}
		}
	}
}

// SignBytes is the number of sign bytes in the matrix (the bits a patch can flip, over 8).
func (m *Matrix) SignBytes() int { return m.Rows * m.Cols / 8 }
