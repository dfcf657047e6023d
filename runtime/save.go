package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bankai-metal/bankai-metal/runtime/gguf"
)

// PatchNoteKey is the GGUF metadata key in which a patched copy records what was applied to
// it; PatchNoteFile is the same record in an MLX directory. The note is part of the
// fingerprint, so a patch made for the base model is not silently applied to a patched copy.
const (
	PatchNoteKey  = "bankai.patches"
	PatchNoteFile = "bankai_patches.json"
)

// SaveCopy writes the model as it is in memory (sign bits flipped by patches included) to out:
// a GGUF file for a GGUF model, a new directory for an MLX one. note (JSON text) is recorded
// under PatchNoteKey / PatchNoteFile. The write is atomic: a temporary file or directory beside
// out, synced, then renamed; on failure nothing is left behind and the source is never touched.
func (m *Model) SaveCopy(out, note string) error {
	if abs, _ := filepath.Abs(out); abs == mustAbs(m.Source.Path) {
		return fmt.Errorf("save: %s is the model being read; choose another output", out)
	}
	switch {
	case m.Source.tok.gguf != nil:
		return saveGGUF(m.Source.tok.gguf, out, note)
	case m.mlx != nil:
		return m.saveMLX(out, note)
	}
	return errors.New("save: model has no source file")
}

func mustAbs(p string) string {
	a, _ := filepath.Abs(p)
	return a
}

func saveGGUF(f *gguf.File, out, note string) error {
	var kvs []gguf.KV
	for _, kv := range f.KV {
		if kv.Key != PatchNoteKey {
			kvs = append(kvs, kv)
		}
	}
	if note != "" {
		kvs = append(kvs, gguf.NewKV(PatchNoteKey, note))
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
func (m *Model) saveMLX(out, note string) (err error) {
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("save: %s already exists", out)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".bankai-save-*")
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	names, data := m.mlx.WeightFiles()
	weights := map[string]bool{PatchNoteFile: true}
	for i, n := range names {
		weights[n] = true
		if err := writeSynced(filepath.Join(tmp, n), data[i]); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(m.mlx.Dir)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	for _, e := range entries {
		if weights[e.Name()] || !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.mlx.Dir, e.Name()))
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		if err := writeSynced(filepath.Join(tmp, e.Name()), b); err != nil {
			return err
		}
	}
	if note != "" {
		if err := writeSynced(filepath.Join(tmp, PatchNoteFile), []byte(note)); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("save: %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save: %s: %w", path, err)
	}
	return f.Close()
}
