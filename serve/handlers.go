package serve

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

// testHookToken, when set by a test, runs at every sampled token.
var testHookToken func()

// errStopString is what the stop filter returns to end a generation at a stop sequence.
var errStopString = errors.New("serve: stop sequence")

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if e := decodeBody(w, r, s.cfg.MaxBody, &req); e != nil {
		writeError(w, e)
		return
	}
	msgs, e := req.messages()
	if e != nil {
		writeError(w, e)
		return
	}
	think := false // as generate and chat without --think: the template's empty think block
	if k := req.ChatTemplateKwargs; k != nil && k.EnableThinking != nil {
		think = *k.EnableThinking
	}
	text, err := tokenizer.RenderChat(msgs, tokenizer.ChatOptions{AddGenerationPrompt: true, EnableThinking: &think})
	if err != nil {
		writeError(w, errBadRequest("invalid_value", "messages", "%v", err))
		return
	}
	s.generate(w, r, &req.samplingFields, s.encode(text), true)
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if e := decodeBody(w, r, s.cfg.MaxBody, &req); e != nil {
		writeError(w, e)
		return
	}
	switch {
	case req.Echo:
		writeError(w, errBadRequest("invalid_value", "echo", "echo is not supported"))
		return
	case req.Suffix != nil && *req.Suffix != "":
		writeError(w, errBadRequest("invalid_value", "suffix", "suffix is not supported"))
		return
	}
	var prompt []int32
	switch p := req.Prompt; {
	case p.text != nil:
		prompt = s.encode(*p.text) // as generate --raw: special tokens recognised
	case p.tokens != nil:
		for i, id := range p.tokens {
			if id < 0 || int(id) >= s.m.Vocab {
				writeError(w, errBadRequest("invalid_value", "prompt", "prompt token %d: id %d out of range [0,%d)", i, id, s.m.Vocab))
				return
			}
		}
		prompt = p.tokens
	default:
		writeError(w, errBadRequest("invalid_value", "prompt", "prompt is required"))
		return
	}
	s.generate(w, r, &req.samplingFields, prompt, false)
}

// encode tokenizes text with special tokens recognised, adding BOS if the model asks for it
// (what generate does).
func (s *Server) encode(text string) []int32 {
	tok := s.cfg.Tokenizer
	ids := tok.Encode(text, true)
	if tok.AddBOS() && tok.BOS() >= 0 {
		ids = append([]int32{tok.BOS()}, ids...)
	}
	return ids
}

// generate runs one request through the scheduler and writes the response, streamed or not.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, f *samplingFields, prompt []int32, chat bool) {
	st, aerr := s.cat.resolve(f.Model, f.Patches)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	cfg, maxTokens, aerr := f.samplerConfig(randomSeed)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	switch {
	case len(prompt) == 0:
		writeError(w, errBadRequest("invalid_value", "prompt", "empty prompt"))
		return
	case len(prompt) > s.cfg.Context:
		writeError(w, errBadRequest("context_length_exceeded", "messages",
			"the prompt is %d tokens, more than the context of %d tokens", len(prompt), s.cfg.Context))
		return
	}
	ctx, cancel := context.WithCancel(r.Context()) // a client that goes away stops its generation
	defer cancel()
	defer context.AfterFunc(s.hard, cancel)()

	out := &responder{w: w, rc: http.NewResponseController(w), chat: chat, stream: f.Stream,
		id: newID(map[bool]string{true: "chatcmpl-", false: "cmpl-"}[chat]), created: time.Now().Unix(),
		model: s.cat.modelName(st), fingerprint: s.m.Fingerprint()}
	filter := &stopFilter{stops: f.Stop, out: out.text}
	j := &job{ctx: ctx, stack: st, prompt: prompt, emit: filter.add,
		opt: runtime.GenerateOptions{MaxTokens: maxTokens, Sampler: runtime.NewSampler(cfg)}}
	if testHookToken != nil {
		j.opt.OnToken = func(int32) { testHookToken() }
	}
	t0 := time.Now()
	res := s.sched.submit(j)
	finish := "stop"
	switch {
	case errors.Is(res.err, errStopString), res.err == nil && res.st.Stop == runtime.StopEOG:
	case res.err == nil && (res.st.Stop == runtime.StopLength || res.st.Stop == runtime.StopContext):
		finish = "length"
	case res.err == nil && res.st.Stop == runtime.StopCanceled:
		s.log.Info("generation canceled", "model", out.model, "tokens", res.st.GenTokens)
		if s.hard.Err() != nil && r.Context().Err() == nil {
			out.fail(&apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "shutting_down", Message: "the server is shutting down"})
		}
		return
	case errors.Is(res.err, errQueueFull):
		out.fail(&apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "queue_full",
			Message: "the server is busy: every slot and queue place is taken; retry later"})
		return
	case errors.Is(res.err, errClosed):
		out.fail(&apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "shutting_down", Message: "the server is shutting down"})
		return
	case errors.Is(res.err, runtime.ErrContextFull):
		out.fail(errBadRequest("context_length_exceeded", "messages", "%v", res.err))
		return
	case out.writeErr != nil:
		return // the client is gone
	default:
		s.log.Error("generation failed", "model", out.model, "err", res.err)
		out.fail(&apiError{Status: http.StatusInternalServerError, Type: "server_error", Code: "generation_failed", Message: res.err.Error()})
		return
	}
	if err := filter.flush(); err != nil {
		return
	}
	u := &usage{PromptTokens: len(prompt), CompletionTokens: res.st.GenTokens, TotalTokens: len(prompt) + res.st.GenTokens}
	s.log.Info("generation", "model", out.model, "prompt_tokens", u.PromptTokens, "cached_tokens", res.st.CachedTokens,
		"completion_tokens", u.CompletionTokens, "finish", finish, "time", time.Since(t0))
	includeUsage := f.StreamOptions != nil && f.StreamOptions.IncludeUsage
	out.finish(finish, u, includeUsage)
}

