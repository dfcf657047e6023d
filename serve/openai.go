package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

// The request and response bodies of OpenAI's chat completions and (legacy) completions APIs,
// with the fields this server reads. Fields it does not know are ignored, as OpenAI clients
// send many optional ones; a known field of the wrong JSON type is a 400.

// samplingFields are the request fields shared by both endpoints.
type samplingFields struct {
	Model               string     `json:"model"`
	Patches             []string   `json:"patches"` // extension: patches stacked on the model's
	MaxTokens           *int       `json:"max_tokens"`
	MaxCompletionTokens *int       `json:"max_completion_tokens"`
	Temperature         *float64   `json:"temperature"`
	TopP                *float64   `json:"top_p"`
	TopK                *int       `json:"top_k"`              // extension (vLLM, llama.cpp)
	MinP                *float64   `json:"min_p"`              // extension
	RepetitionPenalty   *float64   `json:"repetition_penalty"` // extension
	Seed                *uint64    `json:"seed"`
	Stop                stopList   `json:"stop"`
	N                   *int       `json:"n"`
	PresencePenalty     *float64   `json:"presence_penalty"`
	FrequencyPenalty    *float64   `json:"frequency_penalty"`
	Logprobs            any        `json:"logprobs"`
	Stream              bool       `json:"stream"`
	StreamOptions       *streamOpt `json:"stream_options"`
}

type streamOpt struct {
	IncludeUsage bool `json:"include_usage"`
}

// chatRequest is the body of POST /v1/chat/completions.
type chatRequest struct {
	samplingFields
	Messages           []chatMessage `json:"messages"`
	ChatTemplateKwargs *struct {
		EnableThinking *bool `json:"enable_thinking"`
	} `json:"chat_template_kwargs"`
}

type chatMessage struct {
	Role             string      `json:"role"`
	Content          textContent `json:"content"`
	ReasoningContent string      `json:"reasoning_content"`
}

// textContent is a message's content: a string, null, or an array of {"type": "text",
// "text": ...} parts, concatenated.
type textContent string

func (c *textContent) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*c = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = textContent(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return fieldError("content", "a string or an array of text parts")
	}
	var out string
	for _, p := range parts {
		if p.Type != "text" {
			return fieldError("content", fmt.Sprintf("text parts only (got a %q part)", p.Type))
		}
		out += p.Text
	}
	*c = textContent(out)
	return nil
}

// stopList is "stop": a string or an array of strings.
type stopList []string

func (s *stopList) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fieldError("stop", "a string or an array of strings")
	}
	*s = many
	return nil
}

// completionRequest is the body of POST /v1/completions.
type completionRequest struct {
	samplingFields
	Prompt promptField `json:"prompt"`
	Echo   bool        `json:"echo"`
	Suffix *string     `json:"suffix"`
}

// promptField is a completion prompt: a string, an array of one string, or an array of token
// ids (one prompt per request).
type promptField struct {
	text   *string
	tokens []int32
}

func (p *promptField) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		p.text = &s
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err == nil {
		if len(ss) != 1 {
			return fieldError("prompt", "one prompt per request")
		}
		p.text = &ss[0]
		return nil
	}
	var ids []int32
	if err := json.Unmarshal(b, &ids); err == nil && len(ids) > 0 {
		p.tokens = ids
		return nil
	}
	return fieldError("prompt", "a string, an array of one string, or an array of token ids")
}

// typeError is a known field holding a value of the wrong shape.
type typeError struct{ field, want string }

func (e *typeError) Error() string { return fmt.Sprintf("field %q: want %s", e.field, e.want) }

func fieldError(field, want string) error { return &typeError{field, want} }

// decodeBody reads a JSON request body of at most limit bytes into v.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) *apiError {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
			Message: fmt.Sprintf("request body larger than the limit of %d bytes", tooBig.Limit)}
	case err != nil:
		return errBadRequest("invalid_request_body", "", "reading the request body: %v", err)
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		var te *typeError
		var ute *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return errBadRequest("invalid_type", te.field, "%v", te)
		case errors.As(err, &ute):
			return errBadRequest("invalid_type", ute.Field, "field %q: a JSON %s is not a valid %s", ute.Field, ute.Value, goTypeName(ute.Type.String()))
		case errors.As(err, &se):
			return errBadRequest("invalid_json", "", "malformed JSON at byte %d: %v", se.Offset, err)
		}
		return errBadRequest("invalid_json", "", "malformed JSON: %v", err)
	}
	return nil
}

// goTypeName says what a Go type means in JSON terms.
func goTypeName(t string) string {
	switch t {
	case "int", "*int", "int32", "uint64", "*uint64":
		return "integer"
	case "float64", "*float64":
		return "number"
	case "string":
		return "string"
	case "bool":
		return "boolean"
	}
	return t
}

