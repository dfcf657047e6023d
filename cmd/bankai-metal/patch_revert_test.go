package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/patch"
)

// readModel returns a model's bytes: the file, or every file of an MLX directory by name.
func readModel(t *testing.T, path string) map[string][]byte {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	if !st.IsDir() {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		return map[string][]byte{"": b}
	}
	entries, err := os.ReadDir(path)
	require.NoError(t, err)
	files := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(path, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = b
	}
	return files
}

// fingerprintOf runs info --json.
func fingerprintOf(t *testing.T, model string) string {
	out, _ := mustRun(t, "", "info", "-m", model, "--json")
	var info struct{ Fingerprint string }
	require.NoError(t, json.Unmarshal([]byte(out), &info))
	return info.Fingerprint
}

// TestPatchRevertRestoresBytes: for GGUF and MLX, two patches both named math_patch stack,
// patch revert takes them out in any order and gives back each earlier file byte for byte
// (provenance note included), and applying a recorded patch again with --force does the same.
func TestPatchRevertRestoresBytes(t *testing.T) {
	root := testenv.Root(t)
	for _, src := range []string{filepath.Join(root, "testdata", "tiny.gguf"), filepath.Join(root, "testdata", "tiny-mlx")} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			dir := t.TempDir()
			ext := filepath.Ext(src)
			fp := fingerprintOf(t, src)
			a := filepath.Join(dir, "a.json")
			b := filepath.Join(dir, "b.json")
			require.NoError(t, (&patch.Patch{Name: "math_patch", Fingerprint: fp, Flips: []patch.Flip{patch.RowFlip(0, "up_proj", 3)}}).Save(a))
			require.NoError(t, (&patch.Patch{Name: "math_patch", Fingerprint: fp, Flips: []patch.Flip{patch.RowFlip(1, "gate_proj", 5), patch.BitFlip(0, "q_proj", 2, 7)}}).Save(b))
			pa, pab := filepath.Join(dir, "a"+ext), filepath.Join(dir, "ab"+ext)
			mustRun(t, "", "patch", "apply", "-m", src, "-p", a, "-o", pa)
			out, _ := mustRun(t, "", "patch", "apply", "-m", pa, "-p", b, "-o", pab)
			require.Contains(t, out, "applied math_patch to", "a patch for the base stacks onto the patched copy")

			// the same stack in one command, and the same content twice refused
			both := filepath.Join(dir, "both"+ext)
			mustRun(t, "", "patch", "apply", "-m", src, "-p", a, "-p", b, "-o", both)
			_, _, err := runCLI(t, "", "patch", "apply", "-m", src, "-p", a, "-p", a, "-o", filepath.Join(dir, "aa"+ext))
			require.ErrorContains(t, err, "already applied (same flips")

			r1 := filepath.Join(dir, "r1"+ext)
			mustRun(t, "", "patch", "revert", "-m", pab, "-p", b, "-o", r1)
			require.Equal(t, readModel(t, pa), readModel(t, r1), "revert b from a+b gives a+ back, note included")
			r2 := filepath.Join(dir, "r2"+ext)
			mustRun(t, "", "patch", "revert", "-m", both, "-p", a, "-p", b, "-o", r2)
			require.Equal(t, readModel(t, src), readModel(t, r2), "reverting every patch gives the original")
			r3 := filepath.Join(dir, "r3"+ext)
			_, _, err = runCLI(t, "", "patch", "apply", "-m", pa, "-p", a, "-o", r3)
			require.ErrorContains(t, err, "already applied to this model file")
			mustRun(t, "", "patch", "apply", "-m", pa, "-p", a, "-o", r3, "--force")
			require.Equal(t, readModel(t, src), readModel(t, r3), "applying a recorded patch again reverts it exactly")

			_, _, err = runCLI(t, "", "patch", "revert", "-m", pa, "-p", b, "-o", filepath.Join(dir, "r4"+ext))
			require.ErrorContains(t, err, "not applied to this model")
			_, _, err = runCLI(t, "", "patch", "revert", "-m", src, "-p", a, "-o", filepath.Join(dir, "r5"+ext))
			require.ErrorContains(t, err, "records no applied patch")

			// An existing output is refused for both formats unless --overwrite.
			_, _, err = runCLI(t, "", "patch", "apply", "-m", src, "-p", a, "-o", r3)
			require.ErrorContains(t, err, "already exists; pass --overwrite")
			mustRun(t, "", "patch", "apply", "-m", src, "-p", a, "-o", r3, "--overwrite")
			require.Equal(t, readModel(t, pa), readModel(t, r3))
		})
	}
}

