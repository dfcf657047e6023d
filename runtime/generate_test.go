package runtime_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/gguf"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

// synthModel writes the built-in tiny model to a temporary file and loads it with its tokenizer.
func synthModel(t *testing.T) (*runtime.Model, *tokenizer.Tokenizer) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, synth.Tiny().WriteGGUF(p))
	return loadModel(t, p), ggufTokenizer(t, p)
}

// ggufTokenizer builds the tokenizer of a GGUF file straight from its metadata.
func ggufTokenizer(t *testing.T, path string) *tokenizer.Tokenizer {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	tok, err := tokenizer.FromGGUF(f)
	require.NoError(t, err)
	return tok
}

// refGreedy is the reference loop: argmax over Model.Forward, one token at a time, until an
// end-of-generation token or n tokens.
func refGreedy(t *testing.T, m *runtime.Model, tok *tokenizer.Tokenizer, prompt []int32, n int) []int32 {
	cache := m.NewKVCache(len(prompt) + n)
	logits, err := m.Forward(cache, prompt, false)
	require.NoError(t, err)
	var out []int32
	for len(out) < n {
		id := refArgmax(logits)
		if tok.IsEOG(id) {
			break
		}
		out = append(out, id)
		logits, err = m.Forward(cache, []int32{id}, false)
		require.NoError(t, err)
	}
	return out
}

// generate runs runtime.Generate and returns its stats and the emitted text pieces.
func generate(t *testing.T, ctx context.Context, s runtime.Session, tok *tokenizer.Tokenizer, prompt []int32,
	opt runtime.GenerateOptions) (runtime.GenerateStats, []string) {
	t.Helper()
	var pieces []string
	st, err := runtime.Generate(ctx, s, tok, prompt, opt, func(text string) error {
		pieces = append(pieces, text)
		return nil
	})
	require.NoError(t, err)
	return st, pieces
}

func TestGenerateGreedyMatchesForward(t *testing.T) {
	m, tok := synthModel(t)
	prompt := tok.Encode("the cat sat on the mat", false)
	const n = 40
	want := refGreedy(t, m, tok, prompt, n)
	require.NotEmpty(t, want)

	s, err := runtime.NewCPU(m).NewSession(256)
	require.NoError(t, err)
	var seen []int32
	st, pieces := generate(t, context.Background(), s, tok, prompt, runtime.GenerateOptions{MaxTokens: n,
		OnToken: func(id int32) { seen = append(seen, id) }})
	require.Equal(t, want, st.Tokens)
	require.Equal(t, len(want), st.GenTokens)
	require.Equal(t, len(prompt), st.PromptTokens)
	require.Zero(t, st.CachedTokens)
	if len(want) == n {
		require.Equal(t, runtime.StopLength, st.Stop)
		require.Equal(t, want, seen)
		require.Equal(t, len(prompt)+n-1, s.Len(), "the last sampled token is not fed")
	} else {
		require.Equal(t, runtime.StopEOG, st.Stop)
		require.True(t, tok.IsEOG(seen[len(seen)-1]))
	}
	// the pieces are whole characters and add up to the decoded tokens
	for _, p := range pieces {
		require.True(t, utf8.ValidString(p), "piece %q", p)
	}
	if b := tok.Decode(want); utf8.Valid(b) {
		require.Equal(t, string(b), strings.Join(pieces, ""))
	}
}

func TestGenerateReusesSession(t *testing.T) {
	m, tok := synthModel(t)
	b := runtime.NewCPU(m)
	prompt := tok.Encode("hello there", false)
	s, err := b.NewSession(256)
	require.NoError(t, err)
	st1, _ := generate(t, context.Background(), s, tok, prompt, runtime.GenerateOptions{MaxTokens: 5})
	require.Len(t, st1.Tokens, 5, "the tiny model should not end its turn within 5 tokens")

	// a second turn: everything so far plus new text; only the new part is fed
	next := append(append(append([]int32{}, prompt...), st1.Tokens...), tok.Encode(" and more", false)...)
	st2, text2 := generate(t, context.Background(), s, tok, next, runtime.GenerateOptions{MaxTokens: 8})
	require.Equal(t, len(prompt)+4, st2.CachedTokens)
	require.Equal(t, len(next)-st2.CachedTokens, st2.PromptTokens)

	// the same continuation as from a fresh session
	fresh, err := b.NewSession(256)
	require.NoError(t, err)
	st3, text3 := generate(t, context.Background(), fresh, tok, next, runtime.GenerateOptions{MaxTokens: 8})
	require.Equal(t, st3.Tokens, st2.Tokens)
	require.Equal(t, text3, text2)

	// a prompt the session fully holds is re-fed from its last token
	s.Truncate(len(next))
	st4, _ := generate(t, context.Background(), s, tok, next, runtime.GenerateOptions{MaxTokens: 8})
	require.Equal(t, 1, st4.PromptTokens)
	require.Equal(t, st3.Tokens, st4.Tokens)
}

