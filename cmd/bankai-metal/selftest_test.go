package main

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/metal"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/shaders/shim/shimtest"
)

// TestSelftestCPU: without Metal (here, always off macOS) the default and --device cpu run the
// CPU-side checks and pass; --device metal fails with a clear message.
func TestSelftestCPU(t *testing.T) {
	if metal.Available() == nil {
		t.Skip("this machine has Metal; TestSelftestMetal covers it")
	}
	for _, args := range [][]string{{"selftest"}, {"selftest", "--device", "cpu", "-p", "4", "-n", "2"}} {
		out, _ := mustRun(t, "", args...)
		require.Contains(t, out, "VERDICT: PASS (CPU only")
		require.Contains(t, out, "model builtin:tiny")
		require.Contains(t, out, "bench builtin:tiny: cpu")
	}
	_, _, err := runCLI(t, "", "selftest", "--device", "metal")
	var ec cli.ExitCoder
	require.ErrorAs(t, err, &ec)
	require.NotZero(t, ec.ExitCode())
	require.ErrorContains(t, err, "no Metal device")
}

// TestSelftestMetal runs the selftest on the real device (macOS), or on the Metal backend
// emulated by the CPU harness (Linux with clang), with the small kernel sweep.
func TestSelftestMetal(t *testing.T) {
	if metal.Available() != nil {
		_, h := shimtest.ForTest(t)
		useGPU(t, func() (*metal.KernelRunner, error) { return metal.NewEmulatedKernelRunner(h), nil },
			func(m *runtime.Model) (runtime.Backend, error) { return metal.NewEmulated(m, h) })
	}
	out, _ := mustRun(t, "", "selftest", "--device", "metal", "-p", "4", "-n", "2")
	t.Log(out)
	require.Contains(t, out, "VERDICT: PASS: Metal agrees with the CPU")
	for _, k := range []string{"matvec_q1", "embed_q1", "rms_norm", "rope_neox", "attention", "add_f32", "silu_mul", "flip_delta"} {
		require.Contains(t, out, "kernel "+k)
	}
}

// TestSelftestMismatch: a backend whose logits are off makes the verdict FAIL and the exit
// status non-zero.
func TestSelftestMismatch(t *testing.T) {
	useGPU(t, func() (*metal.KernelRunner, error) { return nil, errors.New("no kernels here") },
		func(m *runtime.Model) (runtime.Backend, error) { return skewed{runtime.NewCPU(m)}, nil })
	out, _, err := runCLI(t, "", "selftest", "--device", "metal", "-p", "2", "-n", "1")
	require.Error(t, err)
	require.Contains(t, out, "VERDICT: FAIL")
	require.Contains(t, out, "open Metal: no kernels here")
	require.Regexp(t, `model builtin:tiny \(?.*FAIL`, out)
	require.Contains(t, out, "prefill+decode row 0: NMSE")
}

// useGPU swaps the Metal side of the selftest for the test.
func useGPU(t *testing.T, kernels func() (*metal.KernelRunner, error), backend func(*runtime.Model) (runtime.Backend, error)) {
	saved := selftestGPU
	t.Cleanup(func() { selftestGPU = saved })
	selftestGPU.available = func() error { return nil }
	selftestGPU.kernels, selftestGPU.backend = kernels, backend
	selftestGPU.sizes = kernelSizes{rows: []int{1, 33}, cols: []int{128, 256}, ctx: []int{1, 33}}
}

// skewed is a backend whose logits are scaled by 1.01.
type skewed struct{ *runtime.CPU }

type skewedSession struct{ runtime.Session }

func (s skewed) Name() string { return "skewed" }

func (s skewed) NewSession(n int) (runtime.Session, error) {
	ss, err := s.CPU.NewSession(n)
	return skewedSession{ss}, err
}

func (s skewedSession) Forward(tokens []int32, all bool) ([]float32, error) {
	out, err := s.Session.Forward(tokens, all)
	for i := range out {
		out[i] *= 1.01
	}
	return out, err
}
