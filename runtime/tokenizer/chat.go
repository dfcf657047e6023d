package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bankai-metal/bankai-metal/internal/pyjson"
)

// The Qwen3 hybrid-thinking chat template (docs/FORMATS.md §9.4), rendered by hand. RenderChat
// produces what Jinja2 makes of the template in tokenizer_config.json (with Hugging Face's
// apply_chat_template settings: trim_blocks, lstrip_blocks, tojson = json.dumps with
// ensure_ascii=False), statement by statement:
//
//   - tools, if any, open a system turn listing them (after the first message's content when
//     that message is a system message); otherwise a leading system message is its own turn;
//   - the last "real" user query is the last user message not wrapping a <tool_response>;
//   - an assistant message's reasoning is ReasoningContent, else the text inside
//     <think>...</think> of its content (which is then cut to what follows </think>); reasoning
//     is kept only for assistant turns after the last user query (the final message always
//     gets a think block there, possibly empty);
//   - tool calls follow as <tool_call> JSON blocks; consecutive tool messages share one user turn
//     of <tool_response> blocks;
//   - the generation prompt opens an assistant turn, with an empty think block when thinking
//     is explicitly disabled.

// Message is one chat message. Role is "system", "user", "assistant" or "tool"; other roles
// are skipped, as by the template. An empty ReasoningContent counts as absent.
type Message struct {
	Role             string     `json:"role"`
	Content          string     `json:"content"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
}

// ToolCall is one function call made by the assistant.
type ToolCall struct {
	Name string `json:"name"`
	// Arguments is a JSON object (rendered like Python's json.dumps) or a JSON string whose
	// value is inserted verbatim, as the template does for string arguments.
	Arguments json.RawMessage `json:"arguments"`
}

// UnmarshalJSON accepts both {"name", "arguments"} and the OpenAI form
// {"type": "function", "function": {"name", "arguments"}}.
func (c *ToolCall) UnmarshalJSON(b []byte) error {
	type plain ToolCall
	var v struct {
		plain
		Function *plain `json:"function"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Function != nil {
		*c = ToolCall(*v.Function)
	} else {
		*c = ToolCall(v.plain)
	}
	return nil
}

// ChatOptions controls RenderChat.
type ChatOptions struct {
	AddGenerationPrompt bool
	// EnableThinking nil leaves the template variable undefined (thinking on); a pointer to
	// false appends an empty think block to the generation prompt.
	EnableThinking *bool
	Tools          []json.RawMessage // tool definitions, each rendered with tojson
}

const (
	toolsIntro = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
		"You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
	toolsOutro = "\n</tools>\n\nFor each function call, return a json object with function name and " +
		"arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n" +
		"{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
)

// RenderChat renders messages with the Qwen3 chat template. It fails where the template would
// raise: no messages, a tool definition or tool-call arguments that are not valid JSON, or a
// tool call without arguments.
func RenderChat(msgs []Message, opt ChatOptions) (string, error) {
	if len(msgs) == 0 {
		return "", errors.New("tokenizer: chat: no messages")
	}
	var b strings.Builder
	if len(opt.Tools) > 0 {
		b.WriteString("<|im_start|>system\n")
		if msgs[0].Role == "system" {
			b.WriteString(msgs[0].Content + "\n\n")
		}
		b.WriteString(toolsIntro)
		for i, tool := range opt.Tools {
			js, err := toJSON(tool)
			if err != nil {
				return "", fmt.Errorf("tokenizer: chat: tool %d: %w", i, err)
			}
			b.WriteString("\n" + js)
		}
		b.WriteString(toolsOutro)
	} else if msgs[0].Role == "system" {
		b.WriteString("<|im_start|>system\n" + msgs[0].Content + "<|im_end|>\n")
	}

	lastQuery := len(msgs) - 1
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if m.Role == "user" && !(strings.HasPrefix(m.Content, "<tool_response>") &&
			strings.HasSuffix(m.Content, "</tool_response>")) {
			lastQuery = i
			break
		}
	}

	for i, m := range msgs {
		switch {
		case m.Role == "user" || (m.Role == "system" && i > 0):
			b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
		case m.Role == "assistant":
			if err := renderAssistant(&b, m, i > lastQuery, i == len(msgs)-1); err != nil {
				return "", fmt.Errorf("tokenizer: chat: message %d: %w", i, err)
			}
		case m.Role == "tool":
			if i == 0 || msgs[i-1].Role != "tool" {
				b.WriteString("<|im_start|>user")
			}
			b.WriteString("\n<tool_response>\n" + m.Content + "\n</tool_response>")
			if i == len(msgs)-1 || msgs[i+1].Role != "tool" {
				b.WriteString("<|im_end|>\n")
			}
		}
	}
	if opt.AddGenerationPrompt {
		b.WriteString("<|im_start|>assistant\n")
		if opt.EnableThinking != nil && !*opt.EnableThinking {
			b.WriteString("<think>\n\n</think>\n\n")
		}
	}
	return b.String(), nil
}

