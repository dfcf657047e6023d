package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEvalJSONCorrectFollowsGap: without --greedy, eval --json says a probe is right exactly
// when the table does, by the sign of its gap (base_correct used to be always false).
func TestEvalJSONCorrectFollowsGap(t *testing.T) {
	model := synthGGUF(t)
	out, _ := mustRun(t, "", "eval", "-m", model, "--probes", "math,knowledge", "--json")
	var rep struct {
		Probes []struct {
			Name           string
			Base, Patched  float64
			BaseCorrect    bool `json:"base_correct"`
			PatchedCorrect bool `json:"patched_correct"`
		}
		Gap struct{ Before, After int }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.NotEmpty(t, rep.Probes)
	right := 0
	for _, p := range rep.Probes {
		require.Equal(t, p.Base > 0, p.BaseCorrect, p.Name)
		require.Equal(t, p.Patched > 0, p.PatchedCorrect, p.Name)
		if p.BaseCorrect {
			right++
		}
	}
	require.Positive(t, right, "some probe is right on this model, so the check can fail")
	require.Equal(t, rep.Gap.Before, right)

	table, _ := mustRun(t, "", "eval", "-m", model, "--probes", "math,knowledge")
	require.Equal(t, right, strings.Count(table, "  right\n"))
}

// TestEvalProbeBounds: probes are checked against the model's context before any work, with an
// error naming the file and the probe; probe files have a size limit.
func TestEvalProbeBounds(t *testing.T) {
	model := synthGGUF(t)
	dir := t.TempDir()
	long := filepath.Join(dir, "long.json")
	probes := []map[string]string{{"name": "ok", "prompt": "2 + 2 =", "correct": " 4", "wrong": " 5"},
		{"name": "too_long", "prompt": strings.Repeat("x", 5000), "correct": " 4", "wrong": " 5"}}
	b, err := json.Marshal(probes)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(long, b, 0o644))
	_, _, err = runCLI(t, "", "eval", "-m", model, "--probes", "math", "--probes", long)
	require.ErrorContains(t, err, "--probes "+long+`: probe 1 ("too_long"): `)
	require.ErrorContains(t, err, "more than the model's context of 4096")

	// a prompt that fits, but not with its greedy answer
	probes[1]["prompt"] = strings.Repeat("x", 4090)
	b, _ = json.Marshal(probes)
	require.NoError(t, os.WriteFile(long, b, 0o644))
	_, _, err = runCLI(t, "", "eval", "-m", model, "--probes", long, "--greedy", "--max-tokens", "10")
	require.ErrorContains(t, err, `probe 1 ("too_long")`)

	huge := filepath.Join(dir, "huge.json")
	require.NoError(t, os.WriteFile(huge, make([]byte, 5<<20), 0o644))
	_, _, err = runCLI(t, "", "eval", "-m", model, "--probes", huge)
	require.ErrorContains(t, err, "huge.json: file larger than 4 MiB")

	_, _, err = runCLI(t, "", "eval", "-m", model, "--probes", "math", "--greedy", "--max-tokens", "0")
	require.ErrorContains(t, err, "--max-tokens 0: want 1 or more")
}