// TestPatchApplyOutputs: outputs are compared with inputs by identity, and an MLX model is
// never written to a directory named like a GGUF file.
func TestPatchApplyOutputs(t *testing.T) {
	root := testenv.Root(t)
	dir := t.TempDir()
	gguf := filepath.Join(root, "testdata", "tiny.gguf")
	mlxDir := filepath.Join(root, "testdata", "tiny-mlx")
	pf := filepath.Join(dir, "p.json")
	require.NoError(t, (&patch.Patch{Name: "p", Flips: []patch.Flip{patch.RowFlip(0, "up_proj", 3)}}).Save(pf))

	link := filepath.Join(dir, "link.gguf")
	require.NoError(t, os.Symlink(gguf, link))
	_, _, err := runCLI(t, "", "patch", "apply", "-m", gguf, "-p", pf, "-o", link, "--overwrite")
	require.ErrorContains(t, err, "is the same file as the input")
	_, _, err = runCLI(t, "", "patch", "apply", "-m", gguf, "-p", pf, "-o", pf, "--overwrite")
	require.ErrorContains(t, err, "is also an input")
	_, _, err = runCLI(t, "", "patch", "apply", "-m", mlxDir, "-p", pf, "-o", filepath.Join(dir, "x.gguf"))
	require.ErrorContains(t, err, "an MLX model is written as a directory")
	require.NoDirExists(t, filepath.Join(dir, "x.gguf"))

	hard := filepath.Join(dir, "hard.json")
	require.NoError(t, os.Link(pf, hard))
	_, _, err = runCLI(t, "", "patch", "stack", "-o", hard, pf, pf)
	require.ErrorContains(t, err, "is the same file as the input")
	patched := filepath.Join(dir, "patched.gguf")
	mustRun(t, "", "patch", "apply", "-m", gguf, "-p", pf, "-o", patched)
	_, _, err = runCLI(t, "", "patch", "diff", "-m", gguf, "--to", patched, "-o", patched)
	require.ErrorContains(t, err, "is also an input")
	_, _, err = runCLI(t, "", "patch", "diff", "-m", gguf, "--to", patched, "-o", link)
	require.ErrorContains(t, err, "is the same file as the input")
}

// TestPatchInfoJSONKeys: every key outside metadata is snake_case.
func TestPatchInfoJSONKeys(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "p.json")
	require.NoError(t, (&patch.Patch{Name: "p", Flips: []patch.Flip{patch.RowFlip(0, "up_proj", 3)}}).Save(pf))
	out, _ := mustRun(t, "", "patch", "info", "--json", "-m", filepath.Join(testenv.Root(t), "testdata", "tiny.gguf"), pf)
	var info map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &info))
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(string, any)
	walk = func(at string, v any) {
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		for k, x := range obj {
			if at == "" && (k == "metadata" || k == "by_layer_proj") {
				continue // user data and L3.up_proj-style names
			}
			require.Regexp(t, snake, k, "key %q in %q", k, at)
			walk(at+"."+k, x)
		}
	}
	walk("", info)
	require.Contains(t, info, "id")
	require.Contains(t, info["nominal"], "bits_flipped")
}
