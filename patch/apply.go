package patch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// Target is the model side of a patch, implemented by the runtime's model.
type Target interface {
	// NumLayers returns the number of decoder layers.
	NumLayers() int
	// Matrix returns the 1-bit weight of projection proj (a Hugging Face name) of a layer.
	Matrix(layer int, proj string) (*q1.Matrix, error)
	// Fingerprint returns a cheap content fingerprint of the unpatched base model.
	Fingerprint() string
}

// resolve checks flips against t and returns them with Hugging Face projection names, together
// with the matrix each one addresses. strict also rejects a flip that appears twice. Nothing is
// modified. Errors name the flip index and the value out of range.
func resolve(t Target, flips []Flip, strict bool) ([]Flip, []*q1.Matrix, error) {
	var norm []Flip
	if strict {
		var err error
		if norm, err = normalizeFlips(flips); err != nil {
			return nil, nil, err
		}
	} else {
		norm = make([]Flip, len(flips))
		for i, f := range flips {
			n, err := f.normalize()
			if err != nil {
				return nil, nil, fmt.Errorf("flip %d: %w", i, err)
			}
			norm[i] = n
		}
	}
	type matKey struct {
		layer int
		proj  string
	}
	layers := t.NumLayers()
	mats := make([]*q1.Matrix, len(norm)) // (n_flips) matrix of each flip
	cache := map[matKey]*q1.Matrix{}
	for i, f := range norm {
		if f.Layer >= layers {
			return nil, nil, fmt.Errorf("flip %d: layer %d out of range [0,%d)", i, f.Layer, layers)
		}
		k := matKey{f.Layer, f.Proj}
		m, ok := cache[k]
		if !ok {
			var err error
			if m, err = t.Matrix(f.Layer, f.Proj); err != nil {
				return nil, nil, fmt.Errorf("flip %d: L%d.%s: %w", i, f.Layer, f.Proj, err)
			}
			if m == nil {
				return nil, nil, fmt.Errorf("flip %d: L%d.%s: no matrix", i, f.Layer, f.Proj)
			}
			cache[k] = m
		}
		switch {
		case f.Row >= m.Rows:
			return nil, nil, fmt.Errorf("flip %d: row %d out of range [0,%d) in L%d.%s", i, f.Row, m.Rows, f.Layer, f.Proj)
		case f.Kind() == KindGroup && f.Group >= m.Groups:
			return nil, nil, fmt.Errorf("flip %d: group %d out of range [0,%d) in L%d.%s", i, f.Group, m.Groups, f.Layer, f.Proj)
		case f.Kind() == KindBit && f.Col >= m.Cols:
			return nil, nil, fmt.Errorf("flip %d: col %d out of range [0,%d) in L%d.%s", i, f.Col, m.Cols, f.Layer, f.Proj)
		}
		mats[i] = m
	}
	return norm, mats, nil
}

// flipAll XORs every flip into its matrix. The flips must come from resolve.
func flipAll(flips []Flip, mats []*q1.Matrix) {
	for i, f := range flips {
		m := mats[i]
		switch f.Kind() {
		case KindRow:
			for g := range m.Groups {
				negateGroup(m.GroupSigns(f.Row, g))
			}
		case KindGroup:
			negateGroup(m.GroupSigns(f.Row, f.Group))
		case KindBit:
			m.FlipBit(f.Row, f.Col)
		}
	}
}

// negateGroup XORs the 16 sign bytes of a group with ones, 8 bytes at a time (the same result as
// q1.Matrix.FlipGroup, several times faster).
func negateGroup(s []byte) {
	binary.LittleEndian.PutUint64(s, ^binary.LittleEndian.Uint64(s))
	binary.LittleEndian.PutUint64(s[8:], ^binary.LittleEndian.Uint64(s[8:]))
}

// Validate checks every flip against t: a known projection, layer < NumLayers, row < Rows,
// group < Groups, col < Cols, and no flip listed twice. Flips of different granularity may
// overlap (a bit flip inside a row flip): they compose by XOR, which is also what upstream's
// apply loop does. Errors name the flip index and value, e.g.
// "patch: x: flip 12: row 99999 out of range [0,12288) in L3.up_proj".
func (p *Patch) Validate(t Target) error {
	if _, _, err := resolve(t, p.Flips, true); err != nil {
		return fmt.Errorf("patch: %s: %w", p.Name, err)
	}
	return nil
}

