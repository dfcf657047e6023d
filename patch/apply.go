package patch

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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
		if err := m.CheckFlip(f.Row, f.Group, f.Col); err != nil {
			return nil, nil, fmt.Errorf("flip %d: %w in L%d.%s", i, err, f.Layer, f.Proj)
		}
		mats[i] = m
	}
	return norm, mats, nil
}

// flipAll XORs every flip into its matrix. The flips must come from resolve.
func flipAll(flips []Flip, mats []*q1.Matrix) {
	for i, f := range flips {
		mats[i].Flip(f.Row, f.Group, f.Col)
	}
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

// distinct returns mats without repeats, in order of first appearance (nil for none).
func distinct(mats []*q1.Matrix) []*q1.Matrix {
	var out []*q1.Matrix
	seen := map[*q1.Matrix]bool{}
	for _, m := range mats {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

// ApplyFlips XORs the flips into t's sign bits. All flips are range-checked before any bit
// changes, so on error t is untouched. It is its own inverse; a flip listed twice cancels.
// It keeps no record: use Applied to track patches. A model that a device backend runs needs
// to hear which matrices changed: see ApplyFlipsTouched.
func ApplyFlips(t Target, flips []Flip) error {
	_, err := ApplyFlipsTouched(t, flips)
	return err
}

// ApplyFlipsTouched is ApplyFlips that also returns the matrices the flips touched, each once,
// in the order of their first flip: what a backend must refresh. On error, and for no flips,
// it returns none.
func ApplyFlipsTouched(t Target, flips []Flip) ([]*q1.Matrix, error) {
	norm, mats, err := resolve(t, flips, false)
	if err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	flipAll(norm, mats)
	return distinct(mats), nil
}

// Applied tracks the patches applied to one Target, so that a patch is never applied twice by
// accident (upstream's double apply silently reverts) and can be reverted in any order.
// Patches are told apart by content (Patch.ID), not by name: two different patches with the
// same name can both be applied (the second is listed as NAME@ID), the same flips under any
// name cannot. Its methods are safe for concurrent use; flipping bits while the model runs is
// the caller's concern. OnChange sets a hook told which matrices each change touched.
type Applied struct {
	mu       sync.Mutex
	t        Target
	onChange func(mats ...*q1.Matrix) error // or nil
	patches  []appliedPatch                 // in apply order
	warnings []string
	file     *Note // what the model file records as already applied (Inherit), or nil
}

type appliedPatch struct {
	name  string       // unique in the registry
	rec   NoteRecord   // as recorded in a provenance note
	flips []Flip       // normalised copy
	mats  []*q1.Matrix // matrix of each flip
}

// NewApplied returns an empty registry for t.
func NewApplied(t Target) *Applied { return &Applied{t: t} }

// OnChange sets fn to be called after every Apply, Revert and RevertPatch that flipped bits,
// with exactly the matrices it touched, each once: the signature of a backend's
// WeightsChanged, so that device copies follow the host bits. An error from fn is returned by
// the call that triggered it; the change itself stays made (and recorded). fn runs with the
// registry locked and must not call it. A nil fn removes the hook.
func (a *Applied) OnChange(fn func(mats ...*q1.Matrix) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onChange = fn
}

// changed calls the change hook, if any, with the distinct matrices of mats. what is the
// verb of the error, e.g. `apply "p"`. a.mu must be held.
func (a *Applied) changed(what string, mats []*q1.Matrix) error {
	if a.onChange == nil || len(mats) == 0 {
		return nil
	}
	if err := a.onChange(distinct(mats)...); err != nil {
		return fmt.Errorf("patch: %s: the bits changed, but the change hook failed: %w", what, err)
	}
	return nil
}

// Inherit tells the registry that t was loaded from a patched copy whose provenance note is n:
// a patch recorded in n counts as applied, and a patch made for n's base model is accepted as
// made for t. A nil n is ignored.
func (a *Applied) Inherit(n *Note) {
	if n == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.file = &Note{Base: n.Base, Patches: slices.Clone(n.Patches)}
}

// Apply validates p against the model and, only if every flip is valid, applies it.
//
// It refuses a patch whose flips (Patch.ID) are already applied, and a patch whose Fingerprint
// is set and differs from the model's (or, after Inherit, from the base's) unless force is
// true. A patch recorded in the inherited note is refused too, unless forced: applying it again
// reverts it, and it leaves the note. A patch without a fingerprint, a forced mismatch, and
// flips shared with an already-applied patch (which cancel) are applied with a warning, see
// Warnings.
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
	id := flipsID(flips)
	if len(flips) > 0 {
		for _, q := range a.patches {
			if q.rec.ID == id {
				return fmt.Errorf("patch: apply %q: already applied (same flips as %q); applying it again would revert it", p.Name, q.name)
			}
		}
	}
	if i := a.file.Find(id); i >= 0 {
		if !force {
			return fmt.Errorf("patch: apply %q: already applied to this model file (recorded in its patch note as %q); applying it again reverts it: revert it, or force", p.Name, a.file.Patches[i].Name)
		}
		flipAll(flips, mats)
		a.file.Patches = slices.Delete(a.file.Patches, i, i+1)
		a.warnings = append(a.warnings, fmt.Sprintf("patch %q was recorded as applied to this model file; applied again by force, which reverts it", p.Name))
		return a.changed(fmt.Sprintf("apply %q", p.Name), mats)
	}
	var warn []string
	fp := a.t.Fingerprint()
	switch {
	case p.Fingerprint == "":
		warn = append(warn, fmt.Sprintf("patch %q has no model fingerprint; applied without checking it was made for this model", p.Name))
	case p.Fingerprint == fp || (a.file != nil && p.Fingerprint == a.file.Base):
	case !force:
		return fmt.Errorf("patch: apply %q: made for model %s, this model is %s (force to apply anyway)", p.Name, p.Fingerprint, a.modelDesc(fp))
	default:
		warn = append(warn, fmt.Sprintf("patch %q was made for model %s, applied to model %s by force", p.Name, p.Fingerprint, fp))
	}
	for _, q := range a.patches {
		if n := countOverlaps(flips, q.flips); n > 0 {
			warn = append(warn, fmt.Sprintf("patch %q overlaps applied patch %q in %d flip pairs; their shared bits cancel", p.Name, q.name, n))
		}
	}
	name := p.Name
	if slices.ContainsFunc(a.patches, func(q appliedPatch) bool { return q.name == name }) {
		name += "@" + id
	}
	flipAll(flips, mats)
	rec := NoteRecord{Name: p.Name, ID: id, Fingerprint: p.Fingerprint, Flips: len(flips)}
	a.patches = append(a.patches, appliedPatch{name: name, rec: rec, flips: flips, mats: mats})
	a.warnings = append(a.warnings, warn...)
	return a.changed(fmt.Sprintf("apply %q", p.Name), mats)
}

// modelDesc describes the model for a fingerprint mismatch.
func (a *Applied) modelDesc(fp string) string {
	if a.file != nil && a.file.Base != "" {
		return fmt.Sprintf("%s (a patched copy of model %s)", fp, a.file.Base)
	}
	return fp
}

// Revert removes an applied patch by applying its flips again. name is the name List shows
// or the patch's ID. Patches may be reverted in any order: XOR commutes.
func (a *Applied) Revert(name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := slices.IndexFunc(a.patches, func(q appliedPatch) bool { return q.name == name || q.rec.ID == name })
	if i < 0 {
		return fmt.Errorf("patch: revert %q: not applied (applied: %s)", name, a.listLocked())
	}
	return a.changed(fmt.Sprintf("revert %q", name), a.revertAt(i))
}

// revertAt flips the i-th applied patch back, drops it and returns the matrices of its flips.
func (a *Applied) revertAt(i int) []*q1.Matrix {
	q := a.patches[i]
	flipAll(q.flips, q.mats)
	a.patches = slices.Delete(a.patches, i, i+1)
	return q.mats
}

// RevertPatch reverts p, found by content: a patch applied through the registry, or one the
// inherited note records (see Inherit), which then leaves the note.
func (a *Applied) RevertPatch(p *Patch) error {
	flips, mats, err := resolve(a.t, p.Flips, true)
	if err != nil {
		return fmt.Errorf("patch: revert %q: %w", p.Name, err)
	}
	id := flipsID(flips)
	a.mu.Lock()
	defer a.mu.Unlock()
	what := fmt.Sprintf("revert %q", p.Name)
	if i := slices.IndexFunc(a.patches, func(q appliedPatch) bool { return q.rec.ID == id }); i >= 0 {
		return a.changed(what, a.revertAt(i))
	}
	i := a.file.Find(id)
	if i < 0 {
		return fmt.Errorf("patch: revert %q: not applied to this model (its patch note does not record a patch with these flips)", p.Name)
	}
	flipAll(flips, mats)
	a.file.Patches = slices.Delete(a.file.Patches, i, i+1)
	return a.changed(what, mats)
}

// Note returns the provenance note of the model as it is now: the inherited note's patches
// that are still applied, then the registry's, in apply order. base is the fingerprint of the
// unpatched model, used when nothing was inherited. It is nil when no patch is applied.
func (a *Applied) Note(base string) *Note {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := &Note{Base: base}
	if a.file != nil {
		n.Base = a.file.Base
		n.Patches = slices.Clone(a.file.Patches)
	}
	for _, q := range a.patches {
		n.Patches = append(n.Patches, q.rec)
	}
	if len(n.Patches) == 0 {
		return nil
	}
	return n
}

// List returns the names of the applied patches in the order they were applied. A patch whose
// name was already taken is listed as NAME@ID.
func (a *Applied) List() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, len(a.patches))
	for i, q := range a.patches {
		names[i] = q.name
	}
	return names
}

// Inherited returns the names of the patches the model file records as applied (see Inherit).
func (a *Applied) Inherited() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.file == nil {
		return nil
	}
	names := make([]string, len(a.file.Patches))
	for i, r := range a.file.Patches {
		names[i] = r.Name
	}
	return names
}

func (a *Applied) listLocked() string {
	if len(a.patches) == 0 {
		return "none"
	}
	names := make([]string, len(a.patches))
	for i, q := range a.patches {
		names[i] = q.name
	}
	return strings.Join(names, ", ")
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
