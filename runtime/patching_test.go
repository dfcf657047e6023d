package runtime_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// recordingBackend is the CPU backend with every WeightsChanged call recorded; err, if set, is
// what WeightsChanged returns.
type recordingBackend struct {
	runtime.Backend
	calls [][]*q1.Matrix
	err   error
}

func (b *recordingBackend) WeightsChanged(mats ...*q1.Matrix) error {
	b.calls = append(b.calls, mats)
	return b.err
}

func newRecording(t *testing.T) (*runtime.Model, *recordingBackend) {
	t.Helper()
	m, _ := synthModel(t)
	return m, &recordingBackend{Backend: runtime.NewCPU(m)}
}

func matrix(t *testing.T, m *runtime.Model, layer int, proj string) *q1.Matrix {
	t.Helper()
	mat, err := m.Matrix(layer, proj)
	require.NoError(t, err)
	return mat
}

// TestApplyFlipsReportsTouched checks that ApplyFlips reports exactly the matrices its flips
// touch, each once and in the order of their first flip, in one WeightsChanged call.
func TestApplyFlipsReportsTouched(t *testing.T) {
	m, b := newRecording(t)
	base := m.ContentFingerprint()
	flips := []patch.Flip{
		patch.RowFlip(1, "up_proj", 3),
		patch.BitFlip(0, "q_proj", 2, 5),
		patch.GroupFlip(1, "up_proj", 4, 0), // the same matrix again
		patch.RowFlip(0, "down_proj", 1),
	}
	require.NoError(t, runtime.ApplyFlips(b, flips))
	want := []*q1.Matrix{matrix(t, m, 1, "up_proj"), matrix(t, m, 0, "q_proj"), matrix(t, m, 0, "down_proj")}
	require.Equal(t, [][]*q1.Matrix{want}, b.calls)
	require.NotEqual(t, base, m.ContentFingerprint(), "the bits changed")

	require.NoError(t, runtime.ApplyFlips(b, flips))
	require.Equal(t, [][]*q1.Matrix{want, want}, b.calls)
	require.Equal(t, base, m.ContentFingerprint(), "applying again reverts")
}

// TestApplyFlipsInvalidChangesNothing checks that a list with one bad flip changes no bit and
// reports nothing, and that no flips report nothing either.
func TestApplyFlipsInvalidChangesNothing(t *testing.T) {
	m, b := newRecording(t)
	base := m.ContentFingerprint()
	rows := matrix(t, m, 0, "up_proj").Rows
	bad := []patch.Flip{patch.RowFlip(0, "gate_proj", 0), patch.RowFlip(0, "up_proj", rows)}
	require.ErrorContains(t, runtime.ApplyFlips(b, bad), "flip 1: row")
	require.ErrorContains(t, runtime.ApplyFlips(b, []patch.Flip{patch.RowFlip(m.NumLayers(), "up_proj", 0)}), "layer")
	require.NoError(t, runtime.ApplyFlips(b, nil))
	require.Empty(t, b.calls)
	require.Equal(t, base, m.ContentFingerprint())
}

// TestApplyFlipsBackendError checks that a failing refresh is reported, with the bits flipped.
func TestApplyFlipsBackendError(t *testing.T) {
	m, b := newRecording(t)
	b.err = errors.New("device lost")
	base := m.ContentFingerprint()
	err := runtime.ApplyFlips(b, []patch.Flip{patch.RowFlip(0, "up_proj", 0)})
	require.ErrorIs(t, err, b.err)
	require.ErrorContains(t, err, "runtime: cpu backend: refresh 1 changed matrices: device lost")
	require.NotEqual(t, base, m.ContentFingerprint())
}

// TestNewAppliedReportsTouched checks that a registry bound to a backend reports exactly the
// matrices of each apply and revert, and nothing for a refused patch.
func TestNewAppliedReportsTouched(t *testing.T) {
	m, b := newRecording(t)
	base := m.ContentFingerprint()
	a := runtime.NewApplied(b)
	p := &patch.Patch{Name: "p", Fingerprint: m.Fingerprint(), Flips: []patch.Flip{
		patch.RowFlip(0, "gate_proj", 1), patch.RowFlip(1, "o_proj", 2), patch.BitFlip(0, "gate_proj", 3, 7)}}
	want := []*q1.Matrix{matrix(t, m, 0, "gate_proj"), matrix(t, m, 1, "o_proj")}

	require.NoError(t, a.Apply(p, false))
	require.Equal(t, [][]*q1.Matrix{want}, b.calls)
	require.Error(t, a.Apply(p, false), "already applied")
	bad := &patch.Patch{Name: "bad", Fingerprint: m.Fingerprint(), Flips: []patch.Flip{patch.RowFlip(0, "up_proj", 1<<30)}}
	require.Error(t, a.Apply(bad, false))
	require.Error(t, a.Revert("nope"))
	require.Len(t, b.calls, 1, "refused changes report nothing")

	require.NoError(t, a.Revert("p"))
	require.Equal(t, [][]*q1.Matrix{want, want}, b.calls)
	require.Equal(t, base, m.ContentFingerprint())

	require.NoError(t, a.Apply(p, false))
	require.NoError(t, a.RevertPatch(p))
	require.Equal(t, [][]*q1.Matrix{want, want, want, want}, b.calls)
	require.Equal(t, base, m.ContentFingerprint())
}

// TestBindAppliedBackendError checks that a failing refresh fails the apply but leaves the
// patch applied (its bits are flipped), so that reverting it is what undoes it.
func TestBindAppliedBackendError(t *testing.T) {
	m, b := newRecording(t)
	base := m.ContentFingerprint()
	a := patch.NewApplied(m)
	runtime.BindApplied(a, b)
	b.err = errors.New("device lost")
	err := a.Apply(&patch.Patch{Name: "p", Fingerprint: m.Fingerprint(), Flips: []patch.Flip{patch.RowFlip(0, "up_proj", 0)}}, false)
	require.ErrorIs(t, err, b.err)
	require.ErrorContains(t, err, `patch: apply "p": the bits changed, but the change hook failed: runtime: cpu backend`)
	require.Equal(t, []string{"p"}, a.List())
	b.err = nil
	require.NoError(t, a.Revert("p"))
	require.Equal(t, base, m.ContentFingerprint())
	require.Len(t, b.calls, 2)
}
