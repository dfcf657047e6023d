package runtime_test

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
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
			up.FlipRow(7)
			up.FlipBit(9, 100)
			out := filepath.Join(t.TempDir(), "patched"+filepath.Ext(src))
			require.NoError(t, m.SaveCopy(out, `{"patches":["test"]}`))
			require.Equal(t, before, fileHash(t, weights), "the source file never changes")
			require.ErrorContains(t, m.SaveCopy(src, ""), "is the model being read")

			p := loadModel(t, out)
			require.Equal(t, `{"patches":["test"]}`, p.Source.PatchNote)
			require.NotEqual(t, base, p.Fingerprint())
			pu, err := p.Matrix(1, "up_proj")
			require.NoError(t, err)
			up.FlipRow(7) // back to the base
			up.FlipBit(9, 100)
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
