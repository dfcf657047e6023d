package gguf

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// dirNames lists a directory.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.gguf")
	require.NoError(t, WriteFile(path, sampleKVs(), sampleTensors()))
	require.Equal(t, []string{"model.gguf"}, dirNames(t, dir), "no temporary file left behind")
	original, err := os.ReadFile(path)
	require.NoError(t, err)

	t.Run("validation error", func(t *testing.T) {
		other := filepath.Join(dir, "bad.gguf")
		bad := sampleTensors()
		bad[1].Data = bad[1].Data[:len(bad[1].Data)-1]
		err := WriteFile(other, sampleKVs(), bad)
		require.ErrorContains(t, err, `tensor "f16.mat": data has 19 bytes, want 20`)
		require.Equal(t, []string{"model.gguf"}, dirNames(t, dir))
	})

	t.Run("io error while writing", func(t *testing.T) {
		boom := errors.New("injected write failure")
		for _, n := range []int{0, 1000} {
			err := writeFile(path, sampleKVs(), sampleTensors(), func(w io.Writer) io.Writer {
				return &failWriter{n: n, err: boom}
			})
			require.ErrorIs(t, err, boom)
			require.Equal(t, []string{"model.gguf"}, dirNames(t, dir), "temporary file removed")
			now, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, original, now, "the existing file is untouched")
		}
	})

	t.Run("rename fails", func(t *testing.T) {
		sub := filepath.Join(dir, "sub")
		require.NoError(t, os.MkdirAll(filepath.Join(sub, "taken.gguf", "child"), 0o755))
		err := WriteFile(filepath.Join(sub, "taken.gguf"), sampleKVs(), sampleTensors())
		require.Error(t, err, "renaming over a non-empty directory fails")
		require.Equal(t, []string{"taken.gguf"}, dirNames(t, sub), "temporary file removed")
	})

	t.Run("missing directory", func(t *testing.T) {
		err := WriteFile(filepath.Join(dir, "nope", "m.gguf"), nil, nil)
		require.ErrorIs(t, err, os.ErrNotExist)
	})

	t.Run("overwrite", func(t *testing.T) {
		require.NoError(t, WriteFile(path, nil, nil))
		f, err := Open(path)
		require.NoError(t, err)
		defer f.Close()
		require.Empty(t, f.KV)
		require.Equal(t, []string{"model.gguf", "sub"}, dirNames(t, dir))
	})
}
