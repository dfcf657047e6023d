package tokenizer

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"golang.org/x/text/unicode/norm"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

// requireLossless checks the promise a loaded tokenizer makes: encoding never panics, and
// valid UTF-8 text holding no special-token text decodes back to its NFC form (nothing
// dropped or altered).
func requireLossless(t *testing.T, tok *Tokenizer, text string) {
	special := tok.Encode(text, true)
	plain := tok.Encode(text, false)
	for _, id := range append(special, plain...) {
		require.True(t, id >= 0 && int(id) < tok.Vocab(), "id %d outside the vocabulary", id)
	}
	if !utf8.ValidString(text) {
		return
	}
	for _, ids := range tok.special {
		for _, id := range ids {
			if strings.Contains(text, tok.tokens[id]) {
				return
			}
		}
	}
	require.Equal(t, norm.NFC.String(text), string(tok.Decode(plain)))
	require.Equal(t, plain, special)
}

// FuzzVocab varies the synthetic vocabulary (the shape of tiny-q1's): up to 8 edits that
// replace, retype or add a token, add a merge or set the EOS id. New must refuse what it cannot
// encode losslessly, with a "tokenizer: " error; what it accepts must be lossless.
func FuzzVocab(f *testing.F) {
	edit := func(op byte, idx uint16, s string) []byte {
		b := binary.LittleEndian.AppendUint16([]byte{op}, idx)
		return append(append(b, byte(len(s))), s...)
	}
	f.Add([]byte{}, "the cat sat\n<think>x</think>")
	f.Add(edit(0, 10, "gone"), "line one\nline two") // the newline's token replaced
	f.Add(edit(1, ' ', "\x03"), " t")                // the space's token made control
	f.Add(edit(2, 0, "Ġthe"), "the the")             // a duplicate token
	f.Add(edit(3, 0, "Ġthe Ġt"), " the t")           // a merge to an unknown token
	f.Add(append(edit(2, 0, "ab"), edit(3, 0, "a b")...), "abab cab")
	f.Add(append(edit(2, 3, "<|x|>"), edit(3, 0, "<| x|>")...), "<|x|> <|")
	f.Add(edit(4, 300, ""), "eos")
	f.Fuzz(func(t *testing.T, script []byte, text string) {
		tokens, types, merges := synth.Vocabulary(synth.TinyVocab)
		opt := Options{BOS: -1, EOS: synth.TokImEnd, PAD: -1}
		for n := 0; len(script) >= 4 && n < 8; n++ {
			op, idx := script[0], int(binary.LittleEndian.Uint16(script[1:3]))
			l := min(int(script[3])%33, len(script)-4)
			s := string(script[4 : 4+l])
			script = script[4+l:]
			switch op % 5 {
			case 0:
				tokens[idx%len(tokens)] = s
			case 1:
				types[idx%len(types)] = int32((s + "\x00")[0]) % 7
			case 2:
				tokens, types = append(tokens, s), append(types, int32(idx%7))
			case 3:
				merges = append(merges, s)
			default:
				opt.EOS = int32(idx) - 1
			}
		}
		tok, err := New(tokens, types, merges, opt)
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "tokenizer: "), err.Error())
			return
		}
		requireLossless(t, tok, text)
	})
}

// FuzzFromJSON: FromJSON never panics on any tokenizer.json and tokenizer_config.json, and
// what it accepts is lossless. Seeds: the synthetic model's files, the committed
// testdata/tiny-mlx ones and a small hand-made one.
func FuzzFromJSON(f *testing.F) {
	tj, tc, err := synth.Tiny().TokenizerJSON()
	require.NoError(f, err)
	f.Add(tj, tc, "the cat <|im_end|> sat")
	f.Add(tj, []byte{}, "\xff")
	f.Add(miniJSON(f, "", nil), []byte(`{"eos_token": {"content": "<|x|>"}}`), "ab<y>c")
	dir := filepath.Join(testenv.Root(f), "testdata", "tiny-mlx")
	if raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json")); err == nil {
		cfg, _ := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
		f.Add(raw, cfg, "hello world")
	}
	f.Fuzz(func(t *testing.T, tokenizerJSON, configJSON []byte, text string) {
		if len(configJSON) == 0 {
			configJSON = nil
		}
		tok, err := FromJSON(tokenizerJSON, configJSON)
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "tokenizer: "), err.Error())
			return
		}
		requireLossless(t, tok, text)
	})
}
