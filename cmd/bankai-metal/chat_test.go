package main

import (
	"bufio"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/term"

	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

var (
	reusedStat = regexp.MustCompile(`prompt: (\d+) tokens in .* (\d+) reused from the cache`)
	turnsStat  = regexp.MustCompile(`turns: (\d+)`)
)

// TestChatPipedOracle drives a two-turn chat through piped stdin on the qwen3vocab oracle model:
// the first answer is llama.cpp's greedy answer to "What is 2 + 2?" (Qwen3 template, thinking
// off) as far as the oracle fixes it, and the second turn feeds only its new tokens.
func TestChatPipedOracle(t *testing.T) {
	o := loadOracle(t, "qwen3vocab-q1.gguf", "qwen3vocab-q1.greedy.json", 0.25)
	run := o.greedy.Runs[0]
	require.Equal(t, "chat", run.Name)
	k := fixedSteps(run.Margins, o.margin)
	require.Greater(t, k, 1)

	in := "What is 2 + 2?\n\nAnd what is 3 + 3?\n/stats\n/bye\nnever read\n"
	out, errOut := mustRun(t, in, "chat", "-m", o.path, "--temp", "0", "-n", strconv.Itoa(k))
	require.NotContains(t, errOut, "warning")
	lines := strings.Split(out, "\n")
	require.Equal(t, streamText(o.tok, run.Generated[:k]), lines[0], "first answer")
	require.NotEmpty(t, lines[1], "second answer")
	stats := strings.Join(lines[2:], "\n")
	turns := turnsStat.FindAllStringSubmatch(stats, -1)
	require.Len(t, turns, 1)
	require.Equal(t, "2", turns[0][1])
	m := reusedStat.FindStringSubmatch(stats)
	require.NotNil(t, m, stats)
	// The cache held the first prompt and the first k-1 answer tokens (the last one sampled is
	// never fed); the second turn fed the rest.
	require.Equal(t, strconv.Itoa(len(run.Prompt)+k-1), m[2], "tokens reused on turn 2")
	fed, _ := strconv.Atoi(m[1])
	require.Greater(t, fed, len("And what is 3 + 3?")/8, "the new turn is fed")
	require.NotContains(t, out, "never")
}

// synthGGUF writes the built-in tiny model to a temporary GGUF file.
func synthGGUF(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, synth.Tiny().WriteGGUF(p))
	return p
}

func TestChatCommands(t *testing.T) {
	model := synthGGUF(t)
	in := strings.Join([]string{
		"/set temp 0.7", "/set max tokens 3", "/set top-k 7", "/set think on", "/set system Be brief.",
		"/set", "/set bogus 1", "/set top-p 2", "/set temp", "/frobnicate", "/?",
		"hello", "/stats", "/clear", "/stats", "/exit",
	}, "\n")
	out, errOut := mustRun(t, in, "chat", "-m", model, "--seed", "3")
	require.Equal(t, 1, strings.Count(errOut, "warning"), "the synthetic template is not Qwen3's")

	// /set changes and shows the settings (confirmations go to stderr when piped)
	for _, want := range []string{"temp = 0.7", "max-tokens = 3", "top-k = 7", "think = on", `system = "Be brief."`} {
		require.Contains(t, errOut, want)
	}
	for _, re := range []string{`temp\s+0.7\n`, `max-tokens\s+3\n`, `think\s+on\n`, `seed\s+3\n`} {
		require.Regexp(t, re, out)
	}
	require.Contains(t, errOut, `unknown parameter "bogus"`)
	require.Contains(t, errOut, "top-p 2: want a value in [0, 1]")
	require.Contains(t, errOut, "/set temp needs a value")
	require.Contains(t, errOut, "unknown command /frobnicate")

	// /? lists every command with its help text in one column
	col := -1
	for _, line := range strings.Split(out, "\n") {
		name, _, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || !strings.HasPrefix(name, "/") {
			continue
		}
		cmd, known := chatCommands[strings.TrimPrefix(name, "/")]
		require.True(t, known, line)
		i := strings.Index(line, cmd.help)
		if col < 0 {
			col = i
		}
		require.Equal(t, col, i, "help column of %q", line)
	}
	require.Positive(t, col, "no help lines in %q", out)

	// the answer was limited to 3 tokens; /clear forgets the conversation
	stats := regexp.MustCompile(`generation: (\d+) tokens`).FindAllStringSubmatch(out, -1)
	require.Len(t, stats, 2)
	n, _ := strconv.Atoi(stats[0][1])
	require.LessOrEqual(t, n, 3)
	require.Contains(t, errOut, "conversation cleared")
}

