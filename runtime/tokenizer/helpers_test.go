package tokenizer

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime/gguf"
)

var (
	ggufOnce, jsonOnce sync.Once
	ggufTok, jsonTok   *Tokenizer
	ggufErr, jsonErr   error
)

// qwenFromGGUF loads the full Qwen3 vocabulary from oracle/qwen3vocab-q1.gguf (once).
func qwenFromGGUF(t testing.TB) *Tokenizer {
	t.Helper()
	path := testenv.Shared(t, "oracle", "qwen3vocab-q1.gguf")
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
	tj := testenv.ReadFile(t, testenv.Shared(t, "tokenizer", "tokenizer.json.gz"))
	cfg := testenv.ReadFile(t, testenv.Shared(t, "tokenizer", "tokenizer_config.json"))
	jsonOnce.Do(func() { jsonTok, jsonErr = FromJSON(tj, cfg) })
	require.NoError(t, jsonErr)
	return jsonTok
}

// bothSources runs f once per vocabulary source.
func bothSources(t *testing.T, f func(t *testing.T, tok *Tokenizer)) {
	t.Run("gguf", func(t *testing.T) { f(t, qwenFromGGUF(t)) })
	t.Run("json", func(t *testing.T) { f(t, qwenFromJSON(t)) })
}
