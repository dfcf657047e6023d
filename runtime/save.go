package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bankai-metal/bankai-metal/internal/atomicfile"
	"github.com/bankai-metal/bankai-metal/internal/fileid"
	"github.com/bankai-metal/bankai-metal/runtime/gguf"
)

// PatchNoteKey is the GGUF metadata key in which a patched copy records what was applied to
// it; PatchNoteFile is the same record in an MLX directory. The note is part of the
// fingerprint, so a patch made for the base model is not silently applied to a patched copy.
const (
	PatchNoteKey  = "bankai.patches"
	PatchNoteFile = "bankai_patches.json"
)

// ErrOutputExists is returned by SaveCopy when the output exists and Overwrite is not set.
var ErrOutputExists = errors.New("output already exists")

// SaveOptions are SaveCopy's settings.
type SaveOptions struct {
	// Note (JSON text) is recorded under PatchNoteKey / PatchNoteFile; "" records none, and
	// removes the source's.
	Note string
	// Overwrite replaces an existing output: a file for GGUF, an MLX model directory (one with
	// a config.json) for MLX. Without it an existing output is ErrOutputExists, for both.
	Overwrite bool
}

// SaveCopy writes the model as it is in memory (sign bits flipped by patches included) to out:
// a GGUF file for a GGUF model, a new directory for an MLX one. The write is atomic: a
// temporary file or directory beside out, synced, then renamed; on failure or on SIGINT or
// SIGTERM nothing is left behind. The source is never touched: an out that is the source (by
// file identity: a symlink or hard link counts) is refused. With the note unchanged, saving a
// GGUF file written by a standard writer reproduces it byte for byte, so reverting every patch
// gives back the original.
func (m *Model) SaveCopy(out string, opt SaveOptions) error {
	if err := fileid.CheckOutput("save: output", out, m.Source.Path); err != nil {
		return err
	}
	switch {
	case m.Source.tok.gguf != nil:
		return saveGGUF(m.Source.tok.gguf, out, opt)
	case m.mlx != nil:
		return m.saveMLX(out, opt)
	}
	return errors.New("save: model has no source file")
}

func saveGGUF(f *gguf.File, out string, opt SaveOptions) error {
	if st, err := os.Stat(out); err == nil {
		if st.IsDir() {
			return fmt.Errorf("save: %s is a directory; a GGUF model is written as one file", out)
		}
		if !opt.Overwrite {
			return fmt.Errorf("save: %s: %w", out, ErrOutputExists)
		}
	}
	// The note keeps its place among the keys (a copy of a copy differs only in the note),
	// or goes last.
	var kvs []gguf.KV
	placed := opt.Note == ""
	for _, kv := range f.KV {
		if kv.Key != PatchNoteKey {
			kvs = append(kvs, kv)
		} else if !placed {
			kvs = append(kvs, gguf.NewKV(PatchNoteKey, opt.Note))
			placed = true
		}
	}
	if !placed {
		kvs = append(kvs, gguf.NewKV(PatchNoteKey, opt.Note))
	}
	ts := make([]gguf.WriteTensor, len(f.Tensors))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		ts[i] = gguf.WriteTensor{Name: t.Name, Dims: t.Dims, Type: t.Type, Data: f.Data(t)}
	}
	if err := gguf.WriteFile(out, kvs, ts); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// saveMLX copies the directory: side files as they are, weight files from the mappings.
func (m *Model) saveMLX(out string, opt SaveOptions) error {
	if strings.EqualFold(filepath.Ext(out), ".gguf") {
		return fmt.Errorf("save: %s: an MLX model is written as a directory, not a .gguf file; choose a directory name", out)
	}
	if st, err := os.Stat(out); err == nil {
		switch {
		case !st.IsDir():
			return fmt.Errorf("save: %s is a file; an MLX model is written as a directory", out)
		case !opt.Overwrite:
			return fmt.Errorf("save: %s: %w", out, ErrOutputExists)
		}
		if _, err := os.Stat(filepath.Join(out, "config.json")); err != nil {
			return fmt.Errorf("save: %s is a directory but not an MLX model (no config.json); refusing to replace it", out)
		}
	}
	err := atomicfile.WriteDir(out, opt.Overwrite, func(ctx context.Context, tmp string) error {
		names, data := m.mlx.WeightFiles()
		skip := map[string]bool{PatchNoteFile: true}
		for i, n := range names {
			skip[n] = true
			if err := atomicfile.WriteFileIn(ctx, tmp, n, data[i]); err != nil {
				return err
			}
		}
		entries, err := os.ReadDir(m.mlx.Dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if skip[e.Name()] || !e.Type().IsRegular() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(m.mlx.Dir, e.Name()))
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFileIn(ctx, tmp, e.Name(), b); err != nil {
				return err
			}
		}
		if opt.Note != "" {
			return atomicfile.WriteFileIn(ctx, tmp, PatchNoteFile, []byte(opt.Note))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save: %s: %w", out, err)
	}
	return nil
}
