package metal

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/shaders/shim/shimtest"
)

// testBackend returns the Metal backend for m on the GPU when there is one, else on the CPU
// harness (skipping when neither is possible).
func testBackend(t *testing.T, m *runtime.Model) runtime.Backend {
	if Available() == nil {
		b, err := New(m)
		require.NoError(t, err)
		require.Equal(t, "metal", b.Name())
		return b
	}
	_, h := shimtest.ForTest(t)
	b, err := NewEmulated(m, h)
	require.NoError(t, err)
	require.Equal(t, "metal-emu", b.Name())
	return b
}

// TestSessionContract checks the Session rules shared with the CPU backend.
func TestSessionContract(t *testing.T) {
	m := tinyModel(t, false)
	b := testBackend(t, m)
	require.Same(t, m, b.Model())

	_, err := b.NewSession(0)
	require.Error(t, err)
	s, err := b.NewSession(4)
	require.NoError(t, err)
	require.Equal(t, 4, s.Max())

	_, err = s.Forward(nil, false)
	require.ErrorContains(t, err, "no tokens")
	_, err = s.Forward([]int32{1, int32(m.Vocab)}, false)
	require.ErrorContains(t, err, "out of range")
	_, err = s.Forward([]int32{1, 2, 3, 4, 5}, false)
	require.ErrorIs(t, err, runtime.ErrContextFull)
	require.Zero(t, s.Len(), "a failed call adds nothing")

	logits, err := s.Forward([]int32{1, 2, 3}, false)
	require.NoError(t, err)
	require.Len(t, logits, m.Vocab)
	require.Equal(t, 3, s.Len())
	s.Truncate(5) // beyond Len: no effect
	require.Equal(t, 3, s.Len())
	s.Truncate(1)
	require.Equal(t, 1, s.Len())

	require.NoError(t, s.(*session).Close())
	_, err = s.Forward([]int32{1}, false)
	require.ErrorContains(t, err, "session is closed")

	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "Close twice")
	_, err = b.NewSession(4)
	require.ErrorIs(t, err, errClosed)
	require.ErrorIs(t, b.WeightsChanged(m.Embed), errClosed)
}

// TestSessionAfterBackendClose checks the lifetimes of runtime/backend.go from the wrong side: a
// session left open when its backend closes refuses to run instead of touching released device
// memory, and can still be closed.
func TestSessionAfterBackendClose(t *testing.T) {
	m := tinyModel(t, false)
	b := testBackend(t, m)
	s, err := b.NewSession(8)
	require.NoError(t, err)
	_, err = s.Forward([]int32{1, 2}, false)
	require.NoError(t, err)

	require.NoError(t, b.Close())
	_, err = s.Forward([]int32{3}, false)
	require.ErrorIs(t, err, errClosed)
	require.Equal(t, 2, s.Len(), "a refused call adds nothing")
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close twice")
}
