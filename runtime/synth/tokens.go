package synth

import "fmt"

// TinyVocab is the size of the synthetic byte-level tokenizer: the 256 byte tokens in byte
// order, three merges (Ġt, he, Ġthe), three control tokens and the two think tags.
const TinyVocab = 264

// Token ids of the synthetic tokenizer.
const (
	TokEndOfText = 259 // <|endoftext|>: BOS and padding
	TokImStart   = 260 // <|im_start|>
	TokImEnd     = 261 // <|im_end|>: EOS
	TokThink     = 262 // <think>
	TokEndThink  = 263 // </think>
)

// byteChar maps a byte to its GPT-2 byte-level character.
func byteChar(b byte) rune {
	switch {
	case b >= '!' && b <= '~', b >= 0xA1 && b <= 0xAC, b >= 0xAE:
		return rune(b)
	}
	n := 0 // index among the remapped bytes, in byte order
	for c := 0; c < int(b); c++ {
		cb := byte(c)
		if !(cb >= '!' && cb <= '~' || cb >= 0xA1 && cb <= 0xAC || cb >= 0xAE) {
			n++
		}
	}
	return rune(0x100 + n)
}

// Vocabulary returns the token strings, GGUF token types and merges for a vocab of n >= 264
// rows (rows past 264 are unused padding tokens).
func Vocabulary(n int) (tokens []string, types []int32, merges []string) {
	tokens = make([]string, 0, n)
	types = make([]int32, 0, n)
	for b := 0; b < 256; b++ {
		tokens = append(tokens, string(byteChar(byte(b))))
		types = append(types, 1)
	}
	tokens = append(tokens, "Ġt", "he", "Ġthe", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
	types = append(types, 1, 1, 1, 3, 3, 3, 4, 4)
	for i := len(tokens); i < n; i++ {
		tokens = append(tokens, fmt.Sprintf("[PAD%d]", i))
		types = append(types, 5)
	}
	return tokens, types, []string{"Ġ t", "h e", "Ġt he"}
}
