package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

// runCLI runs the command line in-process with stdin, as main does, and returns stdout and
// stderr.
func runCLI(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Reader, app.Writer, app.ErrWriter = strings.NewReader(stdin), &out, &errOut
	err := run(context.Background(), app, append([]string{"bankai-metal"}, args...))
	return out.String(), errOut.String(), err
}

// mustRun is runCLI expecting success.
func mustRun(t *testing.T, stdin string, args ...string) (string, string) {
	t.Helper()
	out, errOut, err := runCLI(t, stdin, args...)
	require.NoError(t, err, "stderr: %s", errOut)
	return out, errOut
}

// greedyOracle is llama.cpp's greedy runs (../shared/oracle/README.md, *.greedy.json).
type greedyOracle struct {
	Runs []struct {
		Name       string    `json:"name"`
		PromptText string    `json:"prompt_text"`
		Prompt     []int32   `json:"prompt_tokens"`
		Generated  []int32   `json:"generated_tokens"`
		Margins    []float64 `json:"top2_margins"`
		Text       *string   `json:"generated_text"`
	} `json:"runs"`
}

// oracleModel is a shared oracle model with its greedy runs, the README's argmax threshold and
// its tokenizer.
type oracleModel struct {
	path   string
	margin float64
	greedy greedyOracle
	tok    *tokenizer.Tokenizer
}

func loadOracle(t *testing.T, model, greedy string, margin float64) oracleModel {
	t.Helper()
	o := oracleModel{path: testenv.Shared(t, "oracle", model), margin: margin}
	testenv.ReadJSON(t, testenv.Shared(t, "oracle", greedy), &o.greedy)
	require.NotEmpty(t, o.greedy.Runs)
	m, err := runtime.Load(o.path)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	o.tok, err = m.Tokenizer()
	require.NoError(t, err)
	return o
}

// oracleModels are the oracle models whose greedy output the CLI must reproduce.
func oracleModels(t *testing.T) []oracleModel {
	return []oracleModel{
		loadOracle(t, "tiny-q1.gguf", "tiny-q1.greedy.json", 0.1),
		loadOracle(t, "qwen3vocab-q1.gguf", "qwen3vocab-q1.greedy.json", 0.25),
	}
}

// fixedSteps is how many leading greedy tokens the oracle fixes: the steps before the first
// whose top-2 margin is below the threshold (after it a float implementation may diverge).
func fixedSteps(margins []float64, threshold float64) int {
	for i, m := range margins {
		if m < threshold {
			return i
		}
	}
	return len(margins)
}

// streamText is the text Generate streams for ids: the streaming decoder, then its flush.
func streamText(tok *tokenizer.Tokenizer, ids []int32) string {
	d := tok.NewDecoder()
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(d.Add(id))
	}
	return sb.String() + d.Flush()
}

var promptStat = regexp.MustCompile(`prompt: (\d+) tokens`)

func TestGenerateReproducesGreedyOracle(t *testing.T) {
	for _, o := range oracleModels(t) {
		for _, run := range o.greedy.Runs {
			t.Run(filepath.Base(o.path)+"/"+run.Name, func(t *testing.T) {
				k := fixedSteps(run.Margins, o.margin)
				if k == 0 {
					t.Skip("the first step is already a near-tie")
				}
				want := streamText(o.tok, run.Generated[:k])
				if run.Text != nil && strings.ToValidUTF8(want, "") == want {
					// our detokenization agrees with llama.cpp's
					require.True(t, strings.HasPrefix(*run.Text, want), "%q is not a prefix of %q", want, *run.Text)
				}
				out, errOut := mustRun(t, "", "generate", "-m", o.path, "--temp", "0", "--raw", "-n", strconv.Itoa(k),
					"--verbose", "-p", run.PromptText)
				require.Equal(t, want+"\n", out)
				m := promptStat.FindStringSubmatch(errOut)
				require.NotNil(t, m, errOut)
				require.Equal(t, strconv.Itoa(len(run.Prompt)), m[1], "prompt tokens")
			})
		}
	}
}

// TestGenerateChatTemplate: without --raw, "What is 2 + 2?" becomes the oracle's chat prompt
// (Qwen3 template, thinking disabled), read here from stdin.
func TestGenerateChatTemplate(t *testing.T) {
	o := loadOracle(t, "qwen3vocab-q1.gguf", "qwen3vocab-q1.greedy.json", 0.25)
	run := o.greedy.Runs[0]
	require.Equal(t, "chat", run.Name)
	require.True(t, strings.HasPrefix(run.PromptText, "<|im_start|>user\nWhat is 2 + 2?<|im_end|>"))
	k := fixedSteps(run.Margins, o.margin)
	require.Greater(t, k, 0)
	for _, args := range [][]string{{"-p", "-"}, {}} {
		out, errOut := mustRun(t, "What is 2 + 2?\n", append([]string{"generate", "-m", o.path, "--temp", "0",
			"-n", strconv.Itoa(k), "--verbose"}, args...)...)
		require.Equal(t, streamText(o.tok, run.Generated[:k])+"\n", out)
		require.Equal(t, []string{"prompt: " + strconv.Itoa(len(run.Prompt)) + " tokens"}, promptStat.FindAllString(errOut, -1))
		require.NotContains(t, errOut, "warning", "the oracle model has the Qwen3 template")
	}
	// --think leaves out the empty think block, the last 4 tokens of the oracle's prompt
	// ("<think>", "\n\n", "</think>", "\n\n")
	_, errOut := mustRun(t, "", "generate", "-m", o.path, "--temp", "0", "-n", "1", "--verbose", "--think", "-p", "What is 2 + 2?")
	require.Equal(t, []string{"prompt: " + strconv.Itoa(len(run.Prompt)-4) + " tokens"}, promptStat.FindAllString(errOut, -1))
}

