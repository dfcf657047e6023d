package shaders

import (
	"reflect"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// CLayout is the C layout of args.h and the Q1_0 block of common.h, written down: sizeof and
// offsetof per field. Every field is a 4-byte uint, int or float, so each offset is 4 times the
// field's position; block_q1_0 is a 2-byte half followed by 16 sign bytes. The clang harness
// prints the same facts (TestShadersCompileAndRun compares them).
var CLayout = map[string]int{
	"block_q1_0": 18, "block_q1_0.d": 0, "block_q1_0.qs": 2,
	"Q1Layout": 32, "Q1Layout.rows": 0, "Q1Layout.cols": 4, "Q1Layout.groups": 8,
	"Q1Layout.bit_stride": 12, "Q1Layout.scale_stride": 16, "Q1Layout.scale_kind": 20,
	"Q1Layout.bit_off": 24, "Q1Layout.scale_off": 28,
	"Q1Args": 36, "Q1Args.w": 0, "Q1Args.n": 32,
	"NormArgs": 12, "NormArgs.rows": 0, "NormArgs.width": 4, "NormArgs.eps": 8,
	"RopeArgs": 12, "RopeArgs.n": 0, "RopeArgs.heads": 4, "RopeArgs.dim": 8,
	"AttnArgs": 24, "AttnArgs.n": 0, "AttnArgs.ctx": 4, "AttnArgs.heads": 8,
	"AttnArgs.kv_heads": 12, "AttnArgs.dim": 16, "AttnArgs.scale": 20,
	"EltArgs": 4, "EltArgs.count": 0,
	"FlipArgs": 40, "FlipArgs.w": 0, "FlipArgs.n": 32, "FlipArgs.n_flips": 36,
	"FlipDesc": 12, "FlipDesc.row": 0, "FlipDesc.group": 4, "FlipDesc.col": 8,
}

// GoLayout returns the same facts for the Go copies, from unsafe.Sizeof and unsafe.Offsetof
// (via reflect), with the C field names of the `c` tags.
func GoLayout() map[string]int {
	m := map[string]int{"block_q1_0": q1.BlockBytes, "block_q1_0.d": 0, "block_q1_0.qs": q1.BlockBytes - q1.GroupSignBytes}
	for _, v := range []any{Q1Layout{}, Q1Args{}, NormArgs{}, RopeArgs{}, AttnArgs{}, EltArgs{}, FlipArgs{}, FlipDesc{}} {
		t := reflect.TypeOf(v)
		m[t.Name()] = int(t.Size())
		for i := range t.NumField() {
			f := t.Field(i)
			m[t.Name()+"."+f.Tag.Get("c")] = int(f.Offset)
		}
	}
	return m
}

func TestArgsLayout(t *testing.T) {
	require.Equal(t, CLayout, GoLayout())
	// The same facts straight from unsafe, for the structs with nested or float fields.
	require.Equal(t, uintptr(CLayout["Q1Args"]), unsafe.Sizeof(Q1Args{}))
	require.Equal(t, uintptr(CLayout["Q1Args.n"]), unsafe.Offsetof(Q1Args{}.N))
	require.Equal(t, uintptr(CLayout["FlipArgs.n_flips"]), unsafe.Offsetof(FlipArgs{}.NFlips))
	require.Equal(t, uintptr(CLayout["AttnArgs.scale"]), unsafe.Offsetof(AttnArgs{}.Scale))
	require.Equal(t, uintptr(CLayout["NormArgs.eps"]), unsafe.Offsetof(NormArgs{}.Eps))
	require.Equal(t, uintptr(CLayout["FlipDesc"]), unsafe.Sizeof(FlipDesc{}))
}
