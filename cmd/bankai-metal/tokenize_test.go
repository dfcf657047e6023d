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

// TestDetokenizeStdin: with no ids (or -), detokenize reads them from stdin: tokenize's JSON
// output, or ids separated by commas, spaces or newlines.
func TestDetokenizeStdin(t *testing.T) {
	model := synthGGUF(t)
	out, _ := mustRun(t, "", "tokenize", "-m", model, "the cats")
	ids := tokenizeIDs(t, "", "-m", model, "the cats")
	for _, in := range []string{out, strings.Join(idStrings(ids), " "), strings.Join(idStrings(ids), ",\n") + "\n"} {
		got, _ := mustRun(t, in, "detokenize", "-m", model)
		require.Equal(t, "the cats\n", got, in)
		got, _ = mustRun(t, in, "detokenize", "-m", model, "-")
		require.Equal(t, "the cats\n", got, in)
	}
	_, _, err := runCLI(t, "1 2 x", "detokenize", "-m", model)
	require.ErrorContains(t, err, `stdin: entry 2 ("x"): want a token id`)
	_, _, err = runCLI(t, "1 2 99999", "detokenize", "-m", model)
	require.ErrorContains(t, err, "token 99999 (position 2) out of the vocabulary [0,264)")
}

// TestParseIDs covers the id-list forms and their errors.
func TestParseIDs(t *testing.T) {
	for in, want := range map[string][]int32{
		"": {}, "  ": {}, "[]": {}, "1,2,3": {1, 2, 3}, "1 2\t3\n": {1, 2, 3}, "[1, 2, 3]\n": {1, 2, 3},
		"1,,2": {1, 2}, ",1,": {1}, "+7": {7}, "2147483647": {2147483647},
	} {
		got, err := parseIDs(in, 0)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for in, want := range map[string]string{
		"1,x":                    `entry 1 ("x"): want a token id`,
		"-1":                     `entry 0 ("-1")`,
		"2147483648":             `entry 0 ("2147483648")`,
		"[1, 2":                  "must end with ]",
		"[[1]]":                  `entry 0 ("[1]")`,
		"1.5":                    `entry 0 ("1.5")`,
		strings.Repeat("9", 100): `entry 0 ("99999999999999999999...")`,
	} {
		_, err := parseIDs(in, 0)
		require.ErrorContains(t, err, want, in)
	}
	_, err := parseIDs("1 2 3 4", 3)
	require.ErrorContains(t, err, "more than 3 ids")
	got, err := parseIDs("1 2 3", 3)
	require.NoError(t, err)
	require.Len(t, got, 3)
}

// FuzzParseIDs: the id-list parser never panics, never returns more than its limit, and what
// it returns prints back (as tokenize does, or comma-separated) to the same list.
func FuzzParseIDs(f *testing.F) {
	for _, s := range []string{"", "1,2,3", "[9707, 11, 1879]\n", "1 2\t3\r\n", "-1", "1,x", "[1,2", "2147483648", ",,", "[]", "+0"} {
		f.Add(s)
	}
	const limit = 64
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := parseIDs(s, limit)
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		require.LessOrEqual(t, len(ids), limit)
		for _, id := range ids {
			require.GreaterOrEqual(t, id, int32(0))
		}
		for _, form := range []string{jsonIDs(ids), strings.Join(idStrings(ids), ",")} {
			back, err := parseIDs(form, limit)
			require.NoError(t, err, form)
			require.Equal(t, ids, back, form)
		}
	})
}
