package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime/cpu"
)

func TestBenchJSON(t *testing.T) {
	out, _ := mustRun(t, "", "bench", "-m", "builtin:tiny", "-p", "8", "-n", "4", "-r", "3", "--threads", "2", "--json")
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, "cpu", rep.Device)
	require.Equal(t, cpu.SIMD().String(), rep.SIMD)
	require.Equal(t, "float", rep.Numerics)
	require.Equal(t, 2, rep.Threads)
	require.Positive(t, rep.FileBytes)
	require.Positive(t, rep.Params)
	require.Positive(t, rep.LoadSeconds)
	require.Positive(t, rep.PeakRSS)
	require.Len(t, rep.Results, 2)
	for i, want := range []benchResult{{Test: "pp8", NPrompt: 8}, {Test: "tg4", NGen: 4}} {
		r := rep.Results[i]
		require.Equal(t, want.Test, r.Test)
		require.Equal(t, want.NPrompt, r.NPrompt)
		require.Equal(t, want.NGen, r.NGen)
		require.Len(t, r.Samples, 3)
		mean, sd := meanSD(r.Samples)
		require.InDelta(t, mean, r.Mean, 1e-9*mean)
		require.InDelta(t, sd, r.SD, 1e-9*mean+1e-12)
		for _, s := range r.Samples {
			require.Positive(t, s)
		}
	}
}

func TestBenchTableAndFlags(t *testing.T) {
	out, _ := mustRun(t, "", "bench", "-m", "builtin:tiny", "-p", "0", "-n", "3", "-r", "1", "--numerics", "llama", "--no-warmup")
	require.Contains(t, out, "| model | size | params | device | simd | numerics | threads | test | t/s |")
	require.Contains(t, out, "| llama |")
	require.Contains(t, out, "| tg3 |")
	require.NotContains(t, out, "| pp", "-p 0 skips the prompt test")
	require.Contains(t, out, "peak memory")
	require.Equal(t, 1, strings.Count(out, " ± "))

	for _, c := range []struct{ args, err string }{
		{"-p 0 -n 0", "nothing to measure"},
		{"-r 0", "-r 0: want 1 to 1000"},
		{"-p -1", "-p -1: want 0 to"},
		{"--numerics fast", "--numerics"},
	} {
		_, _, err := runCLI(t, "", append([]string{"bench", "-m", "builtin:tiny"}, strings.Fields(c.args)...)...)
		require.ErrorContains(t, err, c.err, c.args)
	}
}

func TestMeanSD(t *testing.T) {
	m, sd := meanSD([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	require.Equal(t, 5.0, m)
	require.InDelta(t, math.Sqrt(32.0/7), sd, 1e-12)
	m, sd = meanSD([]float64{3})
	require.Equal(t, 3.0, m)
	require.Zero(t, sd)
}

func TestBenchTokensInVocab(t *testing.T) {
	toks := benchTokens(1000, 300)
	require.Equal(t, toks, benchTokens(1000, 300), "the same tokens on every run")
	seen := map[int32]bool{}
	for _, tk := range toks {
		require.GreaterOrEqual(t, tk, int32(0))
		require.Less(t, tk, int32(300))
		seen[tk] = true
	}
	require.Greater(t, len(seen), 200, "spread over the vocabulary")
}