func TestGenerateContextLimit(t *testing.T) {
	m, tok := synthModel(t)
	prompt := tok.Encode("the end", false)
	const room = 6
	s, err := runtime.NewCPU(m).NewSession(len(prompt) + room)
	require.NoError(t, err)
	st, _ := generate(t, context.Background(), s, tok, prompt, runtime.GenerateOptions{})
	if st.Stop != runtime.StopEOG {
		require.Equal(t, runtime.StopContext, st.Stop)
		// room tokens are fed, and one more is sampled from the last logits
		require.Equal(t, room+1, st.GenTokens)
		require.Equal(t, s.Max(), s.Len())
	}

	small, err := runtime.NewCPU(m).NewSession(len(prompt) - 1)
	require.NoError(t, err)
	st, err = runtime.Generate(context.Background(), small, tok, prompt, runtime.GenerateOptions{},
		func(string) error { return nil })
	require.ErrorIs(t, err, runtime.ErrContextFull)
	require.Equal(t, runtime.StopContext, st.Stop)
	require.Zero(t, small.Len())
}

func TestGenerateCancelAndEmitError(t *testing.T) {
	m, tok := synthModel(t)
	b := runtime.NewCPU(m)
	prompt := tok.Encode("stop me", false)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := b.NewSession(256)
	require.NoError(t, err)
	n := 0
	st, _ := generate(t, ctx, s, tok, prompt, runtime.GenerateOptions{MaxTokens: 50, OnToken: func(int32) {
		if n++; n == 3 {
			cancel()
		}
	}})
	if st.Stop != runtime.StopEOG {
		require.Equal(t, runtime.StopCanceled, st.Stop)
		require.Equal(t, 3, st.GenTokens)
	}

	boom := errors.New("boom")
	s, err = b.NewSession(256)
	require.NoError(t, err)
	_, err = runtime.Generate(context.Background(), s, tok, prompt, runtime.GenerateOptions{MaxTokens: 50},
		func(string) error { return boom })
	require.ErrorIs(t, err, boom)

	_, err = runtime.Generate(context.Background(), s, tok, nil, runtime.GenerateOptions{}, nil)
	require.Error(t, err)
}

func TestGenerateSeededSampling(t *testing.T) {
	m, tok := synthModel(t)
	b := runtime.NewCPU(m)
	prompt := tok.Encode("once upon a time", false)
	run := func(seed uint64) []int32 {
		s, err := b.NewSession(256)
		require.NoError(t, err)
		cfg := runtime.SamplerConfig{Temperature: 1.5, Seed: seed}
		st, _ := generate(t, context.Background(), s, tok, prompt,
			runtime.GenerateOptions{MaxTokens: 16, Sampler: runtime.NewSampler(cfg)})
		return st.Tokens
	}
	require.Equal(t, run(7), run(7))
	require.NotEqual(t, run(7), run(8))
}

// TestGenerateOracleGreedy checks Generate at temperature 0 against llama.cpp's greedy runs
// (../shared/oracle/README.md): the tokens must agree up to the first difference, and that
// difference may only come at a step whose top-2 margin is below the README's threshold.
func TestGenerateOracleGreedy(t *testing.T) {
	cases := []struct {
		model, oracle string
		margin        float64
	}{
		{"tiny-q1.gguf", "tiny-q1.greedy.json", 0.1},
		{"qwen3vocab-q1.gguf", "qwen3vocab-q1.greedy.json", 0.25},
	}
	for _, c := range cases {
		t.Run(c.model, func(t *testing.T) {
			path := testenv.Shared(t, "oracle", c.model)
			m, tok := loadModel(t, path), ggufTokenizer(t, path)
			var g greedyFile
			testenv.ReadJSON(t, testenv.Shared(t, "oracle", c.oracle), &g)
			require.NotEmpty(t, g.Runs)
			for _, run := range g.Runs {
				s, err := runtime.NewCPU(m).NewSession(len(run.Prompt) + len(run.Generated))
				require.NoError(t, err)
				st, _ := generate(t, context.Background(), s, tok, run.Prompt,
					runtime.GenerateOptions{MaxTokens: len(run.Generated)})
				require.Len(t, st.Tokens, len(run.Generated), "%s: the oracle run has no end-of-generation token", run.Name)
				for i, want := range run.Generated {
					if st.Tokens[i] != want {
						require.Lessf(t, run.Margins[i], c.margin, "%s step %d: got %d, llama.cpp %d",
							run.Name, i, st.Tokens[i], want)
						break
					}
				}
			}
		})
	}
}