// TestChatContextFull: reaching the context limit ends the answer with a message; in a
// terminal a message that no longer fits asks for /clear, piped it ends the chat with exit
// status 1 (no answer line could be printed for it); after /clear the chat goes on.
func TestChatContextFull(t *testing.T) {
	model := synthGGUF(t)
	out, errOut, err := runCLI(t, "hi\nmore please\n/clear\nhi\n", "chat", "-m", model, "--temp", "0", "--ctx", "40")
	require.Equal(t, 1, exitCode(err), "piped: a message that does not fit is an error")
	require.ErrorContains(t, err, "no longer fits the context of 40 tokens")
	answers := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, answers, 1, "only the first message was answered: %q", out)
	require.Contains(t, errOut, "context limit of 40 tokens is reached")

	out2, _ := mustRun(t, "hi\n/clear\n/stats\nhi\n", "chat", "-m", model, "--temp", "0", "--ctx", "40")
	lines := strings.Split(strings.TrimSuffix(out2, "\n"), "\n")
	require.Equal(t, answers[0], lines[0])
	require.Equal(t, answers[0], lines[len(lines)-1], "after /clear the same greedy answer")
	require.Contains(t, out2, "context: 0 of 40 tokens", "/stats after /clear shows the context empty")
}

// TestChatPipedOneLinePerMessage: piped, each message (a multi-line one between \"\"\" lines
// included) gives exactly one line on stdout, whatever the answer holds.
func TestChatPipedOneLinePerMessage(t *testing.T) {
	model := synthGGUF(t)
	in := "one\n\"\"\"first line\nsecond line\n\"\"\"\n\"\"\"single\"\"\"\nthree\nfour\n"
	out, _ := mustRun(t, in, "chat", "-m", model, "--temp", "1.5", "--seed", "5", "-n", "48")
	require.Equal(t, 5, strings.Count(out, "\n"), "five messages, five lines: %q", out)

	_, _, err := runCLI(t, "\"\"\"never\nclosed\n", "chat", "-m", model, "-n", "2")
	require.ErrorContains(t, err, `the input ended inside a """ message`)
}

func TestEscapeLine(t *testing.T) {
	require.Equal(t, `a\nb\\n\r`, escapeLine("a\nb\\n\r"))
	require.Equal(t, "plain", escapeLine("plain"))
}

func TestReadMultiline(t *testing.T) {
	in := pipeReader{bufio.NewReader(strings.NewReader("b\n  c\n\"\"\"\nafter\n"))}
	msg, err := readMultiline(in, `"""a`)
	require.NoError(t, err)
	require.Equal(t, "a\nb\n  c", msg)
	next, err := in.readLine()
	require.NoError(t, err)
	require.Equal(t, "after", next)
	msg, err = readMultiline(in, `"""x"""`)
	require.NoError(t, err)
	require.Equal(t, "x", msg)
}

// TestChatThinkReuse: with thinking on, earlier reasoning is dropped from the re-rendered
// conversation, so the second turn keeps only the common prefix of the cache.
func TestChatThinkReuse(t *testing.T) {
	model := synthGGUF(t)
	out, _ := mustRun(t, "one\ntwo\n/stats\n", "chat", "-m", model, "--temp", "0", "--think", "-n", "4", "--system", "S")
	m := reusedStat.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	reused, _ := strconv.Atoi(m[2])
	// at least the whole first prompt, which ends with "<|im_start|>assistant\n"
	first, err := renderChat(nil, "S", "one", true)
	require.NoError(t, err)
	ids, _ := mustRun(t, first, "tokenize", "-m", model, "--special")
	require.GreaterOrEqual(t, reused, strings.Count(ids, ",")+1)
}

// TestChatLineEditing checks the terminal reader's Ctrl-C handling and history without a tty.
func TestChatLineEditing(t *testing.T) {
	in := &ctrlCFilter{r: strings.NewReader("abc\x03hello\r\x10\r")} // ^P recalls the last line
	tm := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{in, io.Discard}, "> ")
	tm.History = &lineHistory{}
	line, err := tm.ReadLine()
	require.NoError(t, err)
	require.Equal(t, "", line, "Ctrl-C erases the line")
	require.Equal(t, 1, in.ctrlC)
	line, err = tm.ReadLine()
	require.NoError(t, err)
	require.Equal(t, "hello", line)
	line, err = tm.ReadLine()
	require.NoError(t, err)
	require.Equal(t, "hello", line, "history")
	_, err = tm.ReadLine()
	require.ErrorIs(t, err, io.EOF)

	h := &lineHistory{}
	for _, s := range []string{"a", "", "b", "b"} {
		h.Add(s)
	}
	require.Equal(t, 2, h.Len())
	require.Equal(t, "b", h.At(0))
	require.Equal(t, "a", h.At(1))
}
