package patch

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// Flip is one XOR of sign bits in one output row of one projection.
//
// A row flip has Group == -1 and Col == -1, a group flip has Group >= 0 and Col == -1, and a
// single-weight (bit) flip has Group == -1 and Col >= 0. Use RowFlip, GroupFlip and BitFlip to
// build one: the zero Flip has Group == 0 and Col == 0 and is invalid.
//
// It is the one flip address of bankai-metal: patches, search reports, scan results and
// checkpoints hold it (as JSON with these lower-case keys), and backends take it in a FlipSpan.
type Flip struct {
	Layer int    `json:"layer"` // decoder layer
	Proj  string `json:"proj"`  // Hugging Face projection name, e.g. "up_proj"
	Row   int    `json:"row"`   // output row
	Group int    `json:"group"` // 128-weight group within the row, or -1 for the whole row
	Col   int    `json:"col"`   // column of a single-weight flip, or -1
}

// Kind is the granularity of a flip (q1.KindOf decodes it from Group and Col).
type Kind = q1.Kind

// The granularities, as q1 defines them.
const (
	KindInvalid = q1.KindInvalid
	KindRow     = q1.KindRow
	KindGroup   = q1.KindGroup
	KindBit     = q1.KindBit
)

// RowFlip returns the flip of every sign bit of row row.
func RowFlip(layer int, proj string, row int) Flip {
	return Flip{Layer: layer, Proj: proj, Row: row, Group: -1, Col: -1}
}

// GroupFlip returns the flip of the 128 sign bits of group group of row row.
func GroupFlip(layer int, proj string, row, group int) Flip {
	return Flip{Layer: layer, Proj: proj, Row: row, Group: group, Col: -1}
}

// BitFlip returns the flip of the single sign bit (row, col).
func BitFlip(layer int, proj string, row, col int) Flip {
	return Flip{Layer: layer, Proj: proj, Row: row, Group: -1, Col: col}
}

// Kind reports the granularity of f, or KindInvalid.
func (f Flip) Kind() Kind { return q1.KindOf(f.Group, f.Col) }

// String formats f as "L3.up_proj row 7", "L3.up_proj row 7 group 2" or "L3.up_proj row 7 col 300".
func (f Flip) String() string {
	s := fmt.Sprintf("L%d.%s row %d", f.Layer, f.Proj, f.Row)
	switch f.Kind() {
	case KindGroup:
		s += fmt.Sprintf(" group %d", f.Group)
	case KindBit:
		s += fmt.Sprintf(" col %d", f.Col)
	case KindInvalid:
		s += fmt.Sprintf(" group %d col %d (invalid)", f.Group, f.Col)
	}
	return s
}

// projTable is the one list of the seven projections of a Qwen3 layer, in layer order (the
// order flips sort in): the Hugging Face name a flip uses, and the GGUF tensor stem.
var projTable = [NumProj]struct{ hf, gguf string }{
	{"q_proj", "attn_q"}, {"k_proj", "attn_k"}, {"v_proj", "attn_v"}, {"o_proj", "attn_output"},
	{"gate_proj", "ffn_gate"}, {"up_proj", "ffn_up"}, {"down_proj", "ffn_down"},
}

// NumProj is the number of projections in a decoder layer.
const NumProj = 7

// Projections returns the seven Hugging Face projection names a flip may address, in order.
func Projections() []string {
	out := make([]string, NumProj)
	for i, p := range projTable {
		out[i] = p.hf
	}
	return out
}

// ProjName returns the Hugging Face name of projection i (0 <= i < NumProj).
func ProjName(i int) string { return projTable[i].hf }

// ProjGGUF returns the GGUF tensor stem of projection i ("ffn_up").
func ProjGGUF(i int) string { return projTable[i].gguf }

