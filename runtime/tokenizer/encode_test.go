package tokenizer

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/text/unicode/norm"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
)

// encodeCase is one entry of tokenizer/encode-cases.json.
type encodeCase struct {
	ID                  int     `json:"id"`
	Category            string  `json:"category"`
	Text                string  `json:"text"`
	IsNFC               bool    `json:"is_nfc"`
	LlamaParseSpecial   []int32 `json:"llama_parse_special"`
	LlamaNoParseSpecial []int32 `json:"llama_no_parse_special"`
	HFJS                []int32 `json:"hf_js"`
}

func loadEncodeCases(t testing.TB) []encodeCase {
	var f struct {
		NCases int          `json:"n_cases"`
		Cases  []encodeCase `json:"cases"`
	}
	testenv.ReadJSON(t, testenv.Shared(t, "tokenizer", "encode-cases.json"), &f)
	require.Len(t, f.Cases, f.NCases)
	return f.Cases
}

// slashS is the one case where llama.cpp differs from HF for NFC text: llama.cpp re-types the
// ordinary token 128247 "</s>" as control. We implement HF's behaviour (plain text).
const slashS = "</s>"

// TestEncodeSpecial checks Encode(text, true) on every case: HF ids (hf_js) for text that is not
// NFC (we normalise, llama.cpp does not) and for "</s>"; llama.cpp ids (llama_parse_special,
// which equal hf_js there) otherwise. Without normalisation the non-NFC cases give llama.cpp's ids.
func TestEncodeSpecial(t *testing.T) {
	cases := loadEncodeCases(t)
	bothSources(t, func(t *testing.T, tok *Tokenizer) {
		for _, c := range cases {
			name := fmt.Sprintf("case %d %q", c.ID, c.Text)
			got := tok.Encode(c.Text, true)
			switch {
			case c.Text == slashS:
				require.Equal(t, c.HFJS, got, name)
				require.Equal(t, c.LlamaNoParseSpecial, got, name)
				require.NotEqual(t, c.LlamaParseSpecial, got, "%s: llama.cpp's control re-type", name)
			case !c.IsNFC:
				require.Equal(t, c.HFJS, got, name)
				require.Equal(t, c.LlamaParseSpecial, tok.encode(c.Text, true, false), "%s without NFC", name)
			default:
				require.Equal(t, c.LlamaParseSpecial, got, name)
				require.Equal(t, c.HFJS, got, name)
			}
		}
	})
}

// TestEncodeNoSpecial checks Encode(text, false) against llama.cpp --no-parse-special. For text
// that is not NFC, llama.cpp's ids are what we produce without normalisation; with it, the
// result equals encoding the NFC text, and equals HF's ids when the text holds no control-token
// text (llama.cpp's ids are then the same in both modes).
func TestEncodeNoSpecial(t *testing.T) {
	cases := loadEncodeCases(t)
	bothSources(t, func(t *testing.T, tok *Tokenizer) {
		for _, c := range cases {
			name := fmt.Sprintf("case %d %q", c.ID, c.Text)
			got := tok.Encode(c.Text, false)
			if c.IsNFC {
				require.Equal(t, c.LlamaNoParseSpecial, got, name)
				continue
			}
			require.Equal(t, c.LlamaNoParseSpecial, tok.encode(c.Text, false, false), "%s without NFC", name)
			require.Equal(t, tok.Encode(norm.NFC.String(c.Text), false), got, name)
			if slices.Equal(c.LlamaParseSpecial, c.LlamaNoParseSpecial) {
				require.Equal(t, c.HFJS, got, name)
			}
		}
	})
}

// TestSourcesAgree checks that the GGUF metadata and tokenizer.json give the same vocabulary.
func TestSourcesAgree(t *testing.T) {
	g, j := qwenFromGGUF(t), qwenFromJSON(t)
	require.Equal(t, g.Vocab(), j.Vocab())
	require.Equal(t, g.tokens, j.tokens)
	require.Equal(t, g.types, j.types)
	require.Equal(t, g.merges, j.merges)
	require.Equal(t, g.EOS(), j.EOS())
	require.Equal(t, g.PAD(), j.PAD())
	require.Equal(t, g.AddBOS(), j.AddBOS())
	require.Equal(t, g.ChatTemplate(), j.ChatTemplate())
	for id := range int32(g.Vocab()) {
		require.Equal(t, g.IsEOG(id), j.IsEOG(id), "IsEOG(%d)", id)
	}
}
