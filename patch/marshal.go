package patch

import (
	"fmt"

	"github.com/bankai-metal/bankai-metal/internal/atomicfile"
	"github.com/bankai-metal/bankai-metal/internal/pyjson"
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
		o := pyjson.Object{{Key: "layer", Value: f.Layer}, {Key: "proj", Value: f.Proj}, {Key: "row", Value: f.Row}}
		switch f.Kind() {
		case KindRow:
			rows++
		case KindGroup:
			groups++
			o = append(o, pyjson.Member{Key: "group", Value: f.Group})
		case KindBit:
			bits++
			o = append(o, pyjson.Member{Key: "col", Value: f.Col})
		}
		list[i] = o
	}
	meta := pyjson.FromMap(p.Metadata, p.metaOrder)
	var doc pyjson.Object
	if bits == 0 {
		nominal := p.StatsNominal()
		doc = pyjson.Object{
			{Key: "version", Value: 1}, {Key: "format", Value: FormatV1},
			{Key: "name", Value: p.Name}, {Key: "description", Value: p.Description}, {Key: "base_model", Value: p.BaseModel},
			{Key: "flips", Value: list},
			{Key: "stats", Value: pyjson.Object{
				{Key: "n_flips", Value: len(flips)}, {Key: "bits_flipped", Value: nominal.BitsFlipped},
				{Key: "size_bytes", Value: nominal.SizeBytes},
			}},
			{Key: "metadata", Value: meta},
		}
		var ext pyjson.Object
		if p.Fingerprint != "" {
			ext = append(ext, pyjson.Member{Key: "fingerprint", Value: p.Fingerprint})
		}
		if p.BitsFlipped > 0 {
			ext = append(ext, pyjson.Member{Key: "bits_flipped", Value: p.BitsFlipped})
		}
		if ext != nil {
			doc = append(doc, pyjson.Member{Key: extKey, Value: ext})
		}
	} else {
		stats := pyjson.Object{
			{Key: "n_flips", Value: len(flips)}, {Key: "n_rows", Value: rows},
			{Key: "n_groups", Value: groups}, {Key: "n_bits", Value: bits},
		}
		if p.BitsFlipped > 0 {
			stats = append(stats, pyjson.Member{Key: "bits_flipped", Value: p.BitsFlipped})
		}
		doc = pyjson.Object{
			{Key: "version", Value: 2}, {Key: "format", Value: FormatV2},
			{Key: "name", Value: p.Name}, {Key: "description", Value: p.Description}, {Key: "base_model", Value: p.BaseModel},
			{Key: "fingerprint", Value: p.Fingerprint},
			{Key: "flips", Value: list},
			{Key: "stats", Value: stats},
			{Key: "metadata", Value: meta},
		}
	}
	// Python's json.dumps(doc, indent=2), as upstream writes its files.
	data, err := pyjson.Marshal(doc, pyjson.Options{Indent: 2, EnsureASCII: true})
	if err != nil {
		return nil, fmt.Errorf("patch: %s: %w", p.Name, err)
	}
	return data, nil
}

// Save writes the patch to path atomically: it writes a temporary file in the same directory,
// syncs it and renames it over path, so path holds either the old or the complete new file.
func (p *Patch) Save(path string) error {
	data, err := p.Marshal()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(path, data); err != nil {
		return fmt.Errorf("patch: save %s: %w", path, err)
	}
	return nil
}
