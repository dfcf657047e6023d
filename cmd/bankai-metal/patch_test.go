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
		out, _, err := runCLI(t, "", "patch", "info", "--json", testenv.Shared(t, "upstream", "patches", file))
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
	out, _, err := runCLI(t, "", "info", "-m", model, "--json")
	require.NoError(t, err)
	var info struct{ Fingerprint string }
	require.NoError(t, json.Unmarshal([]byte(out), &info))

	p := &patch.Patch{Name: "fix", Fingerprint: info.Fingerprint, Flips: []patch.Flip{
		patch.RowFlip(1, "up_proj", 3), patch.GroupFlip(2, "down_proj", 9, 2), patch.BitFlip(0, "gate_proj", 4, 77)}}
	pf := filepath.Join(dir, "fix.json")
	require.NoError(t, p.Save(pf))
	patched := filepath.Join(dir, "patched.gguf")

	_, _, err = runCLI(t, "", "patch", "apply", "-m", model, "-p", pf, "-o", patched)
	require.NoError(t, err)
	now, _ := os.ReadFile(model)
	require.Equal(t, orig, now, "the input is never touched")

	out, _, err = runCLI(t, "", "patch", "verify", "-m", patched, "-p", pf)
	require.NoError(t, err)
	require.Equal(t, "fix: applied\n", out)
	out, _, err = runCLI(t, "", "patch", "verify", "-m", model, "-p", pf)
	require.Equal(t, 2, exitCode(err))
	require.Equal(t, "fix: not applied\n", out)
	out, _, err = runCLI(t, "", "patch", "verify", "-m", patched, "-p", pf, "--base", model)
	require.NoError(t, err)
	require.Equal(t, "fix: applied\n", out)

	// Applying the same patch to the patched copy is refused: its note records it.
	_, _, err = runCLI(t, "", "patch", "apply", "-m", patched, "-p", pf, "-o", filepath.Join(dir, "twice.gguf"))
	require.ErrorContains(t, err, "already applied to this model file")
	require.NoFileExists(t, filepath.Join(dir, "twice.gguf"))

	// diff recovers the patch's flips exactly.
	df := filepath.Join(dir, "diff.json")
	_, _, err = runCLI(t, "", "patch", "diff", "-m", model, "--to", patched, "-o", df)
	require.NoError(t, err)
	d, err := patch.Load(df)
	require.NoError(t, err)
	require.ElementsMatch(t, p.Flips, d.Flips)

	// A bad flip: clear error naming it, and no output file at all.
	bad := &patch.Patch{Name: "bad", Flips: []patch.Flip{patch.RowFlip(1, "up_proj", 99999)}}
	bf := filepath.Join(dir, "bad.json")
	require.NoError(t, bad.Save(bf))
	_, _, err = runCLI(t, "", "patch", "apply", "-m", model, "-p", bf, "-o", filepath.Join(dir, "bad.gguf"))
	require.ErrorContains(t, err, "flip 0: row 99999 out of range [0,384)")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), "bad.gguf") || strings.HasPrefix(e.Name(), ".bad"), "leftover %s", e.Name())
	}

	// stack: the patch with itself cancels completely.
	sf := filepath.Join(dir, "stack.json")
	out, _, err = runCLI(t, "", "patch", "stack", "-o", sf, pf, df)
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
	_, _, err := runCLI(t, "", "patch", "apply", "-m", model, "-p", pf, "-o", patched)
	require.NoError(t, err)
	a, stderr, err := runCLI(t, "", "logits", "-m", model, "--patch", pf, "--tokens", "1,2,3", "--top", "5")
	require.NoError(t, err)
	require.Contains(t, stderr, "no model fingerprint")
	b, _, err := runCLI(t, "", "logits", "-m", patched, "--tokens", "1,2,3", "--top", "5")
	require.NoError(t, err)
	c, _, err := runCLI(t, "", "logits", "-m", model, "--tokens", "1,2,3", "--top", "5")
	require.NoError(t, err)
	require.Equal(t, b, a)
	require.NotEqual(t, c, a)
}

// TestChatPatchCommands swaps a patch between chat turns: the patched answer differs, and after
// /patch revert the answer is the unpatched one again (greedy decoding).
func TestChatPatchCommands(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(testenv.Root(t), "testdata", "tiny.gguf")
	var flips []patch.Flip
	for r := 0; r < 64; r++ {
		flips = append(flips, patch.RowFlip(1, "up_proj", r), patch.RowFlip(0, "gate_proj", r))
	}
	pf := filepath.Join(dir, "p.json")
	require.NoError(t, (&patch.Patch{Name: "strong", Flips: flips}).Save(pf))
	in := "hello\n/clear\n/patch apply " + pf + "\n/patch list\nhello\n/clear\n/patch revert strong\nhello\n/bye\n"
	out, stderr, err := runCLI(t, in, "chat", "-m", model, "--temp", "0", "-n", "12", "--device", "cpu")
	require.NoError(t, err, stderr)
	answers := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.Len(t, answers, 3, "one answer per message: %q", out)
	require.NotEqual(t, answers[0], answers[1], "the patch changes the answer")
	require.Equal(t, answers[0], answers[2], "revert restores it")
	require.Contains(t, stderr, "applied strong (128 flips)")
	require.Contains(t, stderr, "reverted strong")
}
