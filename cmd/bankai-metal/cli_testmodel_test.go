package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTestmodelSizes: a size that is not positive is named as the flag the user typed (it used
// to surface as synth's dump of the whole shape struct).
func TestTestmodelSizes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.gguf")
	for _, flag := range []string{"--layers", "--hidden", "--ffn", "--heads", "--kv-heads", "--head-dim", "--vocab"} {
		_, _, err := runCLI(t, "", "testmodel", "-o", out, flag, "0")
		require.EqualError(t, err, flag+" 0: want a positive size")
	}
	require.NoFileExists(t, out)
}
