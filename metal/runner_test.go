package metal

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/shaders"
)

// refusingEmulator is a shaders.Emulator that fails every command list.
type refusingEmulator struct{}

func (refusingEmulator) Run([]shaders.Buf, []shaders.Dispatch) error {
	return errors.New("refusingEmulator: no kernels here")
}

// TestKernelRunnerClosed checks that a closed KernelRunner refuses work before reaching its
// device, and that an emulator's errors come back wrapped.
func TestKernelRunnerClosed(t *testing.T) {
	k := NewEmulatedKernelRunner(refusingEmulator{})
	require.Contains(t, k.Name(), "refusingEmulator")
	x, w := []float32{1, 2, 3, 4}, []float32{1, 1}
	_, err := k.RMSNorm(x, w, 1e-6)
	require.ErrorContains(t, err, "metal: emulator: refusingEmulator: no kernels here")

	require.NoError(t, k.Close())
	require.NoError(t, k.Close(), "Close twice")
	_, err = k.RMSNorm(x, w, 1e-6)
	require.ErrorIs(t, err, errRunnerClosed)
}
