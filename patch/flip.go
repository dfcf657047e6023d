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
type Flip struct {
	Layer int    // decoder layer
	Proj  string // Hugging Face projection name, e.g. "up_proj"
	Row   int    // output row
	Group int    // 128-weight group within the row, or -1 for the whole row
	Col   int    // column of a single-weight flip, or -1
}

// Kind is the granularity of a flip.
type Kind int

const (
	// KindInvalid is a flip whose Group and Col do not describe any granularity.
	KindInvalid Kind = iota
	// KindRow flips every sign bit of one output row.
	KindRow
	// KindGroup flips the 128 sign bits of one group of one row.
	KindGroup
	// KindBit flips one sign bit.
	KindBit
)

// String returns "row", "group", "bit" or "invalid".
func (k Kind) String() string {
	switch k {
	case KindRow:
		return "row"
	case KindGroup:
		return "group"
	case KindBit:
		return "bit"
	}
	return "invalid"
}

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
func (f Flip) Kind() Kind {
	switch {
	case f.Group == -1 && f.Col == -1:
		return KindRow
	case f.Group >= 0 && f.Col == -1:
		return KindGroup
	case f.Group == -1 && f.Col >= 0:
		return KindBit
	}
	return KindInvalid
}

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

// projOrder lists the Hugging Face projection names in the order used for sorting.
var projOrder = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// ggufProj maps GGUF tensor stems to Hugging Face projection names.
var ggufProj = map[string]string{
	"attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj", "attn_output": "o_proj",
	"ffn_gate": "gate_proj", "ffn_up": "up_proj", "ffn_down": "down_proj",
}

// Projections returns the seven Hugging Face projection names a flip may address.
func Projections() []string { return slices.Clone(projOrder) }

// CanonicalProj returns the Hugging Face name of a projection given either its Hugging Face name
// (q_proj k_proj v_proj o_proj gate_proj up_proj down_proj) or its GGUF name (attn_q attn_k
// attn_v attn_output ffn_gate ffn_up ffn_down).
func CanonicalProj(name string) (string, error) {
	if slices.Contains(projOrder, name) {
		return name, nil
	}
	if hf, ok := ggufProj[name]; ok {
		return hf, nil
	}
	return "", fmt.Errorf("unknown projection %q", name)
}

func projIndex(name string) int {
	if i := slices.Index(projOrder, name); i >= 0 {
		return i
	}
	return len(projOrder)
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
