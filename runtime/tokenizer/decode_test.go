package tokenizer

import (
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
)

// decodeCase is one entry of tokenizer/decode-cases.json.
type decodeCase struct {
	Name               string   `json:"name"`
	IDs                []int32  `json:"ids"`
	LlamaHexSpecial    string   `json:"llama_bytes_hex_render_special"`
	LlamaTextSpecial   *string  `json:"llama_text_render_special"`
	LlamaPieceBytesHex []string `json:"llama_piece_bytes_hex"`
	HFJSKeepSpecial    string   `json:"hf_js_keep_special"`
}

func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// TestDecodeCases checks Decode against llama.cpp's bytes (special tokens rendered), each id's
// piece against llama_token_to_piece, and the streaming Decoder against the text: llama.cpp's
// when the bytes are valid UTF-8, else the JS decoder's (U+FFFD per maximal ill-formed
// subsequence).
func TestDecodeCases(t *testing.T) {
	var f struct {
		Cases []decodeCase `json:"cases"`
	}
	testenv.ReadJSON(t, testenv.Shared(t, "tokenizer", "decode-cases.json"), &f)
	require.NotEmpty(t, f.Cases)
	bothSources(t, func(t *testing.T, tok *Tokenizer) {
		for _, c := range f.Cases {
			want := unhex(t, c.LlamaHexSpecial)
			require.Equal(t, want, nonNil(tok.Decode(c.IDs)), c.Name)
			require.Len(t, c.LlamaPieceBytesHex, len(c.IDs), c.Name)
			for i, id := range c.IDs {
				require.Equal(t, unhex(t, c.LlamaPieceBytesHex[i]), nonNil(tok.piece(id)), "%s: id %d", c.Name, id)
			}

			d := tok.NewDecoder()
			var sb strings.Builder
			for _, id := range c.IDs {
				s := d.Add(id)
				require.True(t, utf8.ValidString(s), "%s: Add returned invalid UTF-8 %q", c.Name, s)
				sb.WriteString(s)
			}
			sb.WriteString(d.Flush())
			require.Equal(t, c.HFJSKeepSpecial, sb.String(), c.Name)
			if c.LlamaTextSpecial != nil {
				require.Equal(t, *c.LlamaTextSpecial, sb.String(), c.Name)
			} else {
				require.False(t, utf8.Valid(want), c.Name)
			}
		}
	})
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// TestDecoderHoldsPartialRunes feeds a 4-byte emoji one byte token at a time: nothing may be
// emitted until the character is complete.
func TestDecoderHoldsPartialRunes(t *testing.T) {
	tok := qwenFromJSON(t)
	emoji := "🚀"
	d := tok.NewDecoder()
	for i := 0; i < len(emoji); i++ {
		id := tok.byteID[emoji[i]]
		require.GreaterOrEqual(t, id, int32(0))
		got := d.Add(id)
		if i < len(emoji)-1 {
			require.Empty(t, got, "byte %d", i)
		} else {
			require.Equal(t, emoji, got)
		}
	}
	require.Empty(t, d.Flush())

	// An incomplete character followed by ASCII is one U+FFFD, then the ASCII.
	d.Add(tok.byteID[0xF0])
	d.Add(tok.byteID[0x9F])
	require.Equal(t, "\uFFFDa", d.Add(tok.byteID['a']))
	// Out-of-range ids produce nothing.
	require.Empty(t, d.Add(-1))
	require.Empty(t, d.Add(int32(tok.Vocab())))
	require.Empty(t, tok.Decode([]int32{-5, int32(tok.Vocab())}))
}

// TestPrefixLen checks the maximal-subpart rule against the examples of Unicode §3.9 (Table 3-8:
// "\xC0\xAF\xE0\x80\xBF\xF0\x81\x82\x41" decodes to 8 replacement characters then 'A') and
// well-formed sequences against the standard library.
func TestPrefixLen(t *testing.T) {
	var sb strings.Builder
	emitValid(&sb, []byte("\xC0\xAF\xE0\x80\xBF\xF0\x81\x82\x41"), true)
	require.Equal(t, strings.Repeat("\uFFFD", 8)+"A", sb.String())

	sb.Reset()
	emitValid(&sb, []byte("\xED\xA0\x80\xF4\x90\x80\x80\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"), true)
	// Table 3-11 of Unicode 15 (surrogate, above U+10FFFF, truncated sequences, stray trails).
	require.Equal(t, "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFDa\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd", sb.String())

	for _, r := range []rune{0x80, 0x7FF, 0x800, 0xFFFD, 0x10000, 0x10FFFF} {
		b := []byte(string(r))
		n, ok := prefixLen(b)
		require.True(t, ok, "%U", r)
		require.Equal(t, len(b), n, "%U", r)
		// Every proper prefix is a valid but incomplete start.
		for k := 1; k < len(b); k++ {
			n, ok := prefixLen(b[:k])
			require.False(t, ok)
			require.Equal(t, k, n)
		}
	}
}
