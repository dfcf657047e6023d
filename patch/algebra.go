package patch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// sb is the number of sign bytes of one group (16).
const sb = q1.GroupSignBytes

// forEachRow calls fn once per distinct row touched by flips (in canonical row order) with the
// indices of that row's flips and the row's XOR mask: Groups*16 bytes laid out like the sign bytes
// of the row (group g at mask[16g:16g+16], column 128g+j at bit j%8 of byte j/8). The mask is
// reused between calls. flips and mats come from resolve.
func forEachRow(flips []Flip, mats []*q1.Matrix, fn func(k rowKey, m *q1.Matrix, idx []int, mask []byte)) {
	order := make([]int, len(flips)) // (n_flips) flip indices sorted by row
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return compareKeys(flips[i].key(), flips[j].key()) })
	var mask []byte // (groups*16) XOR mask of the current row
	for start := 0; start < len(order); {
		k := flips[order[start]].key()
		end := start + 1
		for end < len(order) && flips[order[end]].key() == k {
			end++
		}
		m := mats[order[start]]
		mask = slices.Grow(mask[:0], m.Groups*sb)[:m.Groups*sb]
		clear(mask)
		for _, i := range order[start:end] {
			f := flips[i]
			switch f.Kind() {
			case KindRow:
				for b := range mask {
					mask[b] ^= 0xff
				}
			case KindGroup:
				for b := range sb {
					mask[f.Group*sb+b] ^= 0xff
				}
			case KindBit:
				j := f.Col % q1.GroupSize
				mask[f.Col/q1.GroupSize*sb+j/8] ^= 1 << (j % 8)
			}
		}
		fn(k, m, order[start:end], mask)
		start = end
	}
}

// emitRow turns one row's flip set into canonical flips: a row flip when whole, then for each
// group in gs (ascending) the bits whose state differs from the row state: as bit flips when at
// most 64 differ, else as a group flip plus bit flips for the bits that do not differ (a group
// flip alone when all 128 differ). Flips compose by XOR, so both forms mean the same bits.
func emitRow(k rowKey, whole bool, gs []int, mask func(g int) [sb]byte, out []Flip) []Flip {
	if whole {
		out = append(out, RowFlip(k.layer, k.proj, k.row))
	}
	for _, g := range gs {
		m := mask(g)
		n := 0
		for b := range m {
			if whole {
				m[b] ^= 0xff
			}
			n += bits.OnesCount8(m[b])
		}
		want := byte(1) // emit the bits that differ...
		if n > q1.GroupSize/2 {
			out = append(out, GroupFlip(k.layer, k.proj, k.row, g))
			want = 0 // ...or, after a group flip, the bits that do not
		}
		if n == 0 {
			continue
		}
		for j := range q1.GroupSize {
			if m[j/8]>>(j%8)&1 == want {
				out = append(out, BitFlip(k.layer, k.proj, k.row, g*q1.GroupSize+j))
			}
		}
	}
	return out
}

// groupCost is the number of flips emitRow needs for a group with n differing bits.
func groupCost(n int) int {
	if n > q1.GroupSize/2 {
		return 1 + q1.GroupSize - n
	}
	return n
}

// rowCount counts, for one row, how often each region was flipped across stacked patches.
// Memory stays proportional to the input flips.
type rowCount struct {
	rows   int                 // row flips
	groups map[int]*groupCount // groups with group or bit flips
}

type groupCount struct {
	n    int     // group flips
	bits []uint8 // column within the group of each bit flip (repeats allowed)
}

