package shim_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/shaders"
	"github.com/bankai-metal/bankai-metal/shaders/shim"
	"github.com/bankai-metal/bankai-metal/shaders/shim/shimtest"
)

// TestUnknownAttributeFails: a misspelt MSL attribute is an error, not a warning to ignore.
func TestUnknownAttributeFails(t *testing.T) {
	clang, _ := shimtest.ForTest(t)
	dir := t.TempDir()
	require.NoError(t, shim.Tree(dir))
	write := func(name, src string) string {
		p := filepath.Join(dir, "shaders", name)
		require.NoError(t, os.WriteFile(p, []byte(src), 0o644))
		return p
	}
	const body = `#include "common.h"
kernel void k(device float * x [[%s]], THREAD_ARGS) { x[tiisg] = 1.0f; }
`
	good := write("good.metal", fmt.Sprintf(body, "buffer(1)"))
	for _, m := range []shim.Mode{shim.Flat, shim.Check} {
		require.NoError(t, shim.SyntaxCheck(clang, dir, good, m))
		err := shim.SyntaxCheck(clang, dir, write("bad.metal", fmt.Sprintf(body, "bufer(1)")), m)
		require.ErrorContains(t, err, "unknown attribute 'bufer'")
	}
	require.Equal(t, "device float * x , uint i ", shim.StripAttributes("device float * x [[buffer(3)]], uint i [[thread_index_in_simdgroup]]"))
}

func floatBytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// TestOutOfBoundsReadTraps: a kernel reading past the end of a buffer fails the run (a GPU
// would return garbage or fault later); before, only writes into guard bytes were caught.
func TestOutOfBoundsReadTraps(t *testing.T) {
	_, h := shimtest.ForTest(t)
	const n = 64
	args := shaders.EltArgs{Count: n}
	run := func(srcFloats int) error {
		bufs := []shaders.Buf{{Data: make([]byte, 4*n)}, {Data: floatBytes(make([]float32, srcFloats)), ReadOnly: true}}
		return h.Run(bufs, []shaders.Dispatch{{Kernel: shaders.KernelAdd, Args: shaders.Bytes(&args),
			Grid: shaders.EltGrid(n), Binds: []shaders.Bind{{Index: 1, Buf: 0}, {Index: 2, Buf: 1}}}})
	}
	require.NoError(t, run(n))
	require.ErrorContains(t, run(n-4), "out-of-bounds access") // 16 bytes short: no alignment slack
}

// TestThreadgroupMemoryExact: threadgroup memory is exactly what the grid asks for; a kernel
// using more faults instead of running in slack.
func TestThreadgroupMemoryExact(t *testing.T) {
	_, h := shimtest.ForTest(t)
	const rows, width = 1, 4096
	args := shaders.NormArgs{Rows: rows, Width: width, Eps: 1e-6}
	run := func(tgmem int) error {
		g := shaders.NormGrid(rows, width)
		g.TGMem = tgmem
		bufs := []shaders.Buf{{Data: floatBytes(make([]float32, width))}, {Data: floatBytes(make([]float32, width))}, {Data: make([]byte, 4*width)}}
		return h.Run(bufs, []shaders.Dispatch{{Kernel: shaders.KernelRMSNorm, Args: shaders.Bytes(&args), Grid: g,
			Binds: []shaders.Bind{{Index: 1, Buf: 0}, {Index: 2, Buf: 1}, {Index: 3, Buf: 2}}}})
	}
	need := shaders.NormGrid(rows, width).TGMem
	require.NoError(t, run(need))
	require.ErrorContains(t, run(need-16), "out-of-bounds access")
}
