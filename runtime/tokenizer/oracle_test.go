package tokenizer

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime/gguf"
)

// openTokenizer loads the tokenizer of an oracle GGUF model.
func openTokenizer(t *testing.T, name string) *Tokenizer {
	t.Helper()
	f, err := gguf.Open(testenv.Shared(t, "oracle", name))
	require.NoError(t, err)
	defer f.Close()
	tok, err := FromGGUF(f)
	require.NoError(t, err)
	return tok
}

// TestTinyVocab checks the 262-token vocabulary of tiny-q1.gguf: ids 0-255 are the bytes, 256-258
// the merges "Ġ t", "h e", "Ġt he", 259-261 control tokens (oracle/README.md).
func TestTinyVocab(t *testing.T) {
	tok := openTokenizer(t, "tiny-q1.gguf")
	require.Equal(t, 262, tok.Vocab())
	for b := 0; b < 256; b++ {
		require.Equal(t, []byte{byte(b)}, tok.Decode([]int32{int32(b)}))
	}
	// The eval-callback prompt (oracle/README.md): "the" -> t + he, " cats" -> bytes.
	require.Equal(t, []int32{116, 257, 32, 99, 97, 116, 115}, tok.Encode("the cats", true))
	require.Equal(t, int32(261), tok.EOS())
	require.Equal(t, int32(259), tok.BOS())
	for id := int32(259); id <= 261; id++ {
		require.True(t, tok.IsControl(id))
	}
	require.True(t, tok.IsEOG(259) && tok.IsEOG(261))
	require.False(t, tok.IsEOG(260))
}

// TestOracleSequences checks the prompts of the llama.cpp reference runs (encoded there with
// special parsing on) and the decoded bytes of the greedy continuations.
func TestOracleSequences(t *testing.T) {
	for _, m := range []struct {
		gguf, logprobs, greedy string
		tok                    func(t *testing.T) *Tokenizer
	}{
		{"tiny-q1.gguf", "oracle/tiny-q1.logprobs.json.gz", "oracle/tiny-q1.greedy.json", nil},
		{"qwen3vocab-q1.gguf", "oracle/qwen3vocab-q1.logprobs.json.gz", "oracle/qwen3vocab-q1.greedy.json",
			func(t *testing.T) *Tokenizer { return qwenFromGGUF(t) }},
	} {
		t.Run(m.gguf, func(t *testing.T) {
			var tok *Tokenizer
			if m.tok != nil {
				tok = m.tok(t)
			} else {
				tok = openTokenizer(t, m.gguf)
			}
			var lp struct {
				Sequences []struct {
					Name   string  `json:"name"`
					Text   string  `json:"text"`
					Tokens []int32 `json:"tokens"`
				} `json:"sequences"`
			}
			testenv.ReadJSON(t, testenv.Shared(t, m.logprobs), &lp)
			require.NotEmpty(t, lp.Sequences)
			for _, s := range lp.Sequences {
				require.Equal(t, s.Tokens, tok.Encode(s.Text, true), s.Name)
				require.Equal(t, s.Text, string(tok.Decode(s.Tokens)), s.Name)
			}
			var gr struct {
				Runs []struct {
					Name            string  `json:"name"`
					PromptText      string  `json:"prompt_text"`
					PromptTokens    []int32 `json:"prompt_tokens"`
					GeneratedTokens []int32 `json:"generated_tokens"`
					GeneratedHex    string  `json:"generated_bytes_hex"`
				} `json:"runs"`
			}
			testenv.ReadJSON(t, testenv.Shared(t, m.greedy), &gr)
			require.NotEmpty(t, gr.Runs)
			for _, r := range gr.Runs {
				require.Equal(t, r.PromptTokens, tok.Encode(r.PromptText, true), r.Name)
				require.Equal(t, unhex(t, r.GeneratedHex), tok.Decode(r.GeneratedTokens), r.Name)
			}
		})
	}
}

// TestSpecialIDs checks the Qwen3 special ids (docs/FORMATS.md §9.3) and llama.cpp's EOG set minus
// the re-typed "</s>" (oracle/README.md).
func TestSpecialIDs(t *testing.T) {
	bothSources(t, func(t *testing.T, tok *Tokenizer) {
		id := func(s string) int32 {
			v, ok := tok.TokenID(s)
			require.True(t, ok, s)
			return v
		}
		require.Equal(t, id("<|im_end|>"), tok.EOS())
		require.Equal(t, id("<|endoftext|>"), tok.PAD())
		require.False(t, tok.AddBOS())
		var eog []int32
		for i := range int32(tok.Vocab()) {
			if tok.IsEOG(i) {
				eog = append(eog, i)
			}
		}
		require.Equal(t, []int32{id("<|endoftext|>"), id("<|im_end|>"), id("<|fim_pad|>"),
			id("<|repo_name|>"), id("<|file_sep|>")}, eog)
		require.False(t, tok.IsEOG(id("</s>")))
		require.True(t, tok.IsControl(id("<|im_start|>")))
		require.True(t, tok.IsControl(id("<|fim_prefix|>")))
		require.False(t, tok.IsControl(id("<think>")))
		require.Equal(t, TypeUserDefined, tok.Type(id("<think>")))
		require.Equal(t, "<think>", tok.Token(id("<think>")))
		require.Empty(t, tok.Token(-1))
	})
}
