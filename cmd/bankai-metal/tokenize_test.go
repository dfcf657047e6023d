package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// tokenizeIDs runs tokenize and decodes its JSON array.
func tokenizeIDs(t *testing.T, stdin string, args ...string) []int32 {
	t.Helper()
	out, _ := mustRun(t, stdin, append([]string{"tokenize"}, args...)...)
	require.True(t, strings.HasSuffix(out, "]\n"), out)
	var ids []int32
	require.NoError(t, json.Unmarshal([]byte(out), &ids))
	return ids
}

// TestTokenizeOracle: the prompts of llama.cpp's greedy runs tokenize to its prompt tokens
// (special tokens parsed, as llama.cpp does), and detokenize gives the text back.
func TestTokenizeOracle(t *testing.T) {
	for _, o := range oracleModels(t) {
		for _, run := range o.greedy.Runs {
			ids := tokenizeIDs(t, "", "-m", o.path, "--special", run.PromptText)
			require.Equal(t, run.Prompt, ids, "%s %s", o.path, run.Name)

			out, _ := mustRun(t, "", "detokenize", "-m", o.path, strings.Join(idStrings(ids), ","))
			require.Equal(t, run.PromptText+"\n", out)

			// without --special, control tokens written in the text stay text
			plain := tokenizeIDs(t, "", "-m", o.path, run.PromptText)
			if strings.HasPrefix(run.PromptText, "<|im_start|>") {
				require.NotContains(t, plain, run.Prompt[0], "<|im_start|> parsed without --special")
			}
			out, _ = mustRun(t, "", append([]string{"detokenize", "-m", o.path}, idStrings(plain)...)...)
			require.Equal(t, run.PromptText+"\n", out)
		}
	}
}

func idStrings(ids []int32) []string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return s
}

func jsonIDs(ids []int32) string {
	b, _ := json.Marshal(ids)
	return string(b)
}

func TestTokenizeInputForms(t *testing.T) {
	model := synthGGUF(t)
	want := tokenizeIDs(t, "", "-m", model, "the cats")
	require.NotEmpty(t, want)
	require.Equal(t, want, tokenizeIDs(t, "", "-m", model, "the", "cats"), "arguments joined with a space")
	require.Equal(t, want, tokenizeIDs(t, "the cats", "-m", model, "-"), "- reads stdin")
	require.Equal(t, want, tokenizeIDs(t, "the cats", "-m", model), "no text reads stdin")
	require.Equal(t, []int32{}, tokenizeIDs(t, "", "-m", model))

	// detokenize takes commas, spaces or tokenize's JSON array
	for _, arg := range []string{jsonIDs(want), strings.Trim(jsonIDs(want), "[]")} {
		out, _ := mustRun(t, "", "detokenize", "-m", model, arg)
		require.Equal(t, "the cats\n", out)
	}
	out, _ := mustRun(t, "", append([]string{"detokenize", "-m", model}, idStrings(want)...)...)
	require.Equal(t, "the cats\n", out)

	for _, bad := range []string{"1,x", "-1", "99999999"} {
		_, _, err := runCLI(t, "", "detokenize", "-m", model, bad)
		require.Error(t, err, bad)
	}
}
