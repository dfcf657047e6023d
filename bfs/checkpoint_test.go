package bfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSaveLoadCheckpoint round-trips a checkpoint through a file, replacing an older one in
// place, and rejects another format version.
func TestSaveLoadCheckpoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "search.ckpt.json")
	ck := &Checkpoint{
		Version: CheckpointVersion, Fingerprint: "fp", Iteration: 5, Draws: 9, RNG: []byte{1, 2, 3},
		Best: 0.25, Base: []float64{1.5, -2}, Evaluated: 4, Evaluations: 40,
	}
	require.NoError(t, SaveCheckpoint(path, &Checkpoint{Version: CheckpointVersion, Iteration: 1}))
	require.NoError(t, SaveCheckpoint(path, ck))
	got, err := LoadCheckpoint(path)
	require.NoError(t, err)
	require.Equal(t, ck, got)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")

	require.NoError(t, SaveCheckpoint(path, &Checkpoint{Version: CheckpointVersion + 1}))
	_, err = LoadCheckpoint(path)
	require.ErrorContains(t, err, "version")
	require.Error(t, SaveCheckpoint(filepath.Join(dir, "missing", "c.json"), ck))
}
