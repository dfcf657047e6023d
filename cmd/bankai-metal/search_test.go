package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/patch"
)

func TestDemo(t *testing.T) {
	testenv.SkipShort(t)
	out, _, err := runCLI(t, "", "demo", "--iters", "60", "-q", "-o", filepath.Join(t.TempDir(), "p.json"))
	require.NoError(t, err)
	require.Contains(t, out, "1. search")
	require.Contains(t, out, "seq_logprob gaps")
	require.Contains(t, out, "(restored: true)")
}

func TestScanBudgetWritesVerifiedPatch(t *testing.T) {
	testenv.SkipShort(t)
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

// TestSearchResumeEqualsUninterrupted stops a search as SIGTERM would (before its first
// candidate, so the test is deterministic; bfs tests stop searches in the middle), checks that it
// wrote the patch so far, the report and a checkpoint and exited 143, refuses a resume whose
// flags contradict the checkpoint, and resumes without -o into the original files: the patch of
// an uninterrupted run, and the checkpoint gone.
func TestSearchResumeEqualsUninterrupted(t *testing.T) {
	testenv.SkipShort(t)
	dir := t.TempDir()
	args := []string{"search", "-m", "builtin:tiny", "--target", "math", "--control", "knowledge", "--iters", "60", "--seed", "7", "-q"}
	_, stderr, err := runCLI(t, "", append(args, "-o", filepath.Join(dir, "full.json"))...)
	require.NoError(t, err, stderr)

	part := filepath.Join(dir, "part.json")
	ck := filepath.Join(dir, "part.ckpt.json")
	err = runCLICause(t, signalError{syscall.SIGTERM}, append(args, "-o", part)...)
	requireExit(t, err, 143, "interrupted by SIGTERM")
	require.ErrorContains(t, err, "--resume "+ck)
	for _, f := range []string{part, filepath.Join(dir, "part.report.json"), ck} {
		require.FileExists(t, f)
	}

	_, _, err = runCLI(t, "", "search", "-m", "builtin:tiny", "--resume", ck, "--iters", "999", "--target", "code", "--seed", "7", "-q")
	require.ErrorContains(t, err, "--iters 999 (the checkpoint has 60)")
	require.ErrorContains(t, err, "--target code (the checkpoint has math)")
	require.NotContains(t, err.Error(), "--seed")
	require.FileExists(t, ck, "a refused resume keeps the checkpoint")

	_, stderr, err = runCLI(t, "", "search", "-m", "builtin:tiny", "--resume", ck, "--target", "math", "--seed", "7", "--mode", "greedy", "-q")
	require.NoError(t, err, stderr)
	require.NoFileExists(t, ck, "the finished search removes the checkpoint it resumed")
	full, err := patch.Load(filepath.Join(dir, "full.json"))
	require.NoError(t, err)
	resumed, err := patch.Load(part)
	require.NoError(t, err)
	require.NotEmpty(t, full.Flips)
	require.Equal(t, full.Flips, resumed.Flips)
	var a, b map[string]any
	readJSON(t, filepath.Join(dir, "full.report.json"), &a)
	readJSON(t, filepath.Join(dir, "part.report.json"), &b)
	require.Equal(t, a["final_fitness"], b["final_fitness"])
	require.Equal(t, a["target"], b["target"])
	require.Equal(t, false, b["interrupted"])
}

// runCLICause runs the app in-process with a context already cancelled with cause, as the
// signal handler cancels it.
func runCLICause(t *testing.T, cause error, args ...string) error {
	t.Helper()
	var out, errb bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errb
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	return app.RunContext(ctx, append([]string{"bankai-metal"}, args...))
}

// requireExit requires a cli exit error with that status and message part.
func requireExit(t *testing.T, err error, code int, msg string) {
	t.Helper()
	var ec cli.ExitCoder
	require.ErrorAs(t, err, &ec)
	require.Equal(t, code, ec.ExitCode(), err.Error())
	require.Contains(t, err.Error(), msg)
}

func readJSON(t *testing.T, path string, v any) {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

func TestEvalCounts(t *testing.T) {
	testenv.SkipShort(t)
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
	// Recount from the per-probe gaps (docs/UPSTREAM.md §5.4: right means gap > 0).
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