// ApplyFlips XORs the flips into t's sign bits. All flips are range-checked before any bit
// changes, so on error t is untouched. It is its own inverse; a flip listed twice cancels.
// It keeps no record: use Applied to track patches.
func ApplyFlips(t Target, flips []Flip) error {
	norm, mats, err := resolve(t, flips, false)
	if err != nil {
		return fmt.Errorf("patch: %w", err)
	}
	flipAll(norm, mats)
	return nil
}

// Applied tracks the patches applied to one Target, so that a patch is never applied twice by
// accident (upstream's double apply silently reverts) and can be reverted by name in any order.
// Its methods are safe for concurrent use; flipping bits while the model runs is the caller's
// concern.
type Applied struct {
	mu       sync.Mutex
	t        Target
	patches  []appliedPatch // in apply order
	warnings []string
}

type appliedPatch struct {
	name   string
	flips  []Flip       // normalised copy
	mats   []*q1.Matrix // matrix of each flip
	sorted []Flip       // canonical order, for content comparison
}

// NewApplied returns an empty registry for t.
func NewApplied(t Target) *Applied { return &Applied{t: t} }

// Apply validates p against the model and, only if every flip is valid, applies it.
//
// It refuses a patch whose name, or whose exact set of flips, is already applied, and a patch
// whose Fingerprint is set and differs from the model's unless force is true. A patch without a
// fingerprint, a forced mismatch, and flips shared with an already-applied patch (which cancel)
// are applied with a warning, see Warnings.
func (a *Applied) Apply(p *Patch, force bool) error {
	if p == nil {
		return errors.New("patch: apply: nil patch")
	}
	if p.Name == "" {
		return errors.New("patch: apply: patch has no name")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	flips, mats, err := resolve(a.t, p.Flips, true)
	if err != nil {
		return fmt.Errorf("patch: apply %q: %w", p.Name, err)
	}
	sorted := slices.Clone(flips)
	sortFlips(sorted)
	for _, q := range a.patches {
		if q.name == p.Name {
			return fmt.Errorf("patch: apply %q: already applied", p.Name)
		}
		if len(sorted) > 0 && slices.Equal(q.sorted, sorted) {
			return fmt.Errorf("patch: apply %q: already applied (same flips as %q)", p.Name, q.name)
		}
	}
	var warn []string
	switch fp := a.t.Fingerprint(); {
	case p.Fingerprint == "":
		warn = append(warn, fmt.Sprintf("patch %q has no model fingerprint; applied without checking it was made for this model", p.Name))
	case p.Fingerprint != fp && !force:
		return fmt.Errorf("patch: apply %q: made for model %s, this model is %s (force to apply anyway)", p.Name, p.Fingerprint, fp)
	case p.Fingerprint != fp:
		warn = append(warn, fmt.Sprintf("patch %q was made for model %s, applied to model %s by force", p.Name, p.Fingerprint, fp))
	}
	for _, q := range a.patches {
		if n := countOverlaps(flips, q.flips); n > 0 {
			warn = append(warn, fmt.Sprintf("patch %q overlaps applied patch %q in %d flip pairs; their shared bits cancel", p.Name, q.name, n))
		}
	}
	flipAll(flips, mats)
	a.patches = append(a.patches, appliedPatch{name: p.Name, flips: flips, mats: mats, sorted: sorted})
	a.warnings = append(a.warnings, warn...)
	return nil
}

// Revert removes the applied patch called name by applying its flips again. Patches may be
// reverted in any order: XOR commutes.
func (a *Applied) Revert(name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := slices.IndexFunc(a.patches, func(q appliedPatch) bool { return q.name == name })
	if i < 0 {
		return fmt.Errorf("patch: revert %q: not applied", name)
	}
	flipAll(a.patches[i].flips, a.patches[i].mats)
	a.patches = slices.Delete(a.patches, i, i+1)
	return nil
}

// List returns the names of the applied patches in the order they were applied.
func (a *Applied) List() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, len(a.patches))
	for i, q := range a.patches {
		names[i] = q.name
	}
	return names
}

// Warnings returns every warning recorded by Apply so far, oldest first.
func (a *Applied) Warnings() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.warnings)
}

// countOverlaps counts the pairs (x in a, y in b) that touch a common sign bit.
func countOverlaps(a, b []Flip) int {
	byRow := map[rowKey][]Flip{}
	for _, f := range b {
		byRow[f.key()] = append(byRow[f.key()], f)
	}
	n := 0
	for _, f := range a {
		for _, g := range byRow[f.key()] {
			if overlaps(f, g) {
				n++
			}
		}
	}
	return n
}
