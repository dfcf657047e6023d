package runtime_test

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime"
)

func fileHash(t *testing.T, p string) [32]byte {
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return sha256.Sum256(b)
}

// TestSaveCopy flips bits in memory, saves a copy, and checks the copy holds exactly those
// flips and a patch note, while the source file is untouched.
func TestSaveCopy(t *testing.T) {
	root := testenv.Root(t)
	for _, src := range []string{filepath.Join(root, "testdata", "tiny.gguf"), filepath.Join(root, "testdata", "tiny-mlx")} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			weights := src
			if filepath.Ext(src) != ".gguf" {
				weights = filepath.Join(src, "model.safetensors")
			}
			before := fileHash(t, weights)
			m := loadModel(t, src)
			base := m.Fingerprint()
			up, err := m.Matrix(1, "up_proj")
			require.NoError(t, err)
			up.Flip(7, -1, -1)
			up.Flip(9, -1, 100)
			out := filepath.Join(t.TempDir(), "patched"+filepath.Ext(src))
			require.NoError(t, m.SaveCopy(out, runtime.SaveOptions{Note: `{"patches":["test"]}`}))
			require.Equal(t, before, fileHash(t, weights), "the source file never changes")
			require.ErrorContains(t, m.SaveCopy(src, runtime.SaveOptions{Overwrite: true}), "is also an input")

			p := loadModel(t, out)
			require.Equal(t, `{"patches":["test"]}`, p.Source.PatchNote)
			require.NotEqual(t, base, p.Fingerprint())
			pu, err := p.Matrix(1, "up_proj")
			require.NoError(t, err)
			up.Flip(7, -1, -1) // back to the base
			up.Flip(9, -1, 100)
			diff := 0
			for r := 0; r < up.Rows; r++ {
				for c := 0; c < up.Cols; c++ {
					if up.Bit(r, c) != pu.Bit(r, c) {
						diff++
						require.True(t, r == 7 || (r == 9 && c == 100), "unexpected difference at (%d,%d)", r, c)
					}
				}
			}
			require.Equal(t, up.Cols+1, diff)
		})
	}
}

// TestSaveCopyOutputs: the source is recognised by identity (a symlink to it is refused), an
// existing output is refused for GGUF and MLX alike unless Overwrite, an MLX model is never
// written to a name ending in .gguf, and an unchanged GGUF copy is the source byte for byte.
func TestSaveCopyOutputs(t *testing.T) {
	root := testenv.Root(t)
	for _, src := range []string{filepath.Join(root, "testdata", "tiny.gguf"), filepath.Join(root, "testdata", "tiny-mlx")} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			m := loadModel(t, src)
			dir := t.TempDir()
			link := filepath.Join(dir, "link")
			require.NoError(t, os.Symlink(src, link))
			require.ErrorContains(t, m.SaveCopy(link, runtime.SaveOptions{Overwrite: true}), "is the same file as the input")

			out := filepath.Join(dir, "copy"+filepath.Ext(src))
			require.NoError(t, m.SaveCopy(out, runtime.SaveOptions{}))
			err := m.SaveCopy(out, runtime.SaveOptions{Note: "x"})
			require.ErrorIs(t, err, runtime.ErrOutputExists)
			require.NoError(t, m.SaveCopy(out, runtime.SaveOptions{Note: `{"n":1}`, Overwrite: true}))
			require.Equal(t, `{"n":1}`, loadModel(t, out).Source.PatchNote)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Len(t, entries, 2, "link and copy only: no temporary left")

			if filepath.Ext(src) == ".gguf" {
				require.NoError(t, m.SaveCopy(out, runtime.SaveOptions{Overwrite: true}))
				require.Equal(t, fileHash(t, src), fileHash(t, out), "no flips, no note: the same bytes")
				return
			}
			err = m.SaveCopy(filepath.Join(dir, "x.gguf"), runtime.SaveOptions{})
			require.ErrorContains(t, err, "an MLX model is written as a directory")
			require.NoDirExists(t, filepath.Join(dir, "x.gguf"))
			plain := filepath.Join(dir, "notes")
			require.NoError(t, os.MkdirAll(plain, 0o755))
			require.ErrorContains(t, m.SaveCopy(plain, runtime.SaveOptions{Overwrite: true}), "not an MLX model")
		})
	}
}
