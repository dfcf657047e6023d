package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/bfs"
	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// writeProbeFile writes the built-in math probes to dir/name.
func writeProbeFile(t *testing.T, dir, name string) string {
	t.Helper()
	set, err := bfs.LoadProbes("math")
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, bfs.WriteProbes(&buf, set))
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o644))
	return p
}

// TestSearchRefusesOwnInputs: no output of search or scan may be one of its inputs, compared
// by identity (a symlink or a hard link is the same file), nor two outputs the same file; the
// inputs are left untouched.
func TestSearchRefusesOwnInputs(t *testing.T) {
	dir := t.TempDir()
	model, err := resolveModel("builtin:tiny")
	require.NoError(t, err)
	before, err := os.ReadFile(model)
	require.NoError(t, err)
	probes := writeProbeFile(t, dir, "probes.json")
	link := filepath.Join(dir, "link.json")
	require.NoError(t, os.Symlink(probes, link))
	hard := filepath.Join(dir, "hard.json")
	require.NoError(t, os.Link(probes, hard))

	search := []string{"search", "-m", "builtin:tiny", "--target", probes, "--control", "knowledge", "--iters", "5", "-q"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", model}, "-o " + model + " is also an input"},
		{[]string{"-o", link}, "is the same file as the input " + probes},
		{[]string{"-o", filepath.Join(dir, "p.json"), "--report", hard}, "--report " + hard + " is the same file as the input " + probes},
		{[]string{"-o", filepath.Join(dir, "p.json"), "--checkpoint", model}, "--checkpoint " + model + " is also an input"},
		{[]string{"-o", filepath.Join(dir, "p.json"), "--checkpoint", filepath.Join(dir, "p.json")}, "-o and --checkpoint are both"},
	} {
		_, _, err := runCLI(t, "", append(search, c.args...)...)
		require.ErrorContains(t, err, c.want, c.args)
	}
	scan := []string{"scan", "-m", "builtin:tiny", "--target", "math", "--layers", "1", "--proj", "up_proj", "-q"}
	_, _, err = runCLI(t, "", append(scan, "--budget", "2", "-o", model)...)
	require.ErrorContains(t, err, "-o "+model+" is also an input")
	_, _, err = runCLI(t, "", "scan", "-m", "builtin:tiny", "--target", probes, "--layers", "1", "--scores", link, "-q")
	require.ErrorContains(t, err, "--scores "+link+" is the same file as the input "+probes)
	_, _, err = runCLI(t, "", append(scan, "--budget", "2", "-o", filepath.Join(dir, "s.json"), "--scores", filepath.Join(dir, "s.json"))...)
	require.ErrorContains(t, err, "-o and --scores are both")

	// The checkpoint being resumed is an input of -o and --report.
	ck := filepath.Join(dir, "c.ckpt.json")
	err = runCLICause(t, signalError{syscall.SIGTERM}, append(search, "-o", filepath.Join(dir, "c.json"), "--checkpoint", ck)...)
	requireExit(t, err, 143, "SIGTERM")
	_, _, err = runCLI(t, "", "search", "-m", "builtin:tiny", "--resume", ck, "-o", ck, "-q")
	require.ErrorContains(t, err, "-o "+ck+" is also an input")

	after, err := os.ReadFile(model)
	require.NoError(t, err)
	require.Equal(t, before, after, "the model is untouched")
	data, err := os.ReadFile(probes)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(data), "["), "the probe file is untouched")
}

// TestSearchChecksOutputsFirst: an output that cannot be written is refused before the search
// starts, with the flag and the path named.
func TestSearchChecksOutputsFirst(t *testing.T) {
	dir := t.TempDir()
	search := []string{"search", "-m", "builtin:tiny", "--target", "math", "--iters", "5", "-q"}
	missing := filepath.Join(dir, "missing", "p.json")
	_, _, err := runCLI(t, "", append(search, "-o", missing)...)
	require.ErrorContains(t, err, "-o "+missing+": directory "+filepath.Dir(missing)+" does not exist")
	_, _, err = runCLI(t, "", append(search, "-o", filepath.Join(dir, "p.json"), "--checkpoint", dir)...)
	require.ErrorContains(t, err, "--checkpoint "+dir+": is a directory")
	_, _, err = runCLI(t, "", append(search, "-o", filepath.Join(dir, "p.json"), "--report", filepath.Join(dir, "p.json", "r.json"))...)
	require.ErrorContains(t, err, "--report")
	_, _, err = runCLI(t, "", "scan", "-m", "builtin:tiny", "--target", "math", "--layers", "1", "--scores", missing, "-q")
	require.ErrorContains(t, err, "--scores "+missing+": directory")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing written, no probe file left behind")
}

