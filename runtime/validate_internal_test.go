package runtime

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

// TestCheckTokenizer checks the tokenizer-size rule that Model.Tokenizer applies (for MLX,
// where tokenizer.json is not parsed at load): a tokenizer with more ids than the embedding
// has rows is refused, naming both sizes.
func TestCheckTokenizer(t *testing.T) {
	m := &Model{Config: Config{Vocab: synth.TinyVocab}, Embed: &q1.Matrix{Name: "model.embed_tokens", Rows: synth.TinyVocab}}
	for _, n := range []int{synth.TinyVocab, synth.TinyVocab + 10} {
		toks, types, merges := synth.Vocabulary(n)
		tok, err := tokenizer.New(toks, types, merges, tokenizer.Options{BOS: -1, EOS: -1, PAD: -1})
		require.NoError(t, err)
		err = m.checkTokenizer(tok)
		if n == synth.TinyVocab {
			require.NoError(t, err)
			continue
		}
		require.EqualError(t, err, fmt.Sprintf("the tokenizer has %d tokens but model.embed_tokens has only 264 rows: "+
			"ids from 264 on could not be embedded", n))
	}
}
