package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

// StopReason says why Generate stopped.
type StopReason string

// The reasons Generate stops.
const (
	StopEOG      StopReason = "eog"      // the model produced an end-of-generation token
	StopLength   StopReason = "length"   // MaxTokens tokens were generated
	StopContext  StopReason = "context"  // the session's context limit was reached
	StopCanceled StopReason = "canceled" // the context was canceled
)

// PromptChunk is how many prompt tokens Generate feeds per forward pass: it bounds the memory
// of the activations and lets a cancellation take effect between chunks.
const PromptChunk = 512

// GenerateOptions controls Generate.
type GenerateOptions struct {
	MaxTokens int      // stop after this many generated tokens; 0 (or less): no limit
	Sampler   *Sampler // nil: greedy
	// OnToken, if set, is called with every sampled token, the end-of-generation one included,
	// before its text is emitted.
	OnToken func(id int32)
}

// GenerateStats describes one Generate call.
type GenerateStats struct {
	PromptTokens int           // prompt tokens fed to the session by this call
	CachedTokens int           // prompt tokens the session already held (reused, not fed)
	PromptTime   time.Duration // time spent feeding the prompt
	GenTokens    int           // generated tokens, the end-of-generation one not counted
	GenTime      time.Duration // time from the first sampled token to the end
	Tokens       []int32       // the generated tokens, without the end-of-generation one
	Stop         StopReason
}

// PromptTPS is the prompt-processing speed in tokens per second (0 if nothing was fed).
func (s GenerateStats) PromptTPS() float64 { return perSecond(s.PromptTokens, s.PromptTime) }

// GenTPS is the generation speed in tokens per second (0 if nothing was generated).
func (s GenerateStats) GenTPS() float64 { return perSecond(s.GenTokens, s.GenTime) }

func perSecond(n int, d time.Duration) float64 {
	if n == 0 || d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Generate continues prompt in session s, streaming the decoded text of each new token to
// emit (never a partial UTF-8 character; control tokens such as <|im_start|> are not shown).
//
// prompt is the whole context: the session must already hold a prefix of it, its first
// s.Len() tokens (Generate cannot check that; a caller reusing a session truncates it to what
// it shares with the new prompt), and only the rest is fed. If the session holds all of it,
// the last token is fed again to get its logits. After the call the session holds the prompt
// and every generated token but the last one sampled.
//
// Generation stops at an end-of-generation token (not emitted), after opt.MaxTokens tokens, at
// the session's context limit (StopContext, no error) or when ctx is canceled (StopCanceled,
// no error). A prompt longer than the context limit fails with an error wrapping
// ErrContextFull. An error from emit stops generation and is returned.
func Generate(ctx context.Context, s Session, tok *tokenizer.Tokenizer, prompt []int32, opt GenerateOptions,
	emit func(text string) error) (st GenerateStats, err error) {
	if len(prompt) == 0 {
		return st, errors.New("runtime: generate: empty prompt")
	}
	if len(prompt) > s.Max() {
		st.Stop = StopContext
		return st, fmt.Errorf("runtime: generate: prompt of %d tokens does not fit the context of %d: %w",
			len(prompt), s.Max(), ErrContextFull)
	}
	if s.Len() >= len(prompt) {
		s.Truncate(len(prompt) - 1)
	}
	st.CachedTokens = s.Len()

	// Feed the new part of the prompt in chunks; keep the last chunk's logits.
	start := time.Now()
	var logits []float32 // (Vocab)
	for s.Len() < len(prompt) {
		if ctx.Err() != nil {
			st.Stop = StopCanceled
			st.PromptTime = time.Since(start)
			return st, nil
		}
		chunk := prompt[s.Len():min(len(prompt), s.Len()+PromptChunk)]
		if logits, err = s.Forward(chunk, false); err != nil {
			return st, forwardError("prompt", err)
		}
		st.PromptTokens += len(chunk)
	}
	st.PromptTime = time.Since(start)

	history := append(make([]int32, 0, len(prompt)+max(opt.MaxTokens, 0)), prompt...) // (tokens so far,)
	dec := tok.NewDecoder()
	start = time.Now()
	defer func() { st.GenTime = time.Since(start) }()
	for {
		if ctx.Err() != nil {
			st.Stop = StopCanceled
			break
		}
		// Every backend's logits are checked here, so NaN never becomes a token (id 0, a NUL byte).
		if err = CheckLogits(logits, len(logits), s.Len()-1); err != nil {
			return st, err
		}
		var t int32
		if opt.Sampler != nil {
			t = opt.Sampler.Sample(logits, history)
		} else {
			t = argmax(logits)
		}
		if opt.OnToken != nil {
			opt.OnToken(t)
		}
		if tok.IsEOG(t) {
			st.Stop = StopEOG
			break
		}
		history = append(history, t)
		st.Tokens = append(st.Tokens, t)
		st.GenTokens++
		if !tok.IsControl(t) {
			if text := dec.Add(t); text != "" {
				if err = emit(text); err != nil {
					return st, err
				}
			}
		}
		if opt.MaxTokens > 0 && st.GenTokens >= opt.MaxTokens {
			st.Stop = StopLength
			break
		}
		if s.Len() >= s.Max() {
			st.Stop = StopContext
			break
		}
		if logits, err = s.Forward([]int32{t}, false); err != nil {
			return st, forwardError(fmt.Sprintf("token %d", st.GenTokens), err)
		}
	}
	if text := dec.Flush(); text != "" {
		if err = emit(text); err != nil {
			return st, err
		}
	}
	return st, nil
}

// forwardError wraps an error of Session.Forward; a *LogitsError, which already says what
// broke and where, is returned as it is.
func forwardError(what string, err error) error {
	var le *LogitsError
	if errors.As(err, &le) {
		return err
	}
	return fmt.Errorf("runtime: generate: %s: %w", what, err)
}

// argmax returns the index of the largest value, the lowest among ties (NaN never wins).
func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] || x[best] != x[best] {
			best = i
		}
	}
	return int32(best)
}
