package shaders_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/backendtest"
	"github.com/bankai-metal/bankai-metal/metal"
	"github.com/bankai-metal/bankai-metal/shaders"
	"github.com/bankai-metal/bankai-metal/shaders/shim"
	"github.com/bankai-metal/bankai-metal/shaders/shim/shimtest"
)

// emuSizes are the CheckKernels cases for the CPU harness: the boundary sizes in full, the Bonsai
// widths only where the emulation stays fast.
var emuSizes = backendtest.Sizes{
	Lengths: []int{1, 31, 32, 33, 127, 128, 129, 255, 256, 257, 4096},
	Cols:    []int{128, 256, 4096},
	MaxWork: 257 * 4096,
}

// TestShadersCompileAndRun is the Linux check of the Metal kernels (docs/METAL.md §4): every
// .metal file, and the concatenated library, compiles as C++ against the shim in flat and check
// modes; the argument structs have the same layout in C and Go; and every kernel, run by the CPU
// harness, matches its Go twin in runtime/cpu. Skips without clang >= 15, unless
// BANKAI_REQUIRE_CLANG=1.
func TestShadersCompileAndRun(t *testing.T) {
	clang, h := shimtest.ForTest(t)
	t.Log("clang:", clang)

	t.Run("syntax", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, shim.Tree(dir))
		lib := filepath.Join(dir, "shaders", "library.metal")
		require.NoError(t, os.WriteFile(lib, []byte(shaders.Source()), 0o644))
		files := []string{lib}
		for _, name := range shaders.Sources {
			files = append(files, filepath.Join(dir, "shaders", name))
		}
		for _, f := range files {
			for _, mode := range []shim.Mode{shim.Flat, shim.Check} {
				require.NoError(t, shim.SyntaxCheck(clang, dir, f, mode))
			}
		}
	})

	t.Run("layout", func(t *testing.T) {
		c, err := h.Layout()
		require.NoError(t, err)
		require.Equal(t, shaders.CLayout, c, "clang's sizeof/offsetof against the written-down layout")
		require.Equal(t, shaders.GoLayout(), c, "clang's sizeof/offsetof against the Go structs")
	})

	t.Run("kernels", func(t *testing.T) {
		backendtest.CheckKernels(t, metal.NewEmulatedKernelRunner(h), emuSizes)
	})
}
