package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"golang.org/x/text/unicode/norm"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

// naiveBPE is the textbook merge loop: repeatedly merge the leftmost adjacent pair of lowest
// rank, O(n^2) per piece, on token strings instead of ids.
func naiveBPE(t *Tokenizer, rank map[[2]string]int, piece string) []int32 {
	var syms []string
	for i := 0; i < len(piece); i++ {
		syms = append(syms, string(byteToRune[piece[i]]))
	}
	for {
		best, at := -1, -1
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := rank[[2]string{syms[i], syms[i+1]}]; ok && (best < 0 || r < best) {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		syms = append(syms[:at], append([]string{syms[at] + syms[at+1]}, syms[at+2:]...)...)
	}
	ids := make([]int32, len(syms))
	for i, s := range syms {
		ids[i] = t.ids[s]
	}
	return ids
}

// TestBPEMatchesNaive compares the heap-based merge loop with naiveBPE on the pieces of every
// encode case and of random strings (including long runs), with the piece cache bypassed.
func TestBPEMatchesNaive(t *testing.T) {
	tok := qwenFromJSON(t)
	rank := make(map[[2]string]int, len(tok.merges))
	for k, m := range tok.merges {
		rank[[2]string{tok.tokens[int32(k>>32)], tok.tokens[int32(uint32(k))]}] = int(m.rank)
	}
	var texts []string
	for _, c := range loadEncodeCases(t) {
		texts = append(texts, c.Text)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alpha := []rune("aeiou rstlnm'.\n\t0123456789éßж中文😀 ")
	for range 300 {
		var sb strings.Builder
		for range rng.IntN(40) {
			sb.WriteRune(alpha[rng.IntN(len(alpha))])
		}
		texts = append(texts, sb.String())
	}
	texts = append(texts, strings.Repeat("a", 700), strings.Repeat("ab", 300), strings.Repeat(" ", 500))
	for _, text := range texts {
		s := norm.NFC.String(text)
		for s != "" {
			n := nextPiece(s)
			tok.cache.mu.Lock()
			tok.cache.m = nil
			tok.cache.mu.Unlock()
			require.Equal(t, naiveBPE(tok, rank, s[:n]), tok.bpe(s[:n], nil), "piece %q", s[:n])
			s = s[n:]
		}
	}
}

// FuzzEncode checks that Decode(Encode(s, false)) == NFC(s) for valid UTF-8 without
// special-token text, and that encoding never panics, with the full Qwen3 vocabulary when
// ../shared has it and the synthetic byte-level one otherwise (never skipped).
func FuzzEncode(f *testing.F) {
	if p, ok := testenv.Lookup(f, "tokenizer", "encode-cases.json"); ok {
		var cases struct{ Cases []encodeCase }
		testenv.ReadJSON(f, p, &cases)
		for _, c := range cases.Cases {
			f.Add(c.Text)
		}
	}
	for _, s := range []string{"\xff\xfe invalid \xc3", "Hello, world!\n\tThe  cats' 123 café\r\n",
		"日本語のテキスト 🙂 e\u0301", "<think>\n</think> <|im_start|>user"} {
		f.Add(s)
	}
	var tok *Tokenizer
	if _, ok := testenv.Lookup(f, "oracle", "qwen3vocab-q1.gguf"); ok {
		tok = qwenFromGGUF(f)
	} else {
		toks, types, merges := synth.Vocabulary(synth.TinyVocab)
		var err error
		tok, err = New(toks, types, merges, Options{BOS: -1, EOS: synth.TokImEnd, PAD: -1})
		require.NoError(f, err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		special := tok.Encode(s, true)
		plain := tok.Encode(s, false)
		if !utf8.ValidString(s) {
			return
		}
		for _, ids := range tok.special {
			for _, id := range ids {
				if strings.Contains(s, tok.tokens[id]) {
					require.Equal(t, string(tok.Decode(special)), string(tok.Decode(plain)))
					return
				}
			}
		}
		require.Equal(t, norm.NFC.String(s), string(tok.Decode(plain)))
		require.Equal(t, plain, special)
	})
}

// BenchmarkEncode100KB encodes ~100 KB of mixed text (all encode cases, repeated) with a cold
// piece cache.
func BenchmarkEncode100KB(b *testing.B) {
	tok := qwenFromGGUF(b)
	var sb strings.Builder
	cases := loadEncodeCases(b)
	for sb.Len() < 100<<10 {
		for _, c := range cases {
			sb.WriteString(c.Text)
			sb.WriteByte('\n')
		}
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		tok.cache.mu.Lock()
		tok.cache.m = nil
		tok.cache.mu.Unlock()
		tok.Encode(text, true)
	}
}

// TestEncodeConcurrent encodes from several goroutines at once (run with -race): the piece
// cache is the only shared mutable state.
func TestEncodeConcurrent(t *testing.T) {
	tok := qwenFromGGUF(t)
	cases := loadEncodeCases(t)
	want := make([][]int32, len(cases))
	for i, c := range cases {
		want[i] = tok.Encode(c.Text, true)
	}
	done := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range cases {
				j := (i + g*37) % len(cases)
				if got := tok.Encode(cases[j].Text, true); !slices.Equal(got, want[j]) {
					done <- fmt.Errorf("case %d: %v != %v", cases[j].ID, got, want[j])
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		require.NoError(t, <-done)
	}
}
