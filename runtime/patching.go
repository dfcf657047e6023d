package runtime

import (
	"fmt"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// This file is the one place where patches meet a Backend: the host bits of the model change
// (package patch), then the backend hears exactly which matrices changed (WeightsChanged), so
// a device copy never runs stale weights.

// ApplyFlips XORs flips into b's model and calls b.WeightsChanged with exactly the matrices
// they touched, each once. Every flip is checked first: on an invalid flip nothing changes and
// the backend is not called; with no flips neither happens. Applying the same flips again
// reverts them.
func ApplyFlips(b Backend, flips []patch.Flip) error {
	mats, err := patch.ApplyFlipsTouched(b.Model(), flips)
	if err != nil {
		return err
	}
	return weightsChanged(b, mats...)
}

// NewApplied returns an empty patch registry of b's model, bound to b (see BindApplied).
func NewApplied(b Backend) *patch.Applied {
	a := patch.NewApplied(b.Model())
	BindApplied(a, b)
	return a
}

// BindApplied makes a, a registry of the patches of b's model, keep b up to date: every later
// Apply, Revert and RevertPatch that flips bits calls b.WeightsChanged with exactly the
// matrices it touched. Patches applied before the binding (at load, before b existed) are
// already in what b was created from.
func BindApplied(a *patch.Applied, b Backend) {
	a.OnChange(func(mats ...*q1.Matrix) error { return weightsChanged(b, mats...) })
}

// weightsChanged tells b about changed matrices, if there are any.
func weightsChanged(b Backend, mats ...*q1.Matrix) error {
	if len(mats) == 0 {
		return nil
	}
	if err := b.WeightsChanged(mats...); err != nil {
		return fmt.Errorf("runtime: %s backend: refresh %d changed matrices: %w", b.Name(), len(mats), err)
	}
	return nil
}
