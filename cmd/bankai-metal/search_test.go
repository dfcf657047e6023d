package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/patch"
)

func TestDemo(t *testing.T) {
	out, _, err := runCLI(t, "", "demo", "--iters", "60", "-q", "-o", filepath.Join(t.TempDir(), "p.json"))
	require.NoError(t, err)
	require.Contains(t, out, "1. search")
	require.Contains(t, out, "seq_logprob gaps")
	require.Contains(t, out, "(restored: true)")
}

func TestScanBudgetWritesVerifiedPatch(t *testing.T) {
	dir := t.TempDir()
	out, _, err := runCLI(t, "", "scan", "-m", "builtin:tiny", "--target", "math", "--layers", "1", "--proj", "up_proj",
		"--budget", "3", "-o", filepath.Join(dir, "top3.json"), "--scores", filepath.Join(dir, "s.csv"), "-q")
	require.NoError(t, err)
	require.Contains(t, out, "scanned 384 of 384 candidates")
	p, err := patch.Load(filepath.Join(dir, "top3.json"))
	require.NoError(t, err)
	require.NotEmpty(t, p.Flips)
	require.LessOrEqual(t, len(p.Flips), 3)
	csv, err := os.ReadFile(filepath.Join(dir, "s.csv"))
	require.NoError(t, err)
	require.Equal(t, 385, strings.Count(string(csv), "\n"), "header + one row per candidate")
}

// TestSearchResumeEqualsUninterrupted interrupts a search from the CLI, resumes it from the
// checkpoint it wrote, and requires the patch of an uninterrupted run.
func TestSearchResumeEqualsUninterrupted(t *testing.T) {
	dir := t.TempDir()
	args := []string{"search", "-m", "builtin:tiny", "--target", "math", "--control", "knowledge", "--iters", "120", "--seed", "7", "-q"}
	_, stderr, err := runCLI(t, "", append(args, "-o", filepath.Join(dir, "full.json"))...)
	require.NoError(t, err, stderr)

	// Interrupt a second run as if by Ctrl-C: cancel its context shortly after it starts.
	var out, errb bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errb
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	require.NoError(t, app.RunContext(ctx, append(append([]string{"bankai-metal"}, args...), "-o", filepath.Join(dir, "part.json"))))
	ck := filepath.Join(dir, "part.ckpt.json")
	if !strings.Contains(errb.String(), "interrupted") {
		t.Skip("the search finished before it could be interrupted on this machine")
	}
	require.FileExists(t, ck)
	require.FileExists(t, filepath.Join(dir, "part.json"), "the partial patch is written")

	_, stderr, err = runCLI(t, "", "search", "-m", "builtin:tiny", "--resume", ck, "-o", filepath.Join(dir, "resumed.json"), "-q")
	require.NoError(t, err, stderr)
	full, err := patch.Load(filepath.Join(dir, "full.json"))
	require.NoError(t, err)
	resumed, err := patch.Load(filepath.Join(dir, "resumed.json"))
	require.NoError(t, err)
	require.NotEmpty(t, full.Flips)
	require.Equal(t, full.Flips, resumed.Flips)
	var a, b map[string]any
	readJSON(t, filepath.Join(dir, "full.report.json"), &a)
	readJSON(t, filepath.Join(dir, "resumed.report.json"), &b)
	require.Equal(t, a["final_fitness"], b["final_fitness"])
	require.Equal(t, a["target"], b["target"])
}

func readJSON(t *testing.T, path string, v any) {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

func TestEvalCounts(t *testing.T) {
	dir := t.TempDir()
	_, stderr, err := runCLI(t, "", "search", "-m", "builtin:tiny", "--target", "math", "--control", "knowledge", "--iters", "60", "-q", "-o", filepath.Join(dir, "p.json"))
	require.NoError(t, err, stderr)
	out, _, err := runCLI(t, "", "eval", "-m", "builtin:tiny", "--patch", filepath.Join(dir, "p.json"), "--probes", "math", "--json")
	require.NoError(t, err)
	var rep struct {
		Probes []struct{ Base, Patched float64 }
		Gap    struct{ Total, Fixed, Broke, Unchanged, Before, After int }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Len(t, rep.Probes, 6)
	// Recount from the per-probe gaps (§5.4: right means gap > 0).
	var fixed, broke, before, after int
	for _, p := range rep.Probes {
		if p.Base > 0 {
			before++
		}
		if p.Patched > 0 {
			after++
		}
		if p.Base <= 0 && p.Patched > 0 {
			fixed++
		}
		if p.Base > 0 && p.Patched <= 0 {
			broke++
		}
	}
	require.Equal(t, fixed, rep.Gap.Fixed)
	require.Equal(t, broke, rep.Gap.Broke)
	require.Equal(t, before, rep.Gap.Before)
	require.Equal(t, after, rep.Gap.After)
	require.Equal(t, 6-fixed-broke, rep.Gap.Unchanged)

	// The patched column is the model with the patch written in: score a patched copy alone.
	patched := filepath.Join(dir, "patched.gguf")
	tiny, err := resolveModel("builtin:tiny")
	require.NoError(t, err)
	_, stderr, err = runCLI(t, "", "patch", "apply", "-m", tiny, "-p", filepath.Join(dir, "p.json"), "-o", patched)
	require.NoError(t, err, stderr)
	out, _, err = runCLI(t, "", "eval", "-m", patched, "--probes", "math", "--json")
	require.NoError(t, err)
	var alone struct{ Probes []struct{ Base float64 } }
	require.NoError(t, json.Unmarshal([]byte(out), &alone))
	for i := range rep.Probes {
		require.InDelta(t, rep.Probes[i].Patched, alone.Probes[i].Base, 1e-6, "probe %d", i)
	}
}