// samplerConfig builds the sampler and limits of a request: Bonsai's defaults for absent
// fields (runtime.DefaultSampler), a random seed when none is given.
func (f *samplingFields) samplerConfig(randomSeed func() uint64) (runtime.SamplerConfig, int, *apiError) {
	cfg := runtime.DefaultSampler()
	cfg.Seed = randomSeed()
	bad := func(field, format string, args ...any) (runtime.SamplerConfig, int, *apiError) {
		return cfg, 0, errBadRequest("invalid_value", field, format, args...)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if v := f.Temperature; v != nil {
		if !finite(*v) || *v < 0 {
			return bad("temperature", "temperature %g: want 0 (greedy) or more", *v)
		}
		cfg.Temperature = float32(*v)
	}
	if v := f.TopP; v != nil {
		if !finite(*v) || *v < 0 || *v > 1 {
			return bad("top_p", "top_p %g: want a value in [0, 1]", *v)
		}
		cfg.TopP = float32(*v)
	}
	if v := f.TopK; v != nil {
		if *v < 0 {
			return bad("top_k", "top_k %d: want 0 (off) or more", *v)
		}
		cfg.TopK = *v
	}
	if v := f.MinP; v != nil {
		if !finite(*v) || *v < 0 || *v > 1 {
			return bad("min_p", "min_p %g: want a value in [0, 1]", *v)
		}
		cfg.MinP = float32(*v)
	}
	if v := f.RepetitionPenalty; v != nil {
		if !finite(*v) || *v <= 0 {
			return bad("repetition_penalty", "repetition_penalty %g: want a positive number (1 = off)", *v)
		}
		cfg.RepeatPenalty = float32(*v)
	}
	if f.Seed != nil {
		cfg.Seed = *f.Seed
	}
	for _, p := range []struct {
		name string
		v    *float64
	}{{"presence_penalty", f.PresencePenalty}, {"frequency_penalty", f.FrequencyPenalty}} {
		if p.v != nil && *p.v != 0 {
			return bad(p.name, "%s is not supported (use repetition_penalty)", p.name)
		}
	}
	if f.N != nil && *f.N != 1 {
		return bad("n", "n %d: one choice per request", *f.N)
	}
	if f.Logprobs != nil && f.Logprobs != false {
		return bad("logprobs", "logprobs are not supported")
	}
	if len(f.Stop) > 4 {
		return bad("stop", "at most 4 stop sequences")
	}
	for _, s := range f.Stop {
		if s == "" {
			return bad("stop", "empty stop sequence")
		}
	}
	maxTokens := 0 // until the end of the turn or the context limit, as generate does
	for _, p := range []struct {
		name string
		v    *int
	}{{"max_tokens", f.MaxTokens}, {"max_completion_tokens", f.MaxCompletionTokens}} {
		if p.v != nil {
			if *p.v < 1 {
				return bad(p.name, "%s %d: want 1 or more", p.name, *p.v)
			}
			maxTokens = *p.v
		}
	}
	return cfg, maxTokens, nil
}

// messages converts chat messages for the Qwen3 template ("developer" is a system message).
func (r *chatRequest) messages() ([]tokenizer.Message, *apiError) {
	if len(r.Messages) == 0 {
		return nil, errBadRequest("invalid_value", "messages", "messages: want at least one message")
	}
	out := make([]tokenizer.Message, len(r.Messages))
	for i, m := range r.Messages {
		role := m.Role
		switch role {
		case "developer":
			role = "system"
		case "system", "user", "assistant", "tool":
		default:
			return nil, errBadRequest("invalid_value", fmt.Sprintf("messages[%d].role", i), "messages[%d]: unknown role %q", i, m.Role)
		}
		out[i] = tokenizer.Message{Role: role, Content: string(m.Content), ReasoningContent: m.ReasoningContent}
	}
	return out, nil
}

// usage is the token accounting of a response.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type chatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint,omitempty"`
	Choices           []chatChoice `json:"choices"`
	Usage             *usage       `json:"usage,omitempty"`
}

type chatChoice struct {
	Index        int       `json:"index"`
	Message      *chatOut  `json:"message,omitempty"`
	Delta        *chatOut  `json:"delta,omitempty"`
	Text         *string   `json:"text,omitempty"` // completions
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type chatOut struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// modelList is GET /v1/models.
type modelList struct {
	Object string      `json:"object"`
	Data   []modelInfo `json:"data"`
}

type modelInfo struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Extensions: the patch behind a base+patch entry, and why it cannot be used.
	Patch *patchInfo `json:"patch,omitempty"`
	Ready bool       `json:"ready"`
	Error string     `json:"error,omitempty"`
}

type patchInfo struct {
	Name    string `json:"name"`
	File    string `json:"file"`
	Flips   int    `json:"flips"`
	ID      string `json:"id,omitempty"`
	Warning string `json:"warning,omitempty"`
}
