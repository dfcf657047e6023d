//go:build !purego

package cpu

// The Q8_0 assembly kernels (q8_amd64.s); q8RowsRef is their Go twin. For rows
// consecutive rows of a matrix starting at the sign bytes bits and the scale bytes scales
// (bitStride and scaleStride bytes per group, groups per row), with scales decoded as fp16, or
// as bf16 when bf16 != 0, and then XORed with sign:
//
// q8Dot1 writes out[r] for one prepared vector whose group g is at x + g·xStride bytes.
//
//go:noescape
func q8Dot1(bits, scales *byte, bitStride, scaleStride, groups, rows int, sign, bf16 uint32, x *uint32, xStride int, out *float32)

// q8Dot4 is q8Dot1 for a block of four prepared vectors at x, over one tile of groups
// columns: rows start rowBits and rowScales bytes apart, and acc (rows, 4, 8) carries each
// row's lane accumulators from one tile to the next. flags&1 marks the first tile (start from
// zero), flags&2 the last (write out[r] for vector 0, out[r + outStride/4] for vector 1, ...).
//
//go:noescape
func q8Dot4(bits, scales *byte, bitStride, scaleStride, groups, rows int, sign, bf16 uint32, x *uint32, out *float32, outStride, rowBits, rowScales int, acc *float32, flags int)

// q8TileGroups is how many groups q8Dot4 takes per call: the four vectors' words for them
// stay in L1 while the rows of a tile pass.
const q8TileGroups = 8
