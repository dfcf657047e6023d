package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

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

// loadModel loads the model named by --model.
func loadModel(c *cli.Context) (*runtime.Model, error) {
	p, err := resolveModel(c.String("model"))
	if err != nil {
		return nil, err
	}
	return runtime.Load(p)
}
