package tokenizer

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
)

// chatCase is one entry of tokenizer/chat-template-cases.json.
type chatCase struct {
	Name                string            `json:"name"`
	Messages            []Message         `json:"messages"`
	Tools               []json.RawMessage `json:"tools"`
	AddGenerationPrompt bool              `json:"add_generation_prompt"`
	EnableThinking      *bool             `json:"enable_thinking"`
	Rendered            string            `json:"rendered"`
	LlamaParseSpecial   []int32           `json:"llama_parse_special"`
	HFJS                []int32           `json:"hf_js"`
}

// TestChatTemplateCases renders the 6 reference conversations byte for byte (Jinja2 and
// llama.cpp's Jinja agree on them) and encodes the result with special parsing on.
func TestChatTemplateCases(t *testing.T) {
	var f struct {
		Cases []chatCase `json:"cases"`
	}
	testenv.ReadJSON(t, testenv.Shared(t, "tokenizer", "chat-template-cases.json"), &f)
	require.Len(t, f.Cases, 6)
	for _, c := range f.Cases {
		got, err := RenderChat(c.Messages, ChatOptions{
			AddGenerationPrompt: c.AddGenerationPrompt,
			EnableThinking:      c.EnableThinking,
			Tools:               c.Tools,
		})
		require.NoError(t, err, c.Name)
		require.Equal(t, c.Rendered, got, c.Name)
	}
	bothSources(t, func(t *testing.T, tok *Tokenizer) {
		require.True(t, IsQwen3Template(tok.ChatTemplate()))
		for _, c := range f.Cases {
			require.Equal(t, c.LlamaParseSpecial, tok.Encode(c.Rendered, true), c.Name)
			require.Equal(t, c.HFJS, tok.Encode(c.Rendered, true), c.Name)
		}
	})
}

// TestChatTemplateBranches exercises template branches the fixtures do not. The expected strings
// were rendered by Python Jinja2 3.1.6 from tokenizer_config.json's chat_template in the same
// environment as the fixtures (see tokenizer/README.md).
func TestChatTemplateBranches(t *testing.T) {
	no := false
	for i, c := range []struct {
		msgs []Message
		opt  ChatOptions
		want string
	}{{
		// Tools after a system message's content; string arguments verbatim, object arguments
		// through tojson (repeated key, float repr, -0, escapes); consecutive tool results in one
		// user turn; a later system message as its own turn.
		msgs: []Message{
			{Role: "system", Content: "Be terse."},
			{Role: "user", Content: "q"},
			{Role: "assistant", Content: "Calling.", ToolCalls: []ToolCall{
				{Name: "a", Arguments: json.RawMessage(`"{\"x\":1}"`)},
				{Name: "b", Arguments: json.RawMessage(`{"y": 1, "z": [1.5, 1e2, -0, "é\n\u0001"], "y": true}`)},
			}},
			{Role: "tool", Content: "r1"},
			{Role: "tool", Content: "r2"},
			{Role: "system", Content: "later"},
		},
		opt:  ChatOptions{AddGenerationPrompt: true, EnableThinking: &no, Tools: []json.RawMessage{json.RawMessage(`{"k":"v"}`)}},
		want: "<|im_start|>system\nBe terse.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"k\": \"v\"}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\nCalling.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\":1}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"y\": true, \"z\": [1.5, 100.0, 0, \"é\\n\\u0001\"]}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n<|im_start|>system\nlater<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
	}, {
		// Explicit reasoning after the last query wins over the content's think block; a user
		// message that only wraps a tool response is not a query; the final assistant message
		// always gets a think block.
		msgs: []Message{
			{Role: "user", Content: "q"},
			{Role: "assistant", Content: "<think>\nignored\n</think>\n\nA", ReasoningContent: "\nR\n"},
			{Role: "user", Content: "<tool_response>\nx\n</tool_response>"},
			{Role: "assistant", Content: "B"},
		},
		want: "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nR\n</think>\n\n<think>\nignored\n</think>\n\nA<|im_end|>\n<|im_start|>user\n<tool_response>\nx\n</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nB<|im_end|>\n",
	}, {
		// Reasoning stripped before the last query; nested/unbalanced think tags; empty reasoning
		// not last -> no think block; unknown roles skipped; a trailing tool message.
		msgs: []Message{
			{Role: "user", Content: "q1"},
			{Role: "assistant", Content: "\n\n<think>a<think>b\n</think>c</think>\n\nC"},
			{Role: "user", Content: "q2"},
			{Role: "assistant", Content: "x</think>\n\nD"},
			{Role: "assistant", Content: "<think>\n\n</think>E"},
			{Role: "weird", Content: "W"},
			{Role: "tool", Content: "T"},
		},
		opt:  ChatOptions{AddGenerationPrompt: true},
		want: "<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\nC<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n<think>\nx\n</think>\n\nD<|im_end|>\n<|im_start|>assistant\nE<|im_end|>\n<|im_start|>user\n<tool_response>\nT\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
	}} {
		got, err := RenderChat(c.msgs, c.opt)
		require.NoError(t, err, "case %d", i)
		require.Equal(t, c.want, got, "case %d", i)
	}

	_, err := RenderChat(nil, ChatOptions{})
	require.Error(t, err)
	_, err = RenderChat([]Message{{Role: "user"}}, ChatOptions{Tools: []json.RawMessage{json.RawMessage(`{`)}})
	require.Error(t, err)
	_, err = RenderChat([]Message{{Role: "assistant", ToolCalls: []ToolCall{{Name: "f"}}}}, ChatOptions{})
	require.Error(t, err)
	_, err = RenderChat([]Message{{Role: "user"}}, ChatOptions{Tools: []json.RawMessage{json.RawMessage(`{} x`)}})
	require.Error(t, err)
}

// TestIsQwen3Template rejects a plain ChatML template without the hybrid-thinking parts.
func TestIsQwen3Template(t *testing.T) {
	require.False(t, IsQwen3Template(""))
	require.False(t, IsQwen3Template("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "+
		"message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"))
}