// renderAssistant writes one assistant turn. afterQuery: the turn follows the last user query;
// last: it is the final message.
func renderAssistant(b *strings.Builder, m Message, afterQuery, last bool) error {
	content, reasoning := m.Content, m.ReasoningContent
	if reasoning == "" {
		if j := strings.LastIndex(content, "</think>"); j >= 0 {
			before := content[:strings.Index(content, "</think>")]
			before = strings.TrimRight(before, "\n")
			if k := strings.LastIndex(before, "<think>"); k >= 0 {
				before = before[k+len("<think>"):]
			}
			reasoning = strings.TrimLeft(before, "\n")
			content = strings.TrimLeft(content[j+len("</think>"):], "\n")
		}
	}
	if afterQuery && (last || reasoning != "") {
		b.WriteString("<|im_start|>" + m.Role + "\n<think>\n" + strings.Trim(reasoning, "\n") +
			"\n</think>\n\n" + strings.TrimLeft(content, "\n"))
	} else {
		b.WriteString("<|im_start|>" + m.Role + "\n" + content)
	}
	for i, c := range m.ToolCalls {
		if i > 0 || content != "" {
			b.WriteString("\n")
		}
		b.WriteString("<tool_call>\n{\"name\": \"" + c.Name + "\", \"arguments\": ")
		if len(c.Arguments) == 0 {
			return fmt.Errorf("tool call %d (%q) has no arguments", i, c.Name)
		}
		var s string
		if err := json.Unmarshal(c.Arguments, &s); err == nil {
			b.WriteString(s)
		} else {
			js, err := toJSON(c.Arguments)
			if err != nil {
				return fmt.Errorf("tool call %d (%q) arguments: %w", i, c.Name, err)
			}
			b.WriteString(js)
		}
		b.WriteString("}\n</tool_call>")
	}
	b.WriteString("<|im_end|>\n")
	return nil
}

// IsQwen3Template reports whether a chat template is the Qwen3 hybrid-thinking one that
// RenderChat reproduces, by the markers that set it apart from other ChatML templates.
func IsQwen3Template(tmpl string) bool {
	for _, marker := range []string{
		"<|im_start|>", "<|im_end|>", "enable_thinking", "<think>\\n\\n</think>\\n\\n",
		"reasoning_content", "last_query_index", "<tool_response>", "<tool_call>",
	} {
		if !strings.Contains(tmpl, marker) {
			return false
		}
	}
	return true
}

// toJSON is the template's tojson filter applied to the value json.loads makes of raw: Python's
// json.dumps(value, ensure_ascii=False), with object keys in input order (a repeated key keeps
// its first position and its last value), integers as written (-0 becomes 0) and other numbers
// in Python's float repr (1e2 -> 100.0, 1e16 -> 1e+16; overflow -> Infinity).
func toJSON(raw []byte) (string, error) {
	v, err := pyjson.Decode(raw)
	if err != nil {
		return "", err
	}
	out, err := pyjson.Marshal(v, pyjson.Options{PythonNumbers: true, AllowNaN: true})
	return string(out), err
}
