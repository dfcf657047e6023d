// Package tokenizer implements Qwen2/Qwen3 byte-level BPE, special tokens and the chat template.
//
// Encoding follows Hugging Face semantics (docs/FORMATS.md §9): added tokens are split out of the raw
// text first, every other segment is normalised to NFC, pre-tokenised with the Qwen2 split
// pattern, mapped through the GPT-2 byte-level alphabet and merged by BPE rank. Special-token
// matching follows llama.cpp's token types: with special parsing on, control and user-defined
// tokens in the text become their ids; with it off, only user-defined ones (<think>,
// <tool_call>, ...) do.
//
// One deliberate difference from llama.cpp: llama.cpp re-types Qwen's ordinary token 128247
// "</s>" as control when it loads a GGUF, so it turns the text "</s>" into that id and treats it
// as end of generation. This package keeps the vocabulary's own types (HF behaviour, what the
// model saw in training): "</s>" in text is encoded as ordinary text.
package tokenizer

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// TokenType is a token's type in the GGUF convention.
type TokenType int32

// Token types (tokenizer.ggml.token_type).
const (
	TypeUndefined   TokenType = 0 // treated as normal
	TypeNormal      TokenType = 1
	TypeUnknown     TokenType = 2
	TypeControl     TokenType = 3 // e.g. <|im_start|>; matched in text only with special parsing on
	TypeUserDefined TokenType = 4 // e.g. <think>; always matched in text
	TypeUnused      TokenType = 5
	TypeByte        TokenType = 6 // "<0xAB>" byte-fallback token
)

// Options holds the vocabulary's metadata besides tokens, types and merges.
type Options struct {
	BOS, EOS, PAD int32  // token ids, -1 when absent
	AddBOS        bool   // whether prompts should start with BOS; Encode never adds it itself
	ChatTemplate  string // the embedded Jinja chat template, if any
	Pre           string // pre-tokenizer name: "qwen2" ("" means "qwen2")
}

// Tokenizer is a byte-level BPE vocabulary. It is safe for concurrent use.
type Tokenizer struct {
	tokens  []string         // token strings in the byte-level alphabet (n_vocab,)
	types   []TokenType      // (n_vocab,)
	ids     map[string]int32 // token string -> id (first id wins)
	bytes   []byte           // decoded bytes of every token, concatenated (sum of piece lengths,)
	offsets []uint32         // token i decodes to bytes[offsets[i]:offsets[i+1]] (n_vocab+1,)
	byteID  [256]int32       // id of the single-character token of each byte, -1 if absent (256,)
	merges  map[uint64]merge // pairKey(left, right) -> rank and merged id
	special [256][]int32     // control/user-defined/unknown ids by first byte, longest first (256, *)
	eog     map[int32]bool   // end-of-generation ids
	opt     Options
	cache   pieceCache
}

// eogNames are the tokens that end generation when present (besides EOS), as in llama.cpp:
// end of text, end of turn and the FIM end tokens.
var eogNames = []string{"<|endoftext|>", "<|im_end|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"}

// New builds a tokenizer from GGUF-style metadata: token strings (byte-level alphabet), their
// types (nil: all normal) and merges "left right" (rank = index). Merges whose parts or result
// are not in the vocabulary are ignored.
func New(tokens []string, types []int32, merges []string, opt Options) (*Tokenizer, error) {
	pairs := make([][2]string, len(merges)) // (n_merges, 2)
	for i, m := range merges {
		l, r, ok := strings.Cut(m, " ")
		if !ok {
			return nil, fmt.Errorf("tokenizer: merge %d %q: no space between the two parts", i, m)
		}
		pairs[i] = [2]string{l, r}
	}
	return build(tokens, types, pairs, opt)
}

