package tokenizer

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// byteTokens returns the 256 single-byte tokens in byte order, like tiny-q1.gguf's vocabulary.
func byteTokens() []string {
	toks := make([]string, 256)
	for b := range toks {
		toks[b] = string(byteToRune[b])
	}
	return toks
}

// TestNewErrors checks that malformed metadata is rejected with an error, never a panic.
func TestNewErrors(t *testing.T) {
	toks := byteTokens()
	for name, f := range map[string]func() (*Tokenizer, error){
		"empty vocab":    func() (*Tokenizer, error) { return New(nil, nil, nil, Options{BOS: -1, EOS: -1, PAD: -1}) },
		"types length":   func() (*Tokenizer, error) { return New(toks, []int32{1}, nil, Options{BOS: -1, EOS: -1, PAD: -1}) },
		"merge no space": func() (*Tokenizer, error) { return New(toks, nil, []string{"ab"}, Options{BOS: -1, EOS: -1, PAD: -1}) },
		"eos too large":  func() (*Tokenizer, error) { return New(toks, nil, nil, Options{BOS: -1, EOS: 256, PAD: -1}) },
		"bos negative":   func() (*Tokenizer, error) { return New(toks, nil, nil, Options{BOS: -2, EOS: -1, PAD: -1}) },
		"unknown pre": func() (*Tokenizer, error) {
			return New(toks, nil, nil, Options{BOS: -1, EOS: -1, PAD: -1, Pre: "llama3"})
		},
		"json syntax":     func() (*Tokenizer, error) { return FromJSON([]byte(`{`), nil) },
		"json model type": func() (*Tokenizer, error) { return FromJSON(miniJSON(t, "type", "Unigram"), nil) },
		"json normalizer": func() (*Tokenizer, error) { return FromJSON(miniJSON(t, "normalizer", nil), nil) },
		"json regex":      func() (*Tokenizer, error) { return FromJSON(miniJSON(t, "regex", `\s+`), nil) },
		"json id range":   func() (*Tokenizer, error) { return FromJSON(miniJSON(t, "vocab", map[string]int{"a": 1 << 40}), nil) },
		"json added id":   func() (*Tokenizer, error) { return FromJSON(miniJSON(t, "added", -1), nil) },
		"json merges":     func() (*Tokenizer, error) { return FromJSON(miniJSON(t, "merges", []string{"ab"}), nil) },
		"config eos":      func() (*Tokenizer, error) { return FromJSON(miniJSON(t, "", nil), []byte(`{"eos_token": "<nope>"}`)) },
		"config syntax":   func() (*Tokenizer, error) { return FromJSON(miniJSON(t, "", nil), []byte(`[`)) },
	} {
		tok, err := f()
		require.Error(t, err, name)
		require.Nil(t, tok, name)
		require.Contains(t, err.Error(), "tokenizer: ", name)
	}
}

// miniJSON returns a small valid tokenizer.json (the 256 byte tokens, "a b" -> "ab", "<|x|>"
// added special, "<y>" added non-special) with one field replaced to make it invalid.
func miniJSON(t testing.TB, field string, value any) []byte {
	vocab := map[string]int{}
	for i, s := range byteTokens() {
		vocab[s] = i
	}
	vocab["ab"] = 256
	model := map[string]any{"type": "BPE", "vocab": vocab, "merges": [][2]string{{"a", "b"}}}
	doc := map[string]any{
		"normalizer":    map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"Regex": qwen2Pattern}},
		"added_tokens": []map[string]any{
			{"id": 257, "content": "<|x|>", "special": true},
			{"id": 258, "content": "<y>", "special": false},
		},
		"model": model,
	}
	switch field {
	case "type", "vocab", "merges":
		model[field] = value
	case "normalizer":
		doc[field] = value
	case "regex":
		doc["pre_tokenizer"] = map[string]any{"type": "Split", "pattern": map[string]any{"Regex": value}}
	case "added":
		doc["added_tokens"] = []map[string]any{{"id": value, "content": "<z>"}}
	}
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	return b
}

