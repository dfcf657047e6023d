// Package backendtest cross-checks every backend against the CPU reference: ForEachBackend runs
// a test on the CPU backend and, when available, on Metal; CheckKernels compares each Metal
// kernel with its Go twin in runtime/cpu; CheckModel compares a backend's logits with the CPU's;
// CheckFlipped and CheckEvaluator compare a backend's runtime.BatchEvaluator with the CPU's.
package backendtest

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/metal"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// ForEachBackend runs f as subtest "cpu" on the CPU backend and as subtest "metal" on the Metal
// backend, which is skipped with the reason when Metal is unavailable (always, off macOS).
func ForEachBackend(t *testing.T, m *runtime.Model, f func(t *testing.T, b runtime.Backend)) {
	t.Helper()
	t.Run("cpu", func(t *testing.T) { f(t, runtime.NewCPU(m)) })
	metalSubtest(t, m, f)
}

// metalSubtest runs f on the GPU backend for m as subtest "metal", skipped with the reason when
// Metal is unavailable.
func metalSubtest(t *testing.T, m *runtime.Model, f func(t *testing.T, b runtime.Backend)) {
	t.Run("metal", func(t *testing.T) {
		if err := metal.Available(); err != nil {
			t.Skipf("metal backend not run: %v", err)
		}
		b, err := metal.New(m)
		require.NoError(t, err)
		defer b.Close()
		Describe(t, b)
		f(t, b)
	})
}

// Describe logs how a backend holds its weights, if it says (runtime.Describer).
func Describe(t *testing.T, b runtime.Backend) {
	if d, ok := b.(runtime.Describer); ok {
		t.Log(d.Describe())
	}
}

// NMSE is the normalised mean squared error Σ(got−want)² / Σwant² (llama.cpp's
// test-backend-ops measure); +Inf if got has a NaN or a length mismatch.
func NMSE(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if den == 0 {
		return num
	}
	return num / den
}

// MaxNMSE is the bound for float kernels (llama.cpp's default for test-backend-ops).
const MaxNMSE = 1e-7

// requireClose checks got against want by NMSE; where names the case.
func requireClose(t *testing.T, got, want []float32, bound float64, where string) {
	t.Helper()
	require.Len(t, got, len(want), where)
	require.LessOrEqual(t, NMSE(got, want), bound, "NMSE: %s", where)
}

// requireExact checks got against want bit for bit.
func requireExact(t *testing.T, got, want []float32, where string) {
	t.Helper()
	require.Len(t, got, len(want), where)
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			require.Failf(t, "not bit-exact", "%s: element %d: got %v (%#08x), want %v (%#08x)",
				where, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}