// build is New with merges already split into pairs.
func build(tokens []string, types []int32, merges [][2]string, opt Options) (*Tokenizer, error) {
	n := len(tokens)
	if n == 0 {
		return nil, fmt.Errorf("tokenizer: empty vocabulary")
	}
	if types != nil && len(types) != n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(types), n)
	}
	if opt.Pre != "" && opt.Pre != "qwen2" {
		return nil, fmt.Errorf("tokenizer: pre-tokenizer %q not supported (want \"qwen2\")", opt.Pre)
	}
	for _, s := range []struct {
		name string
		id   int32
	}{{"bos", opt.BOS}, {"eos", opt.EOS}, {"pad", opt.PAD}} {
		if s.id < -1 || int(s.id) >= n {
			return nil, fmt.Errorf("tokenizer: %s id %d outside [-1, %d)", s.name, s.id, n)
		}
	}
	t := &Tokenizer{
		tokens:  slices.Clone(tokens),
		types:   make([]TokenType, n),
		ids:     make(map[string]int32, n),
		offsets: make([]uint32, n+1),
		merges:  make(map[uint64]merge, len(merges)),
		eog:     make(map[int32]bool),
		opt:     opt,
	}
	size := 0
	for _, s := range tokens {
		size += len(s)
	}
	t.bytes = make([]byte, 0, size)
	for i, s := range tokens {
		t.types[i] = TypeNormal
		if types != nil && types[i] != int32(TypeUndefined) {
			t.types[i] = TokenType(types[i])
		}
		if first, dup := t.ids[s]; dup {
			return nil, fmt.Errorf("tokenizer: tokens %d and %d are both %q; every token must be unique", first, i, s)
		} else if s != "" {
			t.ids[s] = int32(i)
		}
		t.bytes = append(t.bytes, t.decodeToken(int32(i))...)
		t.offsets[i+1] = uint32(len(t.bytes))
	}
	// Every byte must have its normal token, or text holding it could not be encoded (and
	// would be dropped): a vocabulary without one is refused here, not discovered in Encode.
	for b := range t.byteID {
		ch := string(byteToRune[b])
		id, ok := t.ids[ch]
		if !ok {
			return nil, fmt.Errorf("tokenizer: no token for byte %#02x (%q in the byte-level alphabet); "+
				"a vocabulary must hold all 256 byte tokens", b, ch)
		}
		if t.types[id] != TypeNormal {
			return nil, fmt.Errorf("tokenizer: byte %#02x: token %d %q has type %d, want %d (normal)", b, id, ch, t.types[id], TypeNormal)
		}
		t.byteID[b] = id
	}
	for rank, p := range merges {
		l, okL := t.ids[p[0]]
		r, okR := t.ids[p[1]]
		m, okM := t.ids[p[0]+p[1]]
		// Merges whose parts or result are missing are ignored; so are those that would make a
		// control or other non-normal token out of plain text, which would decode differently.
		if !okL || !okR || !okM || t.types[m] != TypeNormal {
			continue
		}
		if _, dup := t.merges[pairKey(l, r)]; !dup {
			t.merges[pairKey(l, r)] = merge{rank: int32(rank), id: m}
		}
	}
	for i, s := range tokens {
		if s != "" && matchable(t.types[i]) {
			t.special[s[0]] = append(t.special[s[0]], int32(i))
		}
	}
	for b := range t.special {
		ids := t.special[b]
		// Longest first (insertion sort; the lists are short), so matching is leftmost-longest.
		for i := 1; i < len(ids); i++ {
			for j := i; j > 0 && len(tokens[ids[j]]) > len(tokens[ids[j-1]]); j-- {
				ids[j], ids[j-1] = ids[j-1], ids[j]
			}
		}
	}
	if opt.EOS >= 0 {
		t.eog[opt.EOS] = true
	}
	for _, name := range eogNames {
		if id, ok := t.ids[name]; ok {
			t.eog[id] = true
		}
	}
	return t, nil
}

// matchable reports whether tokens of type ty are split out of text as whole tokens.
func matchable(ty TokenType) bool {
	return ty == TypeControl || ty == TypeUserDefined || ty == TypeUnknown
}

// decodeToken returns the bytes token id stands for: byte-level decoded for normal tokens, the
// byte for "<0xAB>" byte tokens, the text itself for control and user-defined tokens.
func (t *Tokenizer) decodeToken(id int32) []byte {
	s := t.tokens[id]
	switch t.types[id] {
	case TypeNormal:
		return byteLevelDecode(s)
	case TypeByte:
		if len(s) == 6 && strings.HasPrefix(s, "<0x") && s[5] == '>' {
			if b, err := strconv.ParseUint(s[3:5], 16, 8); err == nil {
				return []byte{byte(b)}
			}
		}
	}
	return []byte(s)
}

