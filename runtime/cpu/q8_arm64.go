//go:build !purego

package cpu

// q8Dot1 is the NEON kernel of q8_arm64.s; see q8_amd64.go for its contract. q8RowsRef is
// its Go twin.
//
//go:noescape
func q8Dot1(bits, scales *byte, bitStride, scaleStride, groups, rows int, sign, bf16 uint32, x *uint32, xStride int, out *float32)

// q8Dot4 is the four-vector NEON kernel of q8_arm64.s; see q8_amd64.go for its contract.
//
//go:noescape
func q8Dot4(bits, scales *byte, bitStride, scaleStride, groups, rows int, sign, bf16 uint32, x *uint32, out *float32, outStride, rowBits, rowScales int, acc *float32, flags int)

// q8TileGroups is how many groups q8Dot4 takes per call (see q8_amd64.go).
const q8TileGroups = 8