// synthMLX writes the built-in tiny model as an MLX directory (its template is plain ChatML).
func synthMLX(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny-mlx")
	require.NoError(t, synth.Tiny().WriteMLX(dir))
	return dir
}

func TestGenerateOptions(t *testing.T) {
	model := synthMLX(t)
	// a template other than Qwen3's gets one warning; --raw needs no template
	_, errOut := mustRun(t, "", "generate", "-m", model, "-p", "hi", "-n", "2")
	require.Equal(t, 1, strings.Count(errOut, "warning"), errOut)
	_, errOut = mustRun(t, "", "generate", "-m", model, "-p", "hi", "-n", "2", "--raw")
	require.NotContains(t, errOut, "warning")

	// the same seed gives the same text
	args := []string{"generate", "-m", model, "-p", "the", "--raw", "-n", "12", "--temp", "1.2", "--top-k", "0", "--top-p", "1"}
	a, _ := mustRun(t, "", append(args, "--seed", "5")...)
	b, _ := mustRun(t, "", append(args, "--seed", "5")...)
	require.Equal(t, a, b)

	// the context limit stops generation cleanly; a prompt over it is an error
	out, errOut := mustRun(t, "", "generate", "-m", model, "-p", "the", "--raw", "--temp", "0", "--ctx", "6")
	require.NotEmpty(t, strings.TrimSpace(out))
	require.Contains(t, errOut, "context limit of 6 tokens")
	_, _, err := runCLI(t, "", "generate", "-m", model, "-p", "a longer prompt than that", "--raw", "--ctx", "6")
	require.ErrorIs(t, err, runtime.ErrContextFull)

	for _, bad := range [][]string{{"--top-p", "1.5"}, {"--temp", "-1"}, {"--ctx", "-3"}, {"extra-arg"}, {"-n", "-2"}, {"--raw", "--system", "S"}} {
		_, _, err := runCLI(t, "", append([]string{"generate", "-m", model, "-p", "x"}, bad...)...)
		require.Error(t, err, fmt.Sprint(bad))
	}
}

// TestSamplingBounds: NaN, infinite and out-of-range sampling settings and thread counts are
// rejected (NaN used to pass every range check).
func TestSamplingBounds(t *testing.T) {
	model := synthGGUF(t)
	for _, bad := range [][]string{
		{"--temp", "NaN"}, {"--temp", "Inf"}, {"--temp", "-0.5"},
		{"--top-p", "NaN"}, {"--top-p", "-0.1"}, {"--top-p", "1.01"},
		{"--top-k", "-1"},
		{"--min-p", "NaN"}, {"--min-p", "-1"}, {"--min-p", "+Inf"},
		{"--repeat-penalty", "NaN"}, {"--repeat-penalty", "Inf"}, {"--repeat-penalty", "0"}, {"--repeat-penalty", "-1"},
		{"--repeat-last-n", "-2"},
		{"--threads", "-1"}, {"--threads", "100000"},
	} {
		_, _, err := runCLI(t, "", append([]string{"generate", "-m", model, "-p", "x", "--raw", "-n", "1"}, bad...)...)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "want", bad)
	}
	mustRun(t, "", "generate", "-m", model, "-p", "x", "--raw", "-n", "1", "--top-p", "1", "--min-p", "0", "--threads", "1", "--repeat-last-n", "-1")
}

// TestCtxAboveModel: a --ctx beyond the model's context is lowered to it with a warning.
func TestCtxAboveModel(t *testing.T) {
	model := synthGGUF(t)
	_, errOut := mustRun(t, "", "generate", "-m", model, "-p", "x", "--raw", "-n", "1", "--temp", "0", "--ctx", "100000", "--verbose")
	require.Contains(t, errOut, "warning: --ctx 100000 is more than the model's context of 4096 tokens; using 4096")
	require.Regexp(t, `context: \d+ of 4096 tokens`, errOut)
	_, errOut = mustRun(t, "", "generate", "-m", model, "-p", "x", "--raw", "-n", "1", "--temp", "0", "--ctx", "64")
	require.NotContains(t, errOut, "warning")
}
