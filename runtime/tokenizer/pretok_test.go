package tokenizer

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// split cuts s into pre-tokenizer pieces.
func split(s string) []string {
	var out []string
	for s != "" {
		n := nextPiece(s)
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

// TestPreTokenizer checks hand-picked splits. The expected pieces are what Python's `regex`
// module (an independent backtracking engine) finds with the Qwen2 pattern; the same engine
// agreed with nextPiece on 30,000 random strings over an alphabet of letters, digits, the
// contraction letters, ASCII and Unicode white space, U+001C, U+0085, U+200B, U+FEFF, U+017F,
// combining marks, emoji and punctuation.
func TestPreTokenizer(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"  hello", []string{" ", " hello"}},
		{"a  \n\n  b", []string{"a", "  \n\n", " ", " b"}},
		{"x   ", []string{"x", "   "}},
		{"don't DON'T 'Ll 'ſ", []string{"don", "'t", " DON", "'T", " '", "Ll", " '", "ſ"}},
		{"'ſ", []string{"'ſ"}},
		{"'LLama", []string{"'LL", "ama"}},
		{"'RE'Ve'M'D", []string{"'RE", "'Ve", "'M", "'D"}},
		{"123 4.5", []string{"1", "2", "3", " ", "4", ".", "5"}},
		{"...\n\nfoo", []string{"...\n\n", "foo"}},
		{" !!\r\n", []string{" !!\r\n"}},
		{"x\u00a0y\u3000z", []string{"x", "\u00a0y", "\u3000z"}},
		{"x\u200by\ufeffz", []string{"x", "\u200by", "\ufeffz"}},
		{"\u001c.\u0085.", []string{"\u001c.", "\u0085", "."}},
		{"\t\tword", []string{"\t", "\tword"}},
		{"a \n b", []string{"a", " \n", " b"}},
		{"\r", []string{"\r"}},
		{"e\u0301 é", []string{"e", "\u0301", " é"}},
		{"😀😀 hi", []string{"😀😀", " hi"}},
		{"٣Ⅻ²", []string{"٣", "Ⅻ", "²"}},
		{"it's'", []string{"it", "'s", "'"}},
		{"  \n", []string{"  \n"}},
		{"_foo", []string{"_foo"}},
	} {
		require.Equal(t, c.want, split(c.in), "%q", c.in)
	}
	// Invalid UTF-8 bytes count as "other" characters (U+FFFD, So).
	require.Equal(t, []string{"a", "\xff\xfe.", "1"}, split("a\xff\xfe.1"))
}