// Stack returns the XOR of the patches and the flips that cancelled: the bits flipped an even
// number of times (at least twice), which end up unchanged. It works without the model: every
// row is kept as "whole-row flips, plus per-group and per-bit flips", so a row flip and a bit
// flip of that row combine exactly (into a row flip plus that bit flip, which compose by XOR).
// The result is in canonical order and does not depend on the order of ps. Patches made for
// different models (different non-empty fingerprints) cannot be stacked.
func Stack(ps ...*Patch) (*Patch, []Flip, error) {
	if len(ps) == 0 {
		return nil, nil, errors.New("patch: stack: no patches")
	}
	counts := map[rowKey]*rowCount{}
	var names, bases []string
	fp, fpFrom := "", ""
	for _, p := range ps {
		if p == nil {
			return nil, nil, errors.New("patch: stack: nil patch")
		}
		flips, err := normalizeFlips(p.Flips)
		if err != nil {
			return nil, nil, fmt.Errorf("patch: stack: %s: %w", p.Name, err)
		}
		if p.Fingerprint != "" {
			if fp != "" && p.Fingerprint != fp {
				return nil, nil, fmt.Errorf("patch: stack: %q is for model %s but %q is for model %s", fpFrom, fp, p.Name, p.Fingerprint)
			}
			fp, fpFrom = p.Fingerprint, p.Name
		}
		names = append(names, p.Name)
		if !slices.Contains(bases, p.BaseModel) {
			bases = append(bases, p.BaseModel)
		}
		for _, f := range flips {
			rc := counts[f.key()]
			if rc == nil {
				rc = &rowCount{groups: map[int]*groupCount{}}
				counts[f.key()] = rc
			}
			if f.Kind() == KindRow {
				rc.rows++
				continue
			}
			g := f.Group
			if f.Kind() == KindBit {
				g = f.Col / q1.GroupSize
			}
			gc := rc.groups[g]
			if gc == nil {
				gc = &groupCount{}
				rc.groups[g] = gc
			}
			if f.Kind() == KindGroup {
				gc.n++
			} else {
				gc.bits = append(gc.bits, uint8(f.Col%q1.GroupSize))
			}
		}
	}
	keys := make([]rowKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	var flips, cancelled []Flip
	for _, k := range keys {
		rc := counts[k]
		gs := make([]int, 0, len(rc.groups))
		for g := range rc.groups {
			gs = append(gs, g)
		}
		slices.Sort(gs)
		// times returns a mask of the bits of group g whose flip count satisfies keep.
		times := func(keep func(n int) bool) func(g int) [sb]byte {
			return func(g int) [sb]byte {
				var m [sb]byte
				var c [q1.GroupSize]int // flips of each bit of the group
				gc := rc.groups[g]
				for j := range c {
					c[j] = rc.rows + gc.n
				}
				for _, j := range gc.bits {
					c[j]++
				}
				for j := range c {
					if keep(c[j]) {
						m[j/8] |= 1 << (j % 8)
					}
				}
				return m
			}
		}
		odd := func(n int) bool { return n%2 == 1 }
		gone := func(n int) bool { return n >= 2 && n%2 == 0 }
		flips = emitRow(k, odd(rc.rows), gs, times(odd), flips)
		cancelled = emitRow(k, gone(rc.rows), gs, times(gone), cancelled)
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	slices.Sort(bases)
	stacked := make([]any, len(sorted))
	for i, n := range sorted {
		stacked[i] = n
	}
	out := &Patch{
		Name:        strings.Join(sorted, "+"),
		Description: "XOR of " + strings.Join(sorted, ", "),
		BaseModel:   strings.Join(bases, ", "),
		Fingerprint: fp,
		Flips:       flips,
		Metadata:    map[string]any{"stacked": stacked},
	}
	return out, cancelled, nil
}

// Diff returns the patch that maps a's sign bits to b's. The models must have the same layers,
// projections, shapes and scales (a patch cannot change a scale). Each changed row is written in
// whichever form has fewer flips: directly (a group flip per wholly changed group, a bit flip
// per other changed weight; a row flip when the whole row changed), or as a row flip plus the
// groups and bits that did not change. The patch carries a's fingerprint and the exact
// BitsFlipped; more than MaxFlips flips is an error.
func Diff(a, b Target) (*Patch, error) {
	if a.NumLayers() != b.NumLayers() {
		return nil, fmt.Errorf("patch: diff: %d layers vs %d", a.NumLayers(), b.NumLayers())
	}
	var flips []Flip
	var total int64
	var d []byte // (groups*16) XOR of one row's sign bytes
	for l := range a.NumLayers() {
		for _, proj := range Projections() {
			ma, err := a.Matrix(l, proj)
			if err != nil {
				return nil, fmt.Errorf("patch: diff: first model: L%d.%s: %w", l, proj, err)
			}
			mb, err := b.Matrix(l, proj)
			if err != nil {
				return nil, fmt.Errorf("patch: diff: second model: L%d.%s: %w", l, proj, err)
			}
			if ma == nil || mb == nil {
				return nil, fmt.Errorf("patch: diff: L%d.%s: no matrix", l, proj)
			}
			if ma.Rows != mb.Rows || ma.Cols != mb.Cols {
				return nil, fmt.Errorf("patch: diff: L%d.%s: shape %dx%d vs %dx%d", l, proj, ma.Rows, ma.Cols, mb.Rows, mb.Cols)
			}
			d = slices.Grow(d[:0], ma.Groups*sb)[:ma.Groups*sb]
			for r := range ma.Rows {
				changed := false
				for g := range ma.Groups {
					if !sameScale(ma, mb, r, g) {
						return nil, fmt.Errorf("patch: diff: L%d.%s row %d group %d: scales differ (%g vs %g); a patch only changes sign bits",
							l, proj, r, g, ma.Scale(r, g), mb.Scale(r, g))
					}
					sa, sbits := ma.GroupSigns(r, g), mb.GroupSigns(r, g)
					lo := binary.LittleEndian.Uint64(sa) ^ binary.LittleEndian.Uint64(sbits)
					hi := binary.LittleEndian.Uint64(sa[8:]) ^ binary.LittleEndian.Uint64(sbits[8:])
					binary.LittleEndian.PutUint64(d[g*sb:], lo)
					binary.LittleEndian.PutUint64(d[g*sb+8:], hi)
					changed = changed || lo|hi != 0
				}
				if !changed {
					continue
				}
				total += popcount(d)
				flips = compressRow(rowKey{l, proj, r}, ma.Groups, d, flips)
				if len(flips) > MaxFlips {
					return nil, fmt.Errorf("patch: diff: more than %d flips: the models are not a sparse patch apart", MaxFlips)
				}
			}
		}
	}
	fa, fb := a.Fingerprint(), b.Fingerprint()
	return &Patch{
		Name:        "diff",
		Description: fmt.Sprintf("sign-bit difference from model %s to model %s", fa, fb),
		BaseModel:   "unknown",
		Fingerprint: fa,
		Flips:       flips,
		Metadata:    map[string]any{},
		BitsFlipped: total,
	}, nil
}

// sameScale reports whether group (r, g) has the same scale in both matrices.
func sameScale(ma, mb *q1.Matrix, r, g int) bool {
	if ma.Kind == mb.Kind {
		oa, ob := (r*ma.Groups+g)*ma.ScaleStride, (r*mb.Groups+g)*mb.ScaleStride
		return ma.Scales[oa] == mb.Scales[ob] && ma.Scales[oa+1] == mb.Scales[ob+1]
	}
	return math.Float32bits(ma.Scale(r, g)) == math.Float32bits(mb.Scale(r, g))
}

// compressRow appends the flips of one changed row (d = XOR mask, groups*16 bytes), choosing the
// direct form or the row-flip-plus-exceptions form, whichever has fewer flips (direct on a tie).
func compressRow(k rowKey, groups int, d []byte, out []Flip) []Flip {
	direct, complement := 0, 1
	for g := range groups {
		n := 0
		for _, x := range d[g*sb : (g+1)*sb] {
			n += bits.OnesCount8(x)
		}
		direct += groupCost(n)
		complement += groupCost(q1.GroupSize - n)
	}
	whole := complement <= direct // on a tie (one group per row) prefer the row flip
	var touched []int
	for g := range groups {
		if whole || [sb]byte(d[g*sb:(g+1)*sb]) != [sb]byte{} {
			touched = append(touched, g)
		}
	}
	return emitRow(k, whole, touched, func(g int) [sb]byte { return [sb]byte(d[g*sb : (g+1)*sb]) }, out)
}

// State is the result of Verify.
type State int

const (
	// StateNotApplied means none of the patch's bits differ from the base.
	StateNotApplied State = iota
	// StateApplied means every bit the patch flips differs from the base.
	StateApplied
	// StatePartial means some but not all of the patch's bits differ from the base.
	StatePartial
)

// String returns "not applied", "applied" or "partial".
func (s State) String() string {
	switch s {
	case StateApplied:
		return "applied"
	case StatePartial:
		return "partial"
	}
	return "not applied"
}

// Verify reports whether p is applied to t, by comparing the bits p flips in t with the same
// bits in base, the unpatched model. Sign bits carry no memory of what was flipped, so there is
// no way to verify without the base. Only the bits p flips are examined: other differences
// (another patch) are not reported. A patch with no net flips is reported as applied. Shapes
// and the scales of the touched rows must agree, and base must match p's fingerprint if it has one.
func Verify(t Target, base Target, p *Patch) (State, error) {
	flips, mats, err := resolve(t, p.Flips, true)
	if err != nil {
		return 0, fmt.Errorf("patch: verify %s: %w", p.Name, err)
	}
	if fp := base.Fingerprint(); p.Fingerprint != "" && fp != p.Fingerprint {
		return 0, fmt.Errorf("patch: verify %s: made for model %s, base is model %s", p.Name, p.Fingerprint, fp)
	}
	_, bmats, err := resolve(base, flips, false)
	if err != nil {
		return 0, fmt.Errorf("patch: verify %s: base: %w", p.Name, err)
	}
	for i, m := range mats {
		if bm := bmats[i]; m.Rows != bm.Rows || m.Cols != bm.Cols {
			return 0, fmt.Errorf("patch: verify %s: L%d.%s: shape %dx%d, base %dx%d", p.Name, flips[i].Layer, flips[i].Proj, m.Rows, m.Cols, bm.Rows, bm.Cols)
		}
	}
	var hit, total int64
	forEachRow(flips, mats, func(k rowKey, m *q1.Matrix, idx []int, mask []byte) {
		bm := bmats[idx[0]]
		for g := range m.Groups {
			if err == nil && !sameScale(m, bm, k.row, g) {
				err = fmt.Errorf("patch: verify %s: %s group %d: scale differs from the base; not the same model", p.Name, k, g)
			}
			ts, bs := m.GroupSigns(k.row, g), bm.GroupSigns(k.row, g)
			for j, x := range mask[g*sb : (g+1)*sb] {
				hit += int64(bits.OnesCount8((ts[j] ^ bs[j]) & x))
				total += int64(bits.OnesCount8(x))
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case hit == total:
		return StateApplied, nil
	case hit == 0:
		return StateNotApplied, nil
	}
	return StatePartial, nil
}
