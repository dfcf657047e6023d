package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

// modelFlag is -m/--model, shared by every command that loads a model.
var modelFlag = &cli.StringFlag{Name: "model", Aliases: []string{"m"}, Required: true,
	Usage: "model: a GGUF file, an MLX directory, or builtin:tiny", EnvVars: []string{"BANKAI_MODEL"}}

// resolveModel turns builtin:NAME into a generated file in the user cache directory.
func resolveModel(path string) (string, error) {
	name, ok := strings.CutPrefix(path, "builtin:")
	if !ok {
		return path, nil
	}
	if name != "tiny" {
		return "", fmt.Errorf("unknown built-in model %q (available: builtin:tiny)", name)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "bankai-metal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	spec := synth.Tiny()
	p := filepath.Join(dir, fmt.Sprintf("%s-seed%d-v1.gguf", spec.Name, spec.Seed))
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := spec.WriteGGUF(p); err != nil {
		return "", fmt.Errorf("generate %s: %w", path, err)
	}
	return p, nil
}

// loadPath loads a model named like --model (a path or builtin:NAME), without patches.
func loadPath(path string) (*runtime.Model, error) {
	p, err := resolveModel(path)
	if err != nil {
		return nil, err
	}
	return runtime.Load(p)
}

// patchFlags are --patch FILE (repeatable) and --force, for every command that runs a model.
var patchFlags = []cli.Flag{
	&cli.StringSliceFlag{Name: "patch", Usage: "apply an XOR patch file at load (repeatable; patches stack)"},
	&cli.BoolFlag{Name: "force", Usage: "apply patches even if they were made for another model"},
}

// loadModel loads the model named by --model and applies any --patch files.
func loadModel(c *cli.Context) (*runtime.Model, error) {
	m, _, err := loadModelPatched(c)
	return m, err
}

// loadModelPatched loads the model and applies --patch files, returning the registry of
// applied patches (for chat's /patch commands). A patched copy's note tells the registry
// which patches the file already holds and which base they were made for. Warnings go to
// stderr. No backend exists yet, so none is told: one started on the model afterwards sees
// the patched bits, and binding the registry to it (runtime.BindApplied) keeps it up to date
// with later changes.
func loadModelPatched(c *cli.Context) (*runtime.Model, *patch.Applied, error) {
	m, err := loadPath(c.String("model"))
	if err != nil {
		return nil, nil, err
	}
	m.Fingerprint() // of the unpatched model: patches are checked against it
	applied := patch.NewApplied(m)
	if note, err := patch.ParseNote(m.Source.PatchNote); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "warning: %s: %v; ignoring it\n", m.Source.Path, err)
	} else {
		applied.Inherit(note)
	}
	for _, f := range c.StringSlice("patch") {
		if err := applyPatchFile(c, applied, f); err != nil {
			m.Close()
			return nil, nil, err
		}
	}
	return m, applied, nil
}

// applyPatchFile loads a patch file and applies it, printing its warnings to stderr.
func applyPatchFile(c *cli.Context, a *patch.Applied, file string) error {
	_, err := applyPatch(a, file, c.Bool("force"), c.App.ErrWriter)
	return err
}

// applyPatch loads a patch file and applies it, printing its warnings to w.
func applyPatch(a *patch.Applied, file string, force bool, w io.Writer) (*patch.Patch, error) {
	p, err := patch.Load(file)
	if err != nil {
		return nil, err
	}
	n := len(a.Warnings())
	if err := a.Apply(p, force); err != nil {
		return nil, err
	}
	for _, msg := range a.Warnings()[n:] {
		fmt.Fprintln(w, "warning:", msg)
	}
	return p, nil
}
