package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// noTemp checks that no temporary file is left in dir.
func noTemp(t *testing.T, dir string) {
	t.Helper()
	left, err := filepath.Glob(filepath.Join(dir, ".*.tmp*"))
	require.NoError(t, err)
	require.Empty(t, left, "temporary files left behind")
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.bin")
	require.NoError(t, WriteBytes(path, []byte("old")))
	require.NoError(t, WriteBytes(path, []byte("new contents")))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "new contents", string(got))
	noTemp(t, dir)
	if runtime.GOOS != "windows" {
		st, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o644), st.Mode().Perm())
	}

	t.Run("fill fails", func(t *testing.T) {
		boom := errors.New("injected")
		err := Write(path, func(w io.Writer) error {
			_, _ = w.Write([]byte("partial"))
			return boom
		})
		require.ErrorIs(t, err, boom)
		noTemp(t, dir)
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, "new contents", string(got), "the existing file is untouched")
	})

	t.Run("rename fails", func(t *testing.T) {
		sub := filepath.Join(dir, "sub")
		require.NoError(t, os.MkdirAll(filepath.Join(sub, "taken", "child"), 0o755))
		err := WriteBytes(filepath.Join(sub, "taken"), []byte("x"))
		require.Error(t, err, "renaming over a non-empty directory fails")
		require.ErrorContains(t, err, "cannot replace "+filepath.Join(sub, "taken"))
		require.NotContains(t, err.Error(), ".tmp", "no temporary name in the message")
		noTemp(t, sub)
	})

	t.Run("missing directory", func(t *testing.T) {
		err := WriteBytes(filepath.Join(dir, "nope", "f"), nil)
		require.ErrorIs(t, err, os.ErrNotExist)
		require.NotContains(t, err.Error(), ".tmp")
	})
}