// Encode tokenizes text. With special set, control and user-defined tokens written in the text
// become their ids; without it only user-defined ones do (llama.cpp --no-parse-special). Text
// between them is NFC-normalised before pre-tokenisation. No BOS is added.
func (t *Tokenizer) Encode(text string, special bool) []int32 {
	return t.encode(text, special, true)
}

// encode is Encode with optional NFC normalisation (llama.cpp does not normalise).
func (t *Tokenizer) encode(text string, special, nfc bool) []int32 {
	out := make([]int32, 0, len(text)/4+1) // (n_tokens,)
	start := 0
	for i := 0; i < len(text); i++ {
		id, n := t.matchSpecial(text[i:], special)
		if n == 0 {
			continue
		}
		out = t.encodeOrdinary(text[start:i], nfc, out)
		out = append(out, id)
		i += n - 1
		start = i + 1
	}
	return t.encodeOrdinary(text[start:], nfc, out)
}

// matchSpecial returns the longest matchable token at the start of s and its byte length, or
// n = 0.
func (t *Tokenizer) matchSpecial(s string, special bool) (id int32, n int) {
	for _, id := range t.special[s[0]] {
		if !special && t.types[id] != TypeUserDefined {
			continue
		}
		if tok := t.tokens[id]; strings.HasPrefix(s, tok) {
			return id, len(tok)
		}
	}
	return 0, 0
}

// encodeOrdinary appends the ids of text that contains no special tokens.
func (t *Tokenizer) encodeOrdinary(seg string, nfc bool, out []int32) []int32 {
	if seg == "" {
		return out
	}
	if nfc {
		seg = norm.NFC.String(seg)
	}
	for seg != "" {
		n := nextPiece(seg)
		out = t.bpe(seg[:n], out)
		seg = seg[n:]
	}
	return out
}

// Decode concatenates the bytes of ids: normal tokens through the byte-level alphabet, control
// and user-defined tokens as their text. The result may be invalid UTF-8 (ids can end inside
// a character). Ids outside the vocabulary are skipped.
func (t *Tokenizer) Decode(ids []int32) []byte {
	var out []byte
	for _, id := range ids {
		out = append(out, t.piece(id)...)
	}
	return out
}

// piece returns the decoded bytes of one id (nil outside the vocabulary).
func (t *Tokenizer) piece(id int32) []byte {
	if id < 0 || int(id) >= len(t.tokens) {
		return nil
	}
	return t.bytes[t.offsets[id]:t.offsets[id+1]]
}

// Token returns the token string of id in the byte-level alphabet ("" outside the vocabulary).
func (t *Tokenizer) Token(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// Type returns the type of id (TypeUndefined outside the vocabulary).
func (t *Tokenizer) Type(id int32) TokenType {
	if id < 0 || int(id) >= len(t.types) {
		return TypeUndefined
	}
	return t.types[id]
}

// Vocab returns the number of token ids.
func (t *Tokenizer) Vocab() int { return len(t.tokens) }

// TokenID returns the id of a token string (byte-level alphabet for normal tokens).
func (t *Tokenizer) TokenID(s string) (int32, bool) {
	id, ok := t.ids[s]
	return id, ok
}

// EOS returns the end-of-sequence id, or -1.
func (t *Tokenizer) EOS() int32 { return t.opt.EOS }

// BOS returns the beginning-of-sequence id, or -1.
func (t *Tokenizer) BOS() int32 { return t.opt.BOS }

// PAD returns the padding id, or -1.
func (t *Tokenizer) PAD() int32 { return t.opt.PAD }

// AddBOS reports whether prompts should start with BOS (false for Qwen3).
func (t *Tokenizer) AddBOS() bool { return t.opt.AddBOS }

// IsEOG reports whether id ends generation: EOS, <|endoftext|>, <|im_end|> and the FIM end
// tokens <|fim_pad|>, <|repo_name|>, <|file_sep|> when present.
func (t *Tokenizer) IsEOG(id int32) bool { return t.eog[id] }

// IsControl reports whether id is a control token such as <|im_start|>.
func (t *Tokenizer) IsControl(id int32) bool { return t.Type(id) == TypeControl }

// ChatTemplate returns the embedded Jinja chat template ("" if none).
func (t *Tokenizer) ChatTemplate() string { return t.opt.ChatTemplate }
