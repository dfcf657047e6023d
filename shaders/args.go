package shaders

import (
	"unsafe"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// The Go copies of the argument structs of args.h, field for field (all 4-byte fields, so no
// padding on either side). The `c` tags name the C fields; TestArgsLayout compares sizes and
// offsets with written-down constants and with what the clang harness prints.

// Q1Layout describes a 1-bit matrix in its file layout (common.h), with byte offsets of its sign
// and scale views inside the buffers bound for it.
type Q1Layout struct {
	Rows        uint32 `c:"rows"`
	Cols        uint32 `c:"cols"`
	Groups      uint32 `c:"groups"`
	BitStride   uint32 `c:"bit_stride"`
	ScaleStride uint32 `c:"scale_stride"`
	ScaleKind   uint32 `c:"scale_kind"`
	BitOff      uint32 `c:"bit_off"`
	ScaleOff    uint32 `c:"scale_off"`
}

// Q1Args are the arguments of matvec_q1 and embed_q1.
type Q1Args struct {
	W Q1Layout `c:"w"`
	N uint32   `c:"n"`
}

// NormArgs are the arguments of rms_norm.
type NormArgs struct {
	Rows  uint32  `c:"rows"`
	Width uint32  `c:"width"`
	Eps   float32 `c:"eps"`
}

// RopeArgs are the arguments of rope_neox.
type RopeArgs struct {
	N     uint32 `c:"n"`
	Heads uint32 `c:"heads"`
	Dim   uint32 `c:"dim"`
}

// AttnArgs are the arguments of attention.
type AttnArgs struct {
	N       uint32  `c:"n"`
	Ctx     uint32  `c:"ctx"`
	Heads   uint32  `c:"heads"`
	KVHeads uint32  `c:"kv_heads"`
	Dim     uint32  `c:"dim"`
	Scale   float32 `c:"scale"`
}

// EltArgs are the arguments of the element-wise kernels add and silu_mul.
type EltArgs struct {
	Count uint32 `c:"count"`
}

// FlipArgs are the arguments of flip_delta.
type FlipArgs struct {
	W      Q1Layout `c:"w"`
	N      uint32   `c:"n"`
	NFlips uint32   `c:"n_flips"`
}

// FlipDesc is one candidate flip of flip_delta, the device form of the (row, group, col)
// address of q1.Matrix.Flip: a whole row (Group -1, Col -1), a group (Col -1) or one weight
// (Group -1), decoded as q1.KindOf does; runtime/cpu.FlipDelta is its twin.
type FlipDesc struct {
	Row   int32 `c:"row"`
	Group int32 `c:"group"`
	Col   int32 `c:"col"`
}

// LayoutOf describes m for the kernels, with its signs and scales at byte offsets bitOff and
// scaleOff of the buffers bound for them.
func LayoutOf(m *q1.Matrix, bitOff, scaleOff uint32) Q1Layout {
	return Q1Layout{Rows: uint32(m.Rows), Cols: uint32(m.Cols), Groups: uint32(m.Groups),
		BitStride: uint32(m.BitStride), ScaleStride: uint32(m.ScaleStride), ScaleKind: uint32(m.Kind),
		BitOff: bitOff, ScaleOff: scaleOff}
}

// Bytes returns the memory of an argument struct (little-endian, as on every Metal host), for
// setBytes or the CPU harness. The slice aliases *v.
func Bytes[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}
