package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/patch"
)

func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestPatchInfoUpstreamFiles(t *testing.T) {
	for file, flips := range map[string]int{"calculus_v1.json": 72, "patch_math_v1.json": 72, "calculus_group_v1.json": 6} {
		out, _, err := runApp(t, "patch", "info", "--json", testenv.Shared(t, "upstream", "patches", file))
		require.NoError(t, err)
		var info map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &info))
		require.EqualValues(t, flips, info["flips"], file)
	}
}

// TestPatchApplyVerifyDiff walks the on-disk workflow on a testdata model.
func TestPatchApplyVerifyDiff(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(testenv.Root(t), "testdata", "tiny-4layer.gguf")
	orig, err := os.ReadFile(model)
	require.NoError(t, err)
	out, _, err := runApp(t, "info", "-m", model, "--json")
	require.NoError(t, err)
	var info struct{ Fingerprint string }
	require.NoError(t, json.Unmarshal([]byte(out), &info))

	p := &patch.Patch{Name: "fix", Fingerprint: info.Fingerprint, Flips: []patch.Flip{
		patch.RowFlip(1, "up_proj", 3), patch.GroupFlip(2, "down_proj", 9, 2), patch.BitFlip(0, "gate_proj", 4, 77)}}
	pf := filepath.Join(dir, "fix.json")
	require.NoError(t, p.Save(pf))
	patched := filepath.Join(dir, "patched.gguf")

	_, _, err = runApp(t, "patch", "apply", "-m", model, "-p", pf, "-o", patched)
	require.NoError(t, err)
	now, _ := os.ReadFile(model)
	require.Equal(t, orig, now, "the input is never touched")

	out, _, err = runApp(t, "patch", "verify", "-m", patched, "-p", pf)
	require.NoError(t, err)
	require.Equal(t, "fix: applied\n", out)
	out, _, err = runApp(t, "patch", "verify", "-m", model, "-p", pf)
	require.Equal(t, 2, exitCode(err))
	require.Equal(t, "fix: not applied\n", out)
	out, _, err = runApp(t, "patch", "verify", "-m", patched, "-p", pf, "--base", model)
	require.NoError(t, err)
	require.Equal(t, "fix: applied\n", out)

	// Applying the same patch to the patched copy is refused: its fingerprint differs.
	_, _, err = runApp(t, "patch", "apply", "-m", patched, "-p", pf, "-o", filepath.Join(dir, "twice.gguf"))
	require.ErrorContains(t, err, "made for model")
	require.NoFileExists(t, filepath.Join(dir, "twice.gguf"))

	// diff recovers the patch's flips exactly.
	df := filepath.Join(dir, "diff.json")
	_, _, err = runApp(t, "patch", "diff", "-m", model, "--to", patched, "-o", df)
	require.NoError(t, err)
	d, err := patch.Load(df)
	require.NoError(t, err)
	require.ElementsMatch(t, p.Flips, d.Flips)

	// A bad flip: clear error naming it, and no output file at all.
	bad := &patch.Patch{Name: "bad", Flips: []patch.Flip{patch.RowFlip(1, "up_proj", 99999)}}
	bf := filepath.Join(dir, "bad.json")
	require.NoError(t, bad.Save(bf))
	_, _, err = runApp(t, "patch", "apply", "-m", model, "-p", bf, "-o", filepath.Join(dir, "bad.gguf"))
	require.ErrorContains(t, err, "flip 0: row 99999 out of range [0,384)")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), "bad.gguf") || strings.HasPrefix(e.Name(), ".bad"), "leftover %s", e.Name())
	}

	// stack: the patch with itself cancels completely.
	sf := filepath.Join(dir, "stack.json")
	out, _, err = runApp(t, "patch", "stack", "-o", sf, pf, df)
	require.NoError(t, err)
	require.Contains(t, out, "0 flips, 3 cancelled")
}

// TestLogitsWithPatch checks --patch on a command that runs the model: applying a patch at load
// gives the logits of the patched file.
func TestLogitsWithPatch(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(testenv.Root(t), "testdata", "tiny.gguf")
	p := &patch.Patch{Name: "p", Flips: []patch.Flip{patch.RowFlip(1, "down_proj", 5), patch.RowFlip(0, "up_proj", 8)}}
	pf := filepath.Join(dir, "p.json")
	require.NoError(t, p.Save(pf))
	patched := filepath.Join(dir, "p.gguf")
	_, _, err := runApp(t, "patch", "apply", "-m", model, "-p", pf, "-o", patched)
	require.NoError(t, err)
	a, stderr, err := runApp(t, "logits", "-m", model, "--patch", pf, "--tokens", "1,2,3", "--top", "5")
	require.NoError(t, err)
	require.Contains(t, stderr, "no model fingerprint")
	b, _, err := runApp(t, "logits", "-m", patched, "--tokens", "1,2,3", "--top", "5")
	require.NoError(t, err)
	c, _, err := runApp(t, "logits", "-m", model, "--tokens", "1,2,3", "--top", "5")
	require.NoError(t, err)
	require.Equal(t, b, a)
	require.NotEqual(t, c, a)
}
