package patch

import (
	"fmt"
	"os"
	"path/filepath"
)

// Marshal encodes the patch. With only row and group flips it writes upstream's canonical
// bankai_row_xor_v1 shape exactly as upstream's writer does (key order, 2-space indent, nominal
// stats), adding a top-level "bankai_metal" object (ignored by upstream's loader) only when the
// fingerprint or exact bit count is known. With any bit flip it writes bankai_xor_v2. The flips
// are written in p.Flips order with Hugging Face projection names.
func (p *Patch) Marshal() ([]byte, error) {
	flips, err := normalizeFlips(p.Flips)
	if err != nil {
		return nil, fmt.Errorf("patch: %s: %w", p.Name, err)
	}
	if len(flips) > MaxFlips {
		return nil, fmt.Errorf("patch: %s: %d flips, more than %d", p.Name, len(flips), MaxFlips)
	}
	if p.BitsFlipped < 0 {
		return nil, fmt.Errorf("patch: %s: negative BitsFlipped %d", p.Name, p.BitsFlipped)
	}
	var rows, groups, bits int
	list := make([]any, len(flips)) // (n_flips) flip objects
	for i, f := range flips {
		o := object{{"layer", f.Layer}, {"proj", f.Proj}, {"row", f.Row}}
		switch f.Kind() {
		case KindRow:
			rows++
		case KindGroup:
			groups++
			o = append(o, member{"group", f.Group})
		case KindBit:
			bits++
			o = append(o, member{"col", f.Col})
		}
		list[i] = o
	}
	meta := orderedObject(p.Metadata, p.metaOrder)
	var doc object
	if bits == 0 {
		nominal := p.StatsNominal()
		doc = object{
			{"version", 1}, {"format", FormatV1},
			{"name", p.Name}, {"description", p.Description}, {"base_model", p.BaseModel},
			{"flips", list},
			{"stats", object{{"n_flips", len(flips)}, {"bits_flipped", nominal.BitsFlipped}, {"size_bytes", nominal.SizeBytes}}},
			{"metadata", meta},
		}
		var ext object
		if p.Fingerprint != "" {
			ext = append(ext, member{"fingerprint", p.Fingerprint})
		}
		if p.BitsFlipped > 0 {
			ext = append(ext, member{"bits_flipped", p.BitsFlipped})
		}
		if ext != nil {
			doc = append(doc, member{extKey, ext})
		}
	} else {
		stats := object{{"n_flips", len(flips)}, {"n_rows", rows}, {"n_groups", groups}, {"n_bits", bits}}
		if p.BitsFlipped > 0 {
			stats = append(stats, member{"bits_flipped", p.BitsFlipped})
		}
		doc = object{
			{"version", 2}, {"format", FormatV2},
			{"name", p.Name}, {"description", p.Description}, {"base_model", p.BaseModel},
			{"fingerprint", p.Fingerprint},
			{"flips", list},
			{"stats", stats},
			{"metadata", meta},
		}
	}
	var w pyWriter
	if err := w.value(doc, 0); err != nil {
		return nil, fmt.Errorf("patch: %s: %w", p.Name, err)
	}
	return w.buf.Bytes(), nil
}

// Save writes the patch to path atomically: it writes a temporary file in the same directory,
// syncs it and renames it over path, so path holds either the old or the complete new file.
func (p *Patch) Save(path string) error {
	data, err := p.Marshal()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("patch: save %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("patch: save %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("patch: save %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("patch: save %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("patch: save %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("patch: save %s: %w", path, err)
	}
	done = true
	// Make the rename itself durable; not every platform can sync a directory, so best effort.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