// TestFromJSONSmall checks a small tokenizer.json end to end: merges as pairs, added-token
// typing, config forms (named template list, {"content"} tokens) and the default EOS.
func TestFromJSONSmall(t *testing.T) {
	tok, err := FromJSON(miniJSON(t, "", nil), nil)
	require.NoError(t, err)
	require.Equal(t, 259, tok.Vocab())
	require.Equal(t, int32(-1), tok.EOS()) // neither <|im_end|> nor <|endoftext|>
	require.Equal(t, TypeControl, tok.Type(257))
	require.Equal(t, TypeUserDefined, tok.Type(258))
	require.Equal(t, []int32{256, 257, 'c', 258}, tok.Encode("ab<|x|>c<y>", true))
	require.Equal(t, []int32{256, '<', '|', 'x', '|', '>', 'c', 258}, tok.Encode("ab<|x|>c<y>", false))

	cfg := `{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}],
		"eos_token": {"content": "<|x|>"}, "pad_token": "<y>", "bos_token": null, "add_bos_token": true}`
	tok, err = FromJSON(miniJSON(t, "merges", []string{"a b"}), []byte(cfg))
	require.NoError(t, err)
	require.Equal(t, "D", tok.ChatTemplate())
	require.Equal(t, int32(257), tok.EOS())
	require.Equal(t, int32(258), tok.PAD())
	require.Equal(t, int32(-1), tok.BOS())
	require.True(t, tok.AddBOS())
	require.True(t, tok.IsEOG(257))
	require.Equal(t, []int32{256}, tok.Encode("ab", true))
}

// TestNewOddVocab covers byte tokens "<0xAB>", merges whose parts are missing (ignored) and
// merges that would turn text into a control token (ignored too).
func TestNewOddVocab(t *testing.T) {
	toks := append(byteTokens(), "ab", "<0x0A>", "<ctl>", "ba")
	types := make([]int32, len(toks))
	for i := range types {
		types[i] = int32(TypeNormal)
	}
	types[257], types[258], types[259] = int32(TypeByte), int32(TypeControl), int32(TypeControl)
	tok, err := New(toks, types, []string{"a b", "a zz", "b a"}, Options{BOS: -1, EOS: 258, PAD: -1})
	require.NoError(t, err)
	require.Len(t, tok.merges, 1)
	require.Equal(t, []byte("\nab<ctl>"), tok.Decode([]int32{257, 256, 258}))
	require.Equal(t, []int32{256, 'x', 258}, tok.Encode("abx<ctl>", true))
	require.Equal(t, []int32{'b', 'a'}, tok.Encode("ba", false), `the merge "b a" would make control token "ba"`)
	require.True(t, tok.IsEOG(258))
}

// TestNewRefusesLossyVocab checks that a vocabulary that would drop or alter text is refused
// at load, naming the byte or the tokens.
func TestNewRefusesLossyVocab(t *testing.T) {
	opt := Options{BOS: -1, EOS: -1, PAD: -1}
	noNewline := byteTokens()
	noNewline['\n'] = "[gone]"
	_, err := New(noNewline, nil, nil, opt)
	require.EqualError(t, err, `tokenizer: no token for byte 0x0a ("Ċ" in the byte-level alphabet); a vocabulary must hold all 256 byte tokens`)

	types := make([]int32, 256)
	types[' '] = int32(TypeControl)
	_, err = New(byteTokens(), types, nil, opt)
	require.EqualError(t, err, `tokenizer: byte 0x20: token 32 "Ġ" has type 3, want 1 (normal)`)

	_, err = New(append(byteTokens(), "ab", "ab"), nil, nil, opt)
	require.EqualError(t, err, `tokenizer: tokens 256 and 257 are both "ab"; every token must be unique`)
	_, err = New(append(byteTokens(), "a"), nil, nil, opt)
	require.EqualError(t, err, `tokenizer: tokens 97 and 256 are both "a"; every token must be unique`)
}

// TestFromJSONRefusesDuplicateIDs checks that two tokens with one id are refused, in the
// vocabulary or between it and an added token, while an added token repeating its vocabulary
// entry is accepted.
func TestFromJSONRefusesDuplicateIDs(t *testing.T) {
	vocab := map[string]int{}
	for i, s := range byteTokens() {
		vocab[s] = i
	}
	vocab["ab"], vocab["cd"] = 256, 256
	_, err := FromJSON(miniJSON(t, "vocab", vocab), nil)
	require.EqualError(t, err, `tokenizer: tokenizer.json: vocab "ab" and "cd" both have id 256`)

	_, err = FromJSON(miniJSON(t, "added", 97), nil) // "<z>" on top of "a"
	require.EqualError(t, err, `tokenizer: tokenizer.json: added token "<z>" has id 97, which "a" already has`)

	delete(vocab, "cd")
	vocab["<|x|>"] = 257 // the added special token, also in the vocabulary
	tok, err := FromJSON(miniJSON(t, "vocab", vocab), nil)
	require.NoError(t, err)
	require.Equal(t, TypeControl, tok.Type(257))
}