// ProjIndex returns the index of a projection given its Hugging Face name (q_proj k_proj
// v_proj o_proj gate_proj up_proj down_proj) or its GGUF name (attn_q attn_k attn_v
// attn_output ffn_gate ffn_up ffn_down).
func ProjIndex(name string) (int, error) {
	for i, p := range projTable {
		if name == p.hf || name == p.gguf {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown projection %q (want one of q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)", name)
}

// CanonicalProj returns the Hugging Face name of a projection given either of its names.
func CanonicalProj(name string) (string, error) {
	i, err := ProjIndex(name)
	if err != nil {
		return "", err
	}
	return projTable[i].hf, nil
}

func projIndex(name string) int {
	if i, err := ProjIndex(name); err == nil {
		return i
	}
	return NumProj
}

// rowKey identifies one output row of one projection.
type rowKey struct {
	layer int
	proj  string
	row   int
}

func (f Flip) key() rowKey { return rowKey{f.Layer, f.Proj, f.Row} }

func (k rowKey) String() string { return fmt.Sprintf("L%d.%s row %d", k.layer, k.proj, k.row) }

// compareKeys orders rows by layer, projection (q k v o gate up down) and row.
func compareKeys(a, b rowKey) int {
	return cmp.Or(cmp.Compare(a.layer, b.layer), cmp.Compare(projIndex(a.proj), projIndex(b.proj)),
		cmp.Compare(a.proj, b.proj), cmp.Compare(a.row, b.row))
}

// compareFlips is the canonical flip order: by row, then the row flip first, then group and bit
// flips by the first column they touch (a group flip before the bits of the same group).
func compareFlips(a, b Flip) int {
	if c := compareKeys(a.key(), b.key()); c != 0 {
		return c
	}
	start := func(f Flip) (int, int) {
		switch f.Kind() {
		case KindRow:
			return -1, 0
		case KindGroup:
			return f.Group * q1.GroupSize, 0
		}
		return f.Col, 1
	}
	as, ak := start(a)
	bs, bk := start(b)
	return cmp.Or(cmp.Compare(as, bs), cmp.Compare(ak, bk))
}

// sortFlips sorts flips into the canonical order in place.
func sortFlips(flips []Flip) { slices.SortFunc(flips, compareFlips) }

// normalize returns f with a Hugging Face projection name, or an error for a malformed flip.
// It checks everything that does not need the model: projection, kind and signs.
func (f Flip) normalize() (Flip, error) {
	p, err := CanonicalProj(f.Proj)
	if err != nil {
		return f, err
	}
	f.Proj = p
	switch {
	case f.Layer < 0:
		return f, fmt.Errorf("negative layer %d", f.Layer)
	case f.Row < 0:
		return f, fmt.Errorf("negative row %d", f.Row)
	case f.Kind() == KindInvalid:
		return f, fmt.Errorf("group %d and col %d: want a row (both -1), group (col -1) or bit (group -1) flip", f.Group, f.Col)
	}
	return f, nil
}

// normalizeFlips checks every flip on its own and rejects a flip that appears twice. Flips of
// different granularity may overlap (a row flip and a bit flip of that row): they compose by XOR.
// It returns a copy with Hugging Face projection names. Errors name the flip index.
func normalizeFlips(flips []Flip) ([]Flip, error) {
	out := make([]Flip, len(flips)) // (n_flips)
	for i, f := range flips {
		n, err := f.normalize()
		if err != nil {
			return nil, fmt.Errorf("flip %d: %w", i, err)
		}
		out[i] = n
	}
	if err := checkDuplicates(out); err != nil {
		return nil, err
	}
	return out, nil
}

// flipOrder is a flip's place in the canonical order (compareFlips) packed into integers, so
// that sorting a million flips is cheap: (layer, projection), row, then the first column
// touched and the kind (a row flip first, a group flip before the bits of that group).
type flipOrder struct {
	layerProj, row, start uint64
	i                     int32 // index of the flip
}

func orderOf(f Flip, i int) flipOrder {
	var start uint64 // row flip
	switch f.Kind() {
	case KindGroup:
		start = uint64(f.Group*q1.GroupSize+1) << 1
	case KindBit:
		start = uint64(f.Col+1)<<1 | 1
	}
	return flipOrder{uint64(f.Layer)<<3 | uint64(projIndex(f.Proj)), uint64(f.Row), start, int32(i)}
}

func compareOrder(a, b flipOrder) int {
	return cmp.Or(cmp.Compare(a.layerProj, b.layerProj), cmp.Compare(a.row, b.row), cmp.Compare(a.start, b.start))
}

// canonicalOrder returns the flips' packed keys sorted into the canonical order. The flips
// must be normalised (Hugging Face projection names).
func canonicalOrder(flips []Flip) []flipOrder {
	keys := make([]flipOrder, len(flips)) // (n_flips)
	for i, f := range flips {
		keys[i] = orderOf(f, i)
	}
	slices.SortFunc(keys, func(a, b flipOrder) int { return cmp.Or(compareOrder(a, b), cmp.Compare(a.i, b.i)) })
	return keys
}

// checkDuplicates rejects a flip listed twice, naming both indices. The flips must be
// normalised.
func checkDuplicates(flips []Flip) error {
	keys := canonicalOrder(flips)
	for k := 1; k < len(keys); k++ {
		if compareOrder(keys[k-1], keys[k]) == 0 {
			i, j := keys[k-1].i, keys[k].i // i < j: ties are sorted by index
			return fmt.Errorf("flip %d: %s duplicates flip %d (a repeated flip cancels itself)", j, flips[j], i)
		}
	}
	return nil
}

// overlaps reports whether two flips of the same row touch a common sign bit.
func overlaps(a, b Flip) bool {
	if a.key() != b.key() {
		return false
	}
	if a.Kind() == KindRow || b.Kind() == KindRow {
		return true
	}
	group := func(f Flip) int {
		if f.Kind() == KindGroup {
			return f.Group
		}
		return f.Col / q1.GroupSize
	}
	if a.Kind() == KindBit && b.Kind() == KindBit {
		return a.Col == b.Col
	}
	return group(a) == group(b)
}
