package backendtest

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// MaxModelNMSE bounds the NMSE of a backend's logits against the CPU's at every position. Each
// kernel stays within MaxNMSE (1e-7, relative errors ~3e-4); a few dozen of them in sequence,
// with normalisations that do not amplify errors, stay well inside ten times that.
const MaxModelNMSE = 1e-6

// ModelCase says how much of CheckModel to run.
type ModelCase struct {
	Prefill int  // tokens of the first forward pass, logits for all of them (default 7)
	Decode  int  // tokens then decoded one at a time (default 3)
	Long    bool // also 190 tokens in two calls, the second longer than one Metal command buffer
	Patch   bool // also flip sign bits in host memory and call WeightsChanged
}

// CheckModel compares the logits of b with the CPU backend's on b.Model(): a prefill with logits
// for every token, token-by-token decoding, Truncate and continue, optionally a long prefill and
// a patch applied and reverted in host memory (restored before it returns).
func CheckModel(t *testing.T, b runtime.Backend, c ModelCase) {
	m := b.Model()
	ref := runtime.NewCPU(m)
	if c.Prefill == 0 {
		c.Prefill = 7
	}
	if c.Decode == 0 {
		c.Decode = 3
	}
	rng := rand.New(rand.NewPCG(uint64(m.Vocab), 21))
	tokens := make([]int32, c.Prefill+c.Decode)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(m.Vocab))
	}
	require.GreaterOrEqual(t, c.Prefill, 2, "CheckModel needs a prefill of 2 tokens or more")
	got, want := newPair(t, b, ref, len(tokens)+4)

	// Prefill with logits for every position.
	compare(t, "prefill", m.Vocab, got.forward(tokens[:c.Prefill], true), want.forward(tokens[:c.Prefill], true))
	// Decode one token at a time.
	for i := c.Prefill; i < len(tokens); i++ {
		compare(t, fmt.Sprintf("decode pos %d", i), m.Vocab, got.forward(tokens[i:i+1], false), want.forward(tokens[i:i+1], false))
	}
	require.Equal(t, want.s.Len(), got.s.Len(), "Len after decoding")
	// Forget the decoded tokens and take another path.
	got.s.Truncate(c.Prefill - 2)
	want.s.Truncate(c.Prefill - 2)
	other := []int32{tokens[0], tokens[len(tokens)-1]}
	compare(t, "after Truncate", m.Vocab, got.forward(other, true), want.forward(other, true))

	if c.Long {
		// 60 tokens, then 130 more with logits for all: the cache grows past its first
		// allocation keeping what it holds, and the second call spans two command buffers.
		long := make([]int32, 190)
		for i := range long {
			long[i] = int32(rng.IntN(m.Vocab))
		}
		got, want := newPair(t, b, ref, 200)
		compare(t, "long prefill", m.Vocab, got.forward(long[:60], false), want.forward(long[:60], false))
		compare(t, "long continuation", m.Vocab, got.forward(long[60:], true), want.forward(long[60:], true))
	}
	if c.Patch {
		checkPatch(t, b, ref, tokens[:c.Prefill])
	}
}

// checkPatch flips a row, a group and single bits of several matrices in host memory, tells both
// backends, compares, flips them back and compares again.
func checkPatch(t *testing.T, b, ref runtime.Backend, tokens []int32) {
	m := b.Model()
	q := m.Layers[0].Proj[runtime.ProjQ]
	down := m.Layers[len(m.Layers)-1].Proj[runtime.ProjDown]
	flip := func() {
		q.Flip(1, -1, -1)
		down.Flip(0, down.Groups-1, -1)
		m.Output.Flip(int(tokens[0]), -1, 3)
		m.Embed.Flip(int(tokens[1]), 0, -1)
	}
	mats := []*q1.Matrix{q, down, m.Output, m.Embed}
	run := func(what string) {
		require.NoError(t, b.WeightsChanged(mats...))
		require.NoError(t, ref.WeightsChanged(mats...))
		got, want := newPair(t, b, ref, len(tokens))
		compare(t, what, m.Vocab, got.forward(tokens, true), want.forward(tokens, true))
	}
	before, _ := newPair(t, ref, ref, len(tokens))
	base := before.forward(tokens, true)

	flip()
	reverted := false
	defer func() {
		if !reverted {
			flip() // every flip is an XOR: applying it again restores the model
		}
	}()
	run("patched")
	patched, _ := newPair(t, ref, ref, len(tokens))
	require.Greater(t, NMSE(patched.forward(tokens, true), base), 0.0, "the patch must change the logits")
	flip()
	reverted = true
	run("reverted")
}

// pair is a session and the test it reports to.
type pair struct {
	t *testing.T
	s runtime.Session
}

func newPair(t *testing.T, b, ref runtime.Backend, maxCtx int) (got, want pair) {
	t.Helper()
	s, err := b.NewSession(maxCtx)
	require.NoError(t, err)
	r, err := ref.NewSession(maxCtx)
	require.NoError(t, err)
	return pair{t, s}, pair{t, r}
}

func (p pair) forward(tokens []int32, all bool) []float32 {
	p.t.Helper()
	out, err := p.s.Forward(tokens, all)
	require.NoError(p.t, err)
	return out
}

// compare checks logits (rows, vocab) row by row: NMSE ≤ MaxModelNMSE and the same argmax
// wherever the CPU's best logit leads the second by more than 1e-3.
func compare(t *testing.T, what string, vocab int, got, want []float32) {
	t.Helper()
	require.Len(t, got, len(want), what)
	for r := 0; r*vocab < len(want); r++ {
		g, w := got[r*vocab:(r+1)*vocab], want[r*vocab:(r+1)*vocab]
		where := fmt.Sprintf("%s, row %d", what, r)
		requireClose(t, g, w, MaxModelNMSE, where)
		best, second := top2(w)
		if w[best]-w[second] > 1e-3 {
			gb, _ := top2(g)
			require.Equal(t, best, gb, "argmax: %s", where)
		}
	}
}

func top2(v []float32) (best, second int) {
	best, second = 0, -1
	for i := 1; i < len(v); i++ {
		switch {
		case v[i] > v[best]:
			best, second = i, best
		case second < 0 || v[i] > v[second]:
			second = i
		}
	}
	if second < 0 {
		second = best
	}
	return best, second
}
