package bfs

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/bankai-metal/bankai-metal/runtime"
)

// Metric selects how a probe is scored (see the package documentation for the formulas).
type Metric int

const (
	// MetricSeqLogprob is the summed teacher-forced log-probability of the whole correct answer
	// minus the distractor's.
	MetricSeqLogprob Metric = iota
	// MetricTokenGap is logit[c] − logit[w] at the first token where the answers differ.
	MetricTokenGap
)

// String returns "seq_logprob" or "token_gap".
func (m Metric) String() string {
	switch m {
	case MetricSeqLogprob:
		return "seq_logprob"
	case MetricTokenGap:
		return "token_gap"
	}
	return fmt.Sprintf("Metric(%d)", int(m))
}

// ParseMetric accepts "seq_logprob" or "token_gap".
func ParseMetric(s string) (Metric, error) {
	switch s {
	case "seq_logprob":
		return MetricSeqLogprob, nil
	case "token_gap":
		return MetricTokenGap, nil
	}
	return 0, fmt.Errorf("bfs: unknown metric %q (want seq_logprob or token_gap)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (m Metric) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Metric) UnmarshalText(b []byte) error {
	v, err := ParseMetric(string(b))
	*m = v
	return err
}

// Tokenizer is what bfs needs of a tokenizer; *tokenizer.Tokenizer implements it. If it is
// also an EOGTokenizer, greedy decoding stops at end-of-generation tokens.
type Tokenizer interface {
	Encode(text string, special bool) []int32
	Decode(ids []int32) []byte
}

// EOGTokenizer is an optional Tokenizer capability, found by type assertion:
// *tokenizer.Tokenizer has it. GreedyAnswer stops before a token for which IsEOG is true.
type EOGTokenizer interface {
	// IsEOG reports whether id ends a generation (such as <|im_end|> or <|endoftext|>).
	IsEOG(id int32) bool
}

// Continuation returns the tokens of answer in the context of prompt: encode(prompt+answer)
// without the prompt's ids when they are its prefix, else encode(answer).
func Continuation(tok Tokenizer, prompt, answer string) []int32 {
	p := tok.Encode(prompt, true)
	full := tok.Encode(prompt+answer, true)
	if len(full) >= len(p) && slices.Equal(full[:len(p)], p) {
		return full[len(p):]
	}
	return tok.Encode(answer, true)
}

// prepared is a probe tokenised for a metric, in three parts run as sequences: the shared
// prefix (the prompt and the answers' common first tokens), then, continuing it through a KV
// cache, the correct and the wrong answer's remaining tokens except their last (whose outputs
// predict nothing that is scored). token_gap uses the shared prefix only.
type prepared struct {
	parts [3][]int32 // shared prefix, correct-answer segment, wrong-answer segment
	reads []read     // what the LM head reads, in summation order
}

// read is one LM-head lookup: the row at position pos of part.
type read struct {
	part, pos int
	a, b      int32 // token_gap: logit[a] − logit[b]; seq_logprob: log p(a), b unused
	side      int   // seq_logprob: 0 adds to the correct answer's sum, 1 to the wrong one's
}

// prepareProbe tokenises p for metric m.
//
// For seq_logprob, with C, W the in-context continuations and k their common prefix length, the
// terms j < k of the two sums are the same numbers and cancel exactly, so the gap is computed as
// Σ_{j≥k} log p(C_j | P·C_{<j}) − Σ_{j≥k} log p(W_j | P·W_{<j}); the terms j = k of both answers
// share one row (P·C_{<k}).
func prepareProbe(tok Tokenizer, p Probe, m Metric) (prepared, error) {
	prompt := tok.Encode(p.Prompt, true)
	if len(prompt) == 0 {
		return prepared{}, fmt.Errorf("probe %q: prompt encodes to no tokens", p.Name)
	}
	c := Continuation(tok, p.Prompt, p.Correct)
	w := Continuation(tok, p.Prompt, p.Wrong)
	if len(c) == 0 || len(w) == 0 {
		return prepared{}, fmt.Errorf("probe %q: an answer encodes to no tokens", p.Name)
	}
	k := 0
	for k < len(c) && k < len(w) && c[k] == w[k] {
		k++
	}
	var pp prepared
	pp.parts[0] = append(slices.Clone(prompt), c[:k]...)
	last := len(pp.parts[0]) - 1
	switch m {
	case MetricTokenGap:
		if k == len(c) || k == len(w) {
			return prepared{}, fmt.Errorf("probe %q: token_gap: the answers do not differ in any token (one continuation is a prefix of the other); use seq_logprob", p.Name)
		}
		pp.reads = []read{{part: 0, pos: last, a: c[k], b: w[k]}}
	case MetricSeqLogprob:
		for side, cont := range [][]int32{c, w} {
			if k < len(cont) {
				pp.reads = append(pp.reads, read{part: 0, pos: last, a: cont[k], b: -1, side: side})
			}
		}
		for side, cont := range [][]int32{c, w} {
			if k+1 < len(cont) {
				pp.parts[1+side] = slices.Clone(cont[k : len(cont)-1])
			}
			for j := k + 1; j < len(cont); j++ { // row j-k-1 of the segment holds cont[j-1]
				pp.reads = append(pp.reads, read{part: 1 + side, pos: j - k - 1, a: cont[j], b: -1, side: side})
			}
		}
	default:
		return prepared{}, fmt.Errorf("unknown metric %v", m)
	}
	return pp, nil
}

// MaxGreedyTokens is upstream's cap on greedy answers.
const MaxGreedyTokens = 14

// GreedyAnswer decodes greedily after prompt (raw text, no template) for up to maxTokens tokens
// (MaxGreedyTokens if <= 0), stopping after the first token whose text contains a newline or
// before an end-of-generation token (see EOGTokenizer), and returns the decoded text of the
// generated tokens. It runs on a session of its own, closed before it returns.
func GreedyAnswer(b runtime.Backend, tok Tokenizer, prompt string, maxTokens int) (text string, err error) {
	if maxTokens <= 0 {
		maxTokens = MaxGreedyTokens
	}
	ids := tok.Encode(prompt, true)
	if len(ids) == 0 {
		return "", fmt.Errorf("bfs: greedy: prompt %q encodes to no tokens", prompt)
	}
	s, err := b.NewSession(len(ids) + maxTokens)
	if err != nil {
		return "", fmt.Errorf("bfs: greedy: %w", err)
	}
	defer func() {
		if cerr := s.Close(); cerr != nil && err == nil {
			text, err = "", fmt.Errorf("bfs: greedy: close session: %w", cerr)
		}
	}()
	eog, _ := tok.(EOGTokenizer)
	var out []int32
	next := ids
	for len(out) < maxTokens {
		logits, err := s.Forward(next, false)
		if err != nil {
			return "", fmt.Errorf("bfs: greedy: %w", err)
		}
		t := argmax(logits)
		if eog != nil && eog.IsEOG(t) {
			break
		}
		out = append(out, t)
		if strings.Contains(string(tok.Decode([]int32{t})), "\n") {
			break
		}
		next = []int32{t}
	}
	return string(tok.Decode(out)), nil
}

// argmax returns the first index of the largest value (NaN never wins).
func argmax(l []float32) int32 {
	best := 0
	for i, v := range l {
		if v > l[best] || (l[best] != l[best] && v == v) {
			best = i
		}
	}
	return int32(best)
}

// NormalizeAnswer removes all whitespace, lower-cases, deletes ( ) { } [ ] * and replaces √ by
// "sqrt" (docs/UPSTREAM.md §5.3).
func NormalizeAnswer(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f): // Python's str.split whitespace
		case strings.ContainsRune("(){}[]*", r):
		case r == '√':
			b.WriteString("sqrt")
		default:
			b.WriteString(strings.ToLower(string(r)))
		}
	}
	return b.String()
}

// AnswerMatches reports whether a generation matches an expected answer: after normalisation
// the generation starts with the answer and the rest is empty, starts with "+c", or starts with
// a character that is not one of 0-9 a-z ^ / * + - ( (docs/UPSTREAM.md §5.3).
func AnswerMatches(gen, expected string) bool {
	e := NormalizeAnswer(expected)
	g := NormalizeAnswer(gen)
	if e == "" || !strings.HasPrefix(g, e) {
		return false
	}
	rest := g[len(e):]
	if rest == "" || strings.HasPrefix(rest, "+c") {
		return true
	}
	r := []rune(rest)[0]
	return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || strings.ContainsRune("^/*+-(", r))
}

// Judge scores a greedy generation for p: correct when it matches the correct answer or an
// alternate, saidWrong when it matches the distractor.
func (p Probe) Judge(gen string) (correct, saidWrong bool) {
	correct = AnswerMatches(gen, p.Correct)
	for _, a := range p.Alternates {
		correct = correct || AnswerMatches(gen, a)
	}
	return correct, AnswerMatches(gen, p.Wrong)
}
