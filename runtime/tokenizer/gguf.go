package tokenizer

import (
	"fmt"
	"math"

	"github.com/bankai-metal/bankai-metal/runtime/gguf"
)

// FromGGUF builds a tokenizer from a GGUF file's tokenizer.ggml.* metadata (docs/FORMATS.md §4.2):
// tokens, token_type, merges, pre, the bos/eos/padding ids, add_bos_token and
// tokenizer.chat_template. Only the "gpt2" (byte-level BPE) model is supported.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	if model, ok := f.String("tokenizer.ggml.model"); ok && model != "gpt2" {
		return nil, fmt.Errorf("tokenizer: gguf: tokenizer.ggml.model %q not supported (want gpt2)", model)
	}
	tokens, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok {
		return nil, fmt.Errorf("tokenizer: gguf: tokenizer.ggml.tokens missing or not a string array")
	}
	var types []int32
	if _, present := f.Get("tokenizer.ggml.token_type"); present {
		if types, ok = f.Int32s("tokenizer.ggml.token_type"); !ok {
			return nil, fmt.Errorf("tokenizer: gguf: tokenizer.ggml.token_type is not an int32 array")
		}
	}
	merges, ok := f.Strings("tokenizer.ggml.merges")
	if !ok {
		return nil, fmt.Errorf("tokenizer: gguf: tokenizer.ggml.merges missing or not a string array")
	}
	opt := Options{BOS: -1, EOS: -1, PAD: -1}
	for _, k := range []struct {
		key string
		dst *int32
	}{
		{"tokenizer.ggml.bos_token_id", &opt.BOS},
		{"tokenizer.ggml.eos_token_id", &opt.EOS},
		{"tokenizer.ggml.padding_token_id", &opt.PAD},
	} {
		if _, present := f.Get(k.key); !present {
			continue
		}
		v, ok := f.Uint(k.key)
		if !ok || v > math.MaxInt32 {
			return nil, fmt.Errorf("tokenizer: gguf: %s is not a token id", k.key)
		}
		*k.dst = int32(v)
	}
	opt.AddBOS, _ = f.Bool("tokenizer.ggml.add_bos_token")
	opt.ChatTemplate, _ = f.String("tokenizer.chat_template")
	opt.Pre, _ = f.String("tokenizer.ggml.pre")
	return New(tokens, types, merges, opt)
}
