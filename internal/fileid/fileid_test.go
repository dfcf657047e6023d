package fileid

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSameByIdentity(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.gguf")
	require.NoError(t, os.WriteFile(a, []byte("x"), 0o644))
	other := filepath.Join(dir, "b.gguf")
	require.NoError(t, os.WriteFile(other, []byte("x"), 0o644))
	link := filepath.Join(dir, "link.gguf")
	require.NoError(t, os.Symlink(a, link))
	hard := filepath.Join(dir, "hard.gguf")
	require.NoError(t, os.Link(a, hard))
	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(sub, 0o755))
	dotted := filepath.Join(sub, "..", "a.gguf")

	for _, p := range []string{a, link, hard, dotted} {
		require.True(t, Same(a, p), p)
		require.Error(t, CheckOutput("-o", p, "", a), p)
	}
	require.False(t, Same(a, other), "same contents, different file")
	require.False(t, Same(a, filepath.Join(dir, "missing")))
	require.NoError(t, CheckOutput("-o", filepath.Join(dir, "new.gguf"), a, other))
	require.ErrorContains(t, CheckOutput("-o", link, other, a), "same file as the input "+a)
}
