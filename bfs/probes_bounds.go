package bfs

import "fmt"

// MaxProbeTokens bounds the tokens of all the probes of one run together (prompts and both
// answers). The evaluator keeps a hidden-size vector per token and phase, so this bounds its
// memory: about 2 GiB of activations on an 8B model.
const MaxProbeTokens = 1 << 17

// ProbeTokens returns how many tokens probe p needs in one sequence: its prompt followed by the
// longer of its two answers, or by greedy generated tokens when greedy > 0 and that is longer.
// all is the tokens it adds to a batch of probes (prompt and both answers).
func ProbeTokens(tok Tokenizer, p Probe, greedy int) (seq, all int) {
	prompt := len(tok.Encode(p.Prompt, true))
	c := len(Continuation(tok, p.Prompt, p.Correct))
	w := len(Continuation(tok, p.Prompt, p.Wrong))
	return prompt + max(c, w, greedy), prompt + c + w
}

// CheckProbeSet checks that every probe of set fits in a context of contextLen tokens
// (contextLen <= 0: no limit), with greedy answer tokens when greedy > 0, and returns the
// tokens the set adds to a batch. Errors name the probe by index and name.
func CheckProbeSet(tok Tokenizer, set *ProbeSet, contextLen, greedy int) (int, error) {
	total := 0
	for i, p := range set.Probes {
		seq, all := ProbeTokens(tok, p, greedy)
		if contextLen > 0 && seq > contextLen {
			what := "prompt and answer"
			if greedy > 0 {
				what = fmt.Sprintf("prompt and answer or %d greedy tokens", greedy)
			}
			return 0, fmt.Errorf("probe %d (%q): %d tokens (%s), more than the model's context of %d",
				i, p.Name, seq, what, contextLen)
		}
		total += all
		if total > MaxProbeTokens {
			return 0, fmt.Errorf("probe %d (%q): the probes come to more than %d tokens; use fewer or shorter probes",
				i, p.Name, MaxProbeTokens)
		}
	}
	return total, nil
}

// CheckProbeLengths checks every set with CheckProbeSet, and that all of them together stay
// within MaxProbeTokens, before any work is done on them. Errors name the set and the probe.
func CheckProbeLengths(tok Tokenizer, sets []*ProbeSet, contextLen, greedy int) error {
	total := 0
	for _, s := range sets {
		n, err := CheckProbeSet(tok, s, contextLen, greedy)
		if err != nil {
			return fmt.Errorf("bfs: probe set %q: %w", s.Name, err)
		}
		if total += n; total > MaxProbeTokens {
			return fmt.Errorf("bfs: probe set %q: the probes come to more than %d tokens; use fewer or shorter probes",
				s.Name, MaxProbeTokens)
		}
	}
	return nil
}