// stopFilter passes generated text on, holding back a tail that may be the start of a stop
// sequence, and ends the generation (errStopString) at the first stop sequence, which is not
// emitted.
type stopFilter struct {
	stops   []string
	held    string
	stopped bool
	out     func(string) error
}

func (f *stopFilter) add(text string) error {
	if len(f.stops) == 0 {
		return f.out(text)
	}
	buf := f.held + text
	cut := -1
	for _, s := range f.stops {
		if i := strings.Index(buf, s); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		f.held, f.stopped = "", true
		if err := f.emit(buf[:cut]); err != nil {
			return err
		}
		return errStopString
	}
	keep := 0 // the longest tail of buf that begins a stop sequence
	for _, s := range f.stops {
		for n := min(len(s)-1, len(buf)); n > keep; n-- {
			if strings.HasSuffix(buf, s[:n]) {
				keep = n
				break
			}
		}
	}
	f.held = buf[len(buf)-keep:]
	return f.emit(buf[:len(buf)-keep])
}

func (f *stopFilter) emit(s string) error {
	if s == "" {
		return nil
	}
	return f.out(s)
}

// flush emits the held-back tail at the end of a generation that did not stop at a stop
// sequence.
func (f *stopFilter) flush() error {
	if f.stopped {
		return nil
	}
	h := f.held
	f.held = ""
	return f.emit(h)
}

// responder writes one completion: collected for a plain response, or as server-sent events.
type responder struct {
	w                      http.ResponseWriter
	rc                     *http.ResponseController
	chat, stream           bool
	id, model, fingerprint string
	created                int64
	collected              strings.Builder
	started                bool // stream: headers and the first chunk are out
	writeErr               error
}

// text takes generated text (from the scheduler's goroutine while the handler waits).
func (o *responder) text(s string) error {
	if !o.stream {
		o.collected.WriteString(s)
		return nil
	}
	o.start()
	return o.send(o.chunk(&s, nil, nil))
}

// start sends the stream's headers and, for chat, the assistant role chunk.
func (o *responder) start() {
	if o.started {
		return
	}
	o.started = true
	h := o.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	o.w.WriteHeader(http.StatusOK)
	if o.chat {
		empty := ""
		o.send(o.chunkRole(&empty))
	}
}

func (o *responder) chunkRole(content *string) any {
	c := o.chunk(content, nil, nil).(*chatCompletion)
	c.Choices[0].Delta.Role = "assistant"
	return c
}

// chunk is one streamed event: text, a finish reason, or (with no choices) the usage.
func (o *responder) chunk(text *string, finish *string, u *usage) any {
	object := "chat.completion.chunk"
	if !o.chat {
		object = "text_completion"
	}
	c := &chatCompletion{ID: o.id, Object: object, Created: o.created, Model: o.model, SystemFingerprint: o.fingerprint, Usage: u}
	if u != nil {
		c.Choices = []chatChoice{}
		return c
	}
	ch := chatChoice{FinishReason: finish}
	if o.chat {
		ch.Delta = &chatOut{Content: text}
	} else {
		if text == nil {
			empty := ""
			text = &empty
		}
		ch.Text = text
	}
	c.Choices = []chatChoice{ch}
	return c
}

// send writes one server-sent event.
func (o *responder) send(v any) error {
	if o.writeErr != nil {
		return o.writeErr
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	o.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := o.w.Write(append(append([]byte("data: "), b...), '\n', '\n')); err != nil {
		o.writeErr = err
		return err
	}
	if err := o.rc.Flush(); err != nil {
		o.writeErr = err
	}
	return o.writeErr
}

// finish ends the response: the finish reason and usage, then [DONE] when streaming.
func (o *responder) finish(reason string, u *usage, includeUsage bool) {
	if !o.stream {
		text := o.collected.String()
		c := &chatCompletion{ID: o.id, Created: o.created, Model: o.model, SystemFingerprint: o.fingerprint, Usage: u}
		ch := chatChoice{FinishReason: &reason}
		if o.chat {
			c.Object = "chat.completion"
			ch.Message = &chatOut{Role: "assistant", Content: &text}
		} else {
			c.Object = "text_completion"
			ch.Text = &text
		}
		c.Choices = []chatChoice{ch}
		writeJSON(o.w, http.StatusOK, c)
		return
	}
	o.start()
	if o.send(o.chunk(nil, &reason, nil)) != nil {
		return
	}
	if includeUsage && o.send(o.chunk(nil, nil, u)) != nil {
		return
	}
	if o.writeErr == nil {
		o.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		o.w.Write([]byte("data: [DONE]\n\n"))
		o.rc.Flush()
	}
}

// fail reports an error: as a JSON error response, or as an error event when the stream has
// started.
func (o *responder) fail(e *apiError) {
	if !o.started {
		writeError(o.w, e)
		return
	}
	if o.send(map[string]any{"error": e}) == nil {
		o.w.Write([]byte("data: [DONE]\n\n"))
		o.rc.Flush()
	}
}