// TestSearchFinalWriteFailure: when the patch cannot be written at the end, it is printed on
// stderr in the patch file's form, the checkpoint is kept, and the error names the file (not a
// temporary one) and says how to go on.
func TestSearchFinalWriteFailure(t *testing.T) {
	m, err := loadPath("builtin:tiny")
	require.NoError(t, err)
	defer m.Close()
	opts := bfs.DefaultSearchOptions()
	opts.Target, err = bfs.LoadProbeList("math")
	require.NoError(t, err)
	opts.Iters = 30
	res, err := bfs.Search(context.Background(), runtime.NewCPU(m), opts)
	require.NoError(t, err)
	require.NotEmpty(t, res.Patch.Flips, "a patch worth saving")

	dir := t.TempDir()
	gone := filepath.Join(dir, "gone")
	files := searchFiles{out: filepath.Join(gone, "p.json"), report: filepath.Join(dir, "p.report.json"), checkpoint: filepath.Join(dir, "p.ckpt.json")}
	var stderr bytes.Buffer
	err = files.save(&stderr, res)
	require.ErrorContains(t, err, "could not write the patch to "+files.out)
	require.ErrorContains(t, err, "--resume "+files.checkpoint)
	require.NotContains(t, err.Error(), ".tmp")
	text := stderr.String()
	begin := strings.Index(text, "-----8<----- patch -----8<-----\n")
	end := strings.Index(text, "-----8<----- end -----8<-----")
	require.True(t, begin >= 0 && end > begin, text)
	printed, err := patch.Parse([]byte(text[begin+len("-----8<----- patch -----8<-----\n"):end]), "stderr")
	require.NoError(t, err)
	require.Equal(t, res.Patch.Flips, printed.Flips)
	ck, err := bfs.LoadCheckpoint(files.checkpoint)
	require.NoError(t, err, "the checkpoint is kept")
	require.Equal(t, files.out, ck.Output)
	require.FileExists(t, files.report)
}

// TestResumeRemovesSupersededFiles: resumed into another -o, a finished search removes the
// checkpoint and the interrupted run's partial patch and report, but not a file the user has
// changed since.
func TestResumeRemovesSupersededFiles(t *testing.T) {
	dir := t.TempDir()
	part, ck := filepath.Join(dir, "part.json"), filepath.Join(dir, "part.ckpt.json")
	args := []string{"search", "-m", "builtin:tiny", "--target", "math", "--control", "knowledge", "--iters", "10", "-q"}
	requireExit(t, runCLICause(t, signalError{os.Interrupt}, append(args, "-o", part)...), 130, "SIGINT")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "part.report.json"), []byte("{\"mine\": true}\n"), 0o644))

	final := filepath.Join(dir, "final.json")
	_, stderr, err := runCLI(t, "", "search", "-m", "builtin:tiny", "--resume", ck, "-o", final, "-q")
	require.NoError(t, err, stderr)
	require.FileExists(t, final)
	require.FileExists(t, filepath.Join(dir, "final.report.json"))
	require.NoFileExists(t, ck)
	require.NoFileExists(t, part, "the partial patch is superseded")
	require.FileExists(t, filepath.Join(dir, "part.report.json"), "a changed file is kept")
}

// TestTargetControlDistinct: the same probe set (by name, or the same file under another name)
// cannot be both target and control; scan's --control help shows its real default.
func TestTargetControlDistinct(t *testing.T) {
	dir := t.TempDir()
	probes := writeProbeFile(t, dir, "p.json")
	link := filepath.Join(dir, "l.json")
	require.NoError(t, os.Symlink(probes, link))
	for _, cmd := range []string{"search", "scan"} {
		_, _, err := runCLI(t, "", cmd, "-m", "builtin:tiny", "--target", "math,code", "--control", "code", "-q")
		require.ErrorContains(t, err, "--target and --control both name code", cmd)
		_, _, err = runCLI(t, "", cmd, "-m", "builtin:tiny", "--target", probes, "--control", "knowledge,"+link, "-q")
		require.ErrorContains(t, err, "are the same file", cmd)
	}
	_, _, err := runCLI(t, "", "demo", "--target", "math", "--control", "math", "-q")
	require.ErrorContains(t, err, "--target and --control both name math")

	out, _, err := runCLI(t, "", "scan", "--help")
	require.NoError(t, err)
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "--control") {
			line = l
		}
	}
	require.Contains(t, line, `(default: "none")`)
	require.NotContains(t, line, "other built-in sets")
	out, _, err = runCLI(t, "", "search", "--help")
	require.NoError(t, err)
	require.Contains(t, out, "(default: the other built-in sets of math, code, knowledge)")
}
