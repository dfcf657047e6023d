package shaders

import (
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConstants checks that the Go tuning constants equal the #defines of common.h.
func TestConstants(t *testing.T) {
	src, err := fs.ReadFile(Files(), "common.h")
	require.NoError(t, err)
	defs := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^#define (\w+)\s+(\d+)`).FindAllStringSubmatch(string(src), -1) {
		v, err := strconv.Atoi(m[2])
		require.NoError(t, err)
		defs[m[1]] = v
	}
	for name, v := range map[string]int{"SIMD_WIDTH": SimdWidth, "MV_NR": MatVecRows, "MV_NSG": MatVecSG,
		"MV_NT": MatVecVecs, "ATT_MAX_DIM": AttnMaxDim, "ELT_THREADS": EltThreads, "QK1": 128, "QK1_BYTES": 16} {
		require.Contains(t, defs, name)
		require.Equal(t, defs[name], v, name)
	}
}

// TestSource checks that every .metal file is in the library, every kernel is declared once and
// no quoted include is left for newLibraryWithSource to trip on.
func TestSource(t *testing.T) {
	files, err := fs.Glob(Files(), "*.metal")
	require.NoError(t, err)
	require.ElementsMatch(t, files, Sources)
	src := Source()
	require.NotContains(t, src, `#include "`)
	require.NotContains(t, src, "#pragma once")
	for _, k := range Kernels {
		require.Equal(t, 1, strings.Count(src, "kernel void "+k+"("), k)
	}
	require.Equal(t, len(Kernels), strings.Count(src, "kernel void "))
}

// TestGrids checks the dispatch geometry against the kernels' documented needs.
func TestGrids(t *testing.T) {
	for _, rows := range []int{1, 8, 9, 4096} {
		g := MatVecGrid(rows, 5)
		require.GreaterOrEqual(t, g.Groups[0]*MatVecRows*MatVecSG, rows)
		require.Equal(t, 2, g.Groups[1]) // 5 vectors in tiles of 4
	}
	for _, width := range []int{1, 32, 33, 64, 4096} {
		g := NormGrid(3, width)
		require.Zero(t, g.Threads[0]%SimdWidth)
		require.LessOrEqual(t, g.Threads[0], MaxThreads[KernelRMSNorm])
		require.Zero(t, g.TGMem%16, "Metal wants threadgroup memory in multiples of 16 bytes")
		require.GreaterOrEqual(t, g.TGMem, 4*g.Threads[0]/SimdWidth)
	}
	for k, g := range map[string]Grid{KernelMatVec: MatVecGrid(9, 9), KernelEmbed: EmbedGrid(300, 2),
		KernelRope: RopeGrid(2, 3, 64), KernelAttention: AttentionGrid(2, 3), KernelAdd: EltGrid(9),
		KernelSiluMul: EltGrid(9), KernelFlipDelta: FlipGrid(3, 3)} {
		require.Equal(t, MaxThreads[k], g.Threads[0]*g.Threads[1]*g.Threads[2], k)
	}
	require.Len(t, MaxThreads, len(Kernels))
	require.Equal(t, [3]int{1, 1, 1}, EltGrid(0).Groups)
	require.Equal(t, 2, EltGrid(257).Groups[0])
}
