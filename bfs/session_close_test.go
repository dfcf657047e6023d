package bfs

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

var _ EOGTokenizer = (*tokenizer.Tokenizer)(nil)

// countingBackend is the CPU backend counting the sessions it opens and the ones closed.
// failAfter > 0 makes every session's Forward fail from that call on.
type countingBackend struct {
	runtime.Backend
	opened, closed int
	failAfter      int
}

func (b *countingBackend) NewSession(maxCtx int) (runtime.Session, error) {
	s, err := b.Backend.NewSession(maxCtx)
	if err != nil {
		return nil, err
	}
	b.opened++
	return &countingSession{Session: s, b: b}, nil
}

type countingSession struct {
	runtime.Session
	b        *countingBackend
	forwards int
	done     bool
}

var errForward = errors.New("forward failed")

func (s *countingSession) Forward(tokens []int32, all bool) ([]float32, error) {
	if s.done {
		panic("Forward on a closed session")
	}
	if s.forwards++; s.b.failAfter > 0 && s.forwards >= s.b.failAfter {
		return nil, errForward
	}
	return s.Session.Forward(tokens, all)
}

func (s *countingSession) Close() error {
	if !s.done {
		s.done = true
		s.b.closed++
	}
	return s.Session.Close()
}

// TestGreedyAnswerClosesSession checks that GreedyAnswer closes the session it opens, on
// success and when decoding fails.
func TestGreedyAnswerClosesSession(t *testing.T) {
	m := tinyModel(t, 2)
	tok := tinyTok(t)
	b := &countingBackend{Backend: runtime.NewCPU(m)}
	_, err := GreedyAnswer(b, tok, "1 + 1 =", 4)
	require.NoError(t, err)
	require.Equal(t, 1, b.opened)
	require.Equal(t, 1, b.closed)

	b.failAfter = 2 // the prompt runs, the first generated token fails
	_, err = GreedyAnswer(b, tok, "1 + 1 =", 4)
	require.ErrorIs(t, err, errForward)
	require.Equal(t, 2, b.opened)
	require.Equal(t, 2, b.closed)
}

// TestEvalGreedyClosesSessions checks that a greedy Eval leaves no session open.
func TestEvalGreedyClosesSessions(t *testing.T) {
	m := tinyModel(t, 2)
	b := &countingBackend{Backend: runtime.NewCPU(m)}
	sets := []*ProbeSet{smallTarget()}
	_, err := Eval(context.Background(), b, EvalOptions{Metric: MetricSeqLogprob, Tokenizer: tinyTok(t), Sets: sets,
		Flips: []patch.Flip{patch.RowFlip(1, "up_proj", 3)}, Greedy: true, MaxTokens: 3})
	require.NoError(t, err)
	require.Equal(t, 2*len(flatten(sets)), b.opened, "one greedy answer per probe, before and after")
	require.Equal(t, b.opened, b.closed)
}
