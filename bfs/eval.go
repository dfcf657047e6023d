package bfs

import (
	"context"
	"fmt"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// EvalOptions configures Eval.
type EvalOptions struct {
	Metric    Metric
	Tokenizer Tokenizer // nil: the model's
	Sets      []*ProbeSet
	Flips     []patch.Flip // the patch to evaluate
	// Greedy also decodes every prompt greedily before and after (MaxTokens, default
	// MaxGreedyTokens) and scores the answers with the upstream matcher.
	Greedy       bool
	MaxTokens    int
	MaxBatchRows int
}

// ProbeEval is one probe before and after the patch.
type ProbeEval struct {
	Set         string  `json:"set"`
	Name        string  `json:"name"`
	Category    string  `json:"category"`
	Base        float64 `json:"base"`    // metric gap without the patch
	Patched     float64 `json:"patched"` // metric gap with it
	Delta       float64 `json:"delta"`
	BaseText    string  `json:"base_text,omitempty"` // greedy answers
	PatchedText string  `json:"patched_text,omitempty"`
	// BaseCorrect and PatchedCorrect say whether the probe is right: by the greedy answer when
	// EvalOptions.Greedy is set, else by the sign of the gap (right means gap > 0).
	BaseCorrect      bool `json:"base_correct"`
	PatchedCorrect   bool `json:"patched_correct"`
	BaseSaidWrong    bool `json:"base_said_wrong,omitempty"`
	PatchedSaidWrong bool `json:"patched_said_wrong,omitempty"`
}

// Counts tallies right/wrong transitions (docs/UPSTREAM.md §5.3/§5.4): fixed = wrong → right,
// broke = right → wrong, unchanged = stayed right + stayed wrong; Before = stayed right + broke,
// After = stayed right + fixed.
type Counts struct {
	Total       int `json:"total"`
	Fixed       int `json:"fixed"`
	Broke       int `json:"broke"`
	StayedRight int `json:"stayed_right"`
	StayedWrong int `json:"stayed_wrong"`
	Unchanged   int `json:"unchanged"`
	Before      int `json:"before"`
	After       int `json:"after"`
}

// CountChanges tallies before/after right-or-wrong verdicts of the same probes.
func CountChanges(before, after []bool) Counts {
	c := Counts{Total: len(before)}
	for i, b := range before {
		switch a := after[i]; {
		case !b && a:
			c.Fixed++
		case b && !a:
			c.Broke++
		case b && a:
			c.StayedRight++
		default:
			c.StayedWrong++
		}
	}
	c.Unchanged = c.StayedRight + c.StayedWrong
	c.Before = c.StayedRight + c.Broke
	c.After = c.StayedRight + c.Fixed
	return c
}

// EvalReport is the JSON-able result of Eval.
type EvalReport struct {
	Metric Metric      `json:"metric"`
	Flips  int         `json:"flips"`
	Probes []ProbeEval `json:"probes"`
	// Gap counts probes by the sign of the metric gap: right means gap > 0 (docs/UPSTREAM.md §5.4).
	Gap Counts `json:"gap"`
	// Greedy counts probes by the greedy check (docs/UPSTREAM.md §5.3), when requested.
	Greedy *Counts `json:"greedy,omitempty"`
}

// Eval measures every probe without and with the flips: metric gaps and, optionally, greedy
// answers. The model is restored before it returns.
func Eval(ctx context.Context, b runtime.Backend, opts EvalOptions) (*EvalReport, error) {
	probes := flatten(opts.Sets)
	if len(probes) == 0 {
		return nil, fmt.Errorf("bfs: eval: no probes")
	}
	tok := opts.Tokenizer
	if tok == nil {
		t, err := b.Model().Tokenizer()
		if err != nil {
			return nil, fmt.Errorf("bfs: eval: %w", err)
		}
		tok = t
	}
	greedy := 0
	if opts.Greedy {
		if opts.MaxTokens < 0 {
			return nil, fmt.Errorf("bfs: eval: %d greedy tokens: want 1 or more (0: %d)", opts.MaxTokens, MaxGreedyTokens)
		}
		if greedy = opts.MaxTokens; greedy == 0 {
			greedy = MaxGreedyTokens
		}
	}
	if err := CheckProbeLengths(tok, opts.Sets, b.Model().Context, greedy); err != nil {
		return nil, err
	}
	rep := &EvalReport{Metric: opts.Metric, Flips: len(opts.Flips), Probes: make([]ProbeEval, len(probes))}
	i := 0
	for _, s := range opts.Sets {
		for _, p := range s.Probes {
			rep.Probes[i] = ProbeEval{Set: s.Name, Name: p.Name, Category: p.Category}
			i++
		}
	}
	measure := func(patched bool) error {
		e, err := NewEvaluator(b, probes, EvaluatorConfig{Metric: opts.Metric, Tokenizer: tok, MaxBatchRows: opts.MaxBatchRows})
		if err != nil {
			return err
		}
		for i, v := range e.Scores() {
			if patched {
				rep.Probes[i].Patched = v
			} else {
				rep.Probes[i].Base = v
			}
		}
		if !opts.Greedy {
			return nil
		}
		for i, p := range probes {
			if err := ctx.Err(); err != nil {
				return err
			}
			text, err := GreedyAnswer(b, tok, p.Prompt, opts.MaxTokens)
			if err != nil {
				return err
			}
			ok, wrong := p.Judge(text)
			pe := &rep.Probes[i]
			if patched {
				pe.PatchedText, pe.PatchedCorrect, pe.PatchedSaidWrong = text, ok, wrong
			} else {
				pe.BaseText, pe.BaseCorrect, pe.BaseSaidWrong = text, ok, wrong
			}
		}
		return nil
	}
	if err := measure(false); err != nil {
		return nil, fmt.Errorf("bfs: eval: %w", err)
	}
	if err := runtime.ApplyFlips(b, opts.Flips); err != nil {
		return nil, fmt.Errorf("bfs: eval: %w", err)
	}
	err := measure(true)
	if rerr := runtime.ApplyFlips(b, opts.Flips); rerr != nil {
		return nil, fmt.Errorf("bfs: eval: restoring the model: %w", rerr)
	}
	if err != nil {
		return nil, fmt.Errorf("bfs: eval: %w", err)
	}
	before, after := make([]bool, len(probes)), make([]bool, len(probes))
	for i := range rep.Probes {
		pe := &rep.Probes[i]
		pe.Delta = pe.Patched - pe.Base
		before[i], after[i] = pe.Base > 0, pe.Patched > 0
	}
	rep.Gap = CountChanges(before, after)
	if !opts.Greedy {
		// Without greedy answers, right means a positive gap, as in the Gap counts.
		for i := range rep.Probes {
			rep.Probes[i].BaseCorrect, rep.Probes[i].PatchedCorrect = before[i], after[i]
		}
	}
	if opts.Greedy {
		for i, pe := range rep.Probes {
			before[i], after[i] = pe.BaseCorrect, pe.PatchedCorrect
		}
		g := CountChanges(before, after)
		rep.Greedy = &g
	}
	return rep, nil
}
