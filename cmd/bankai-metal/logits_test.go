package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

// TestLogitsContractAgainstOracle runs `logits` on the llama.cpp oracle model for the "the cats"
// sequence and compares every printed log-prob with llama.cpp's: within the float tolerance
// (0.2) by default, and within 1e-5 with --numerics llama (llama.cpp's own arithmetic).
func TestLogitsContractAgainstOracle(t *testing.T) {
	model := testenv.Shared(t, "oracle", "tiny-q1.gguf")
	var oracle struct {
		Sequences []struct {
			Name      string
			Tokens    []int32
			Positions []struct {
				Argmax   int
				Margin   float64 `json:"top2_margin"`
				LogProbs []float64
			}
		}
	}
	testenv.ReadJSON(t, testenv.Shared(t, "oracle", "tiny-q1.logprobs.json.gz"), &oracle)
	var seq = oracle.Sequences[1]
	require.Equal(t, "len7", seq.Name)
	var toks, ids []string
	for _, tk := range seq.Tokens {
		toks = append(toks, fmt.Sprint(tk))
	}
	for id := 0; id < 262; id++ {
		ids = append(ids, fmt.Sprint(id))
	}
	for _, c := range []struct {
		numerics string
		tol      float64
	}{{"float", 0.2}, {"llama", 1e-5}} {
		out, _, err := runCLI(t, "", "logits", "-m", model, "--tokens", strings.Join(toks, ","),
			"--ids", strings.Join(ids, ","), "--top", "3", "--numerics", c.numerics)
		require.NoError(t, err)
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		pos := 0
		for sc.Scan() {
			var rec struct {
				Pos    int
				Argmax int
				Top    [][2]float64
				IDs    [][2]float64
			}
			require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
			require.Equal(t, pos, rec.Pos)
			want := seq.Positions[pos]
			require.Len(t, rec.IDs, 262)
			for _, p := range rec.IDs {
				require.LessOrEqual(t, math.Abs(p[1]-want.LogProbs[int(p[0])]), c.tol, "%s pos %d id %v", c.numerics, pos, p[0])
			}
			require.Len(t, rec.Top, 3)
			require.Equal(t, rec.Argmax, int(rec.Top[0][0]))
			if want.Margin >= 0.1 || c.numerics == "llama" {
				require.Equal(t, want.Argmax, rec.Argmax, "%s pos %d", c.numerics, pos)
			}
			pos++
		}
		require.Equal(t, len(seq.Tokens), pos)
	}
}

// TestLogitsTokensFile: the sequence can come from a file or stdin, in any id-list form, and
// gives the output of --tokens, also when it runs in chunks of positions.
func TestLogitsTokensFile(t *testing.T) {
	model := synthGGUF(t)
	args := []string{"logits", "-m", model, "--top", "3", "--ids", "1,2"}
	want, _ := mustRun(t, "", append(args, "--tokens", "116,257,32,99,10,200,7")...)
	require.Equal(t, 7, strings.Count(want, "\n"))

	file := filepath.Join(t.TempDir(), "ids.json")
	require.NoError(t, os.WriteFile(file, []byte("[116, 257, 32, 99, 10, 200, 7]\n"), 0o644))
	out, _ := mustRun(t, "", append(args, "--tokens-file", file)...)
	require.Equal(t, want, out)
	out, _ = mustRun(t, "116 257 32 99\n10 200 7\n", append(args, "--tokens-file", "-")...)
	require.Equal(t, want, out)

	defer func(b int) { logitsBudget = b }(logitsBudget)
	logitsBudget = 2 * 4 * synth.TinyVocab // two positions at a time
	out, _ = mustRun(t, "", append(args, "--tokens", "116,257,32,99,10,200,7")...)
	require.Equal(t, want, out, "chunked")
}

// TestLogitsBounds: the sequence is checked against the model's context and vocabulary before
// anything runs (a sequence longer than the context used to be run whole).
func TestLogitsBounds(t *testing.T) {
	model := synthGGUF(t)
	long := strings.Repeat("7,", 5000)
	file := filepath.Join(t.TempDir(), "long.txt")
	require.NoError(t, os.WriteFile(file, []byte(long), 0o644))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tokens", long}, "5000 tokens: more than the model's context of 4096"},
		{[]string{"--tokens-file", file}, "5000 tokens: more than the model's context of 4096"},
		{[]string{"--tokens", "1,99999"}, "token 99999 (position 1) out of the vocabulary [0,264)"},
		{[]string{"--tokens", "1", "--ids", "264"}, "--ids: id 264 out of the vocabulary [0,264)"},
		{[]string{"--tokens", "1,a"}, `--tokens: entry 1 ("a"): want a token id`},
		{[]string{"--tokens", "1", "--tokens-file", file}, "--tokens and --tokens-file: give one of them"},
		{[]string{}, "no tokens: give them with --tokens"},
		{[]string{"--tokens", " "}, "no tokens: the list is empty"},
		{[]string{"--tokens", "1", "--top", "-1"}, "--top -1: want 0 or more"},
		{[]string{"--tokens-file", filepath.Join(t.TempDir(), "missing")}, "--tokens-file: open "},
	} {
		_, _, err := runCLI(t, "", append([]string{"logits", "-m", model}, c.args...)...)
		require.ErrorContains(t, err, c.want, c.args)
	}
}
