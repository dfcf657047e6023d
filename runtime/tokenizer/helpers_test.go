package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime/gguf"
)

// sharedDir returns ../shared next to the directory holding go.mod, or skips the test.
func sharedDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("go.mod not found above the test directory")
		}
		dir = parent
	}
	shared := filepath.Join(dir, "..", "shared")
	if _, err := os.Stat(filepath.Join(shared, "tokenizer")); err != nil {
		t.Skipf("reference fixtures missing (%s): %v", shared, err)
	}
	return shared
}

// readShared reads a file below ../shared, gunzipping names ending in .gz.
func readShared(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedDir(t), rel))
	require.NoError(t, err)
	if filepath.Ext(rel) == ".gz" {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		require.NoError(t, err)
		b, err = io.ReadAll(zr)
		require.NoError(t, err)
	}
	return b
}

// loadJSON decodes a fixture file into v.
func loadJSON(t testing.TB, rel string, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(readShared(t, rel), v))
}

var (
	ggufOnce, jsonOnce sync.Once
	ggufTok, jsonTok   *Tokenizer
	ggufErr, jsonErr   error
)

// qwenFromGGUF loads the full Qwen3 vocabulary from oracle/qwen3vocab-q1.gguf (once).
func qwenFromGGUF(t testing.TB) *Tokenizer {
	t.Helper()
	path := filepath.Join(sharedDir(t), "oracle", "qwen3vocab-q1.gguf")
	ggufOnce.Do(func() {
		f, err := gguf.Open(path)
		if err != nil {
			ggufErr = err
			return
		}
		defer f.Close()
		ggufTok, ggufErr = FromGGUF(f)
	})
	require.NoError(t, ggufErr)
	return ggufTok
}

// qwenFromJSON loads the full Qwen3 vocabulary from tokenizer/tokenizer.json.gz (once).
func qwenFromJSON(t testing.TB) *Tokenizer {
	t.Helper()
	tj := readShared(t, "tokenizer/tokenizer.json.gz")
	cfg := readShared(t, "tokenizer/tokenizer_config.json")
	jsonOnce.Do(func() { jsonTok, jsonErr = FromJSON(tj, cfg) })
	require.NoError(t, jsonErr)
	return jsonTok
}

// bothSources runs f once per vocabulary source.
func bothSources(t *testing.T, f func(t *testing.T, tok *Tokenizer)) {
	t.Run("gguf", func(t *testing.T) { f(t, qwenFromGGUF(t)) })
	t.Run("json", func(t *testing.T) { f(t, qwenFromJSON(t)) })
}
