package backendtest

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/metal"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
	"github.com/bankai-metal/bankai-metal/shaders/shim/shimtest"
)

// TestKernels compares every Metal kernel with its Go twin over FullSizes (macOS only).
func TestKernels(t *testing.T) {
	k, err := metal.NewKernelRunner()
	if err != nil {
		t.Skipf("metal kernels not run: %v", err)
	}
	defer k.Close()
	t.Log("device:", k.Name())
	CheckKernels(t, k, FullSizes)
}

// model is a test model: an oracle fixture or a generated one.
type model struct {
	name string
	load func(t *testing.T) *runtime.Model
}

func loadShared(rel ...string) func(t *testing.T) *runtime.Model {
	return func(t *testing.T) *runtime.Model {
		m, err := runtime.Load(testenv.Shared(t, rel...))
		require.NoError(t, err)
		t.Cleanup(func() { m.Close() })
		return m
	}
}

func loadSynth(mlx bool) func(t *testing.T) *runtime.Model {
	return func(t *testing.T) *runtime.Model {
		spec := synth.Tiny()
		p := filepath.Join(t.TempDir(), "tiny.gguf")
		var err error
		if mlx {
			p = filepath.Join(t.TempDir(), "tiny-mlx")
			err = spec.WriteMLX(p)
		} else {
			err = spec.WriteGGUF(p)
		}
		require.NoError(t, err)
		m, err := runtime.Load(p)
		require.NoError(t, err)
		t.Cleanup(func() { m.Close() })
		return m
	}
}

var models = []model{
	{"oracle-tiny-q1", loadShared("oracle", "tiny-q1.gguf")},
	{"oracle-tiny-q1-tied", loadShared("oracle", "tiny-q1-tied.gguf")},
	{"oracle-qwen3vocab-q1", loadShared("oracle", "qwen3vocab-q1.gguf")},
	{"oracle-qwen3vocab-mlx", loadShared("oracle", "qwen3vocab-mlx")},
	{"synth-tiny-gguf", loadSynth(false)},
	{"synth-tiny-mlx", loadSynth(true)},
}

// TestModels compares every backend's logits with the CPU reference on every test model.
func TestModels(t *testing.T) {
	testenv.SkipShort(t)
	for _, tm := range models {
		t.Run(tm.name, func(t *testing.T) {
			m := tm.load(t)
			ForEachBackend(t, m, func(t *testing.T, b runtime.Backend) {
				CheckModel(t, b, ModelCase{Long: true, Patch: true})
			})
		})
	}
}

// emulated lists the models TestEmulated runs and how much of CheckModel each gets: the CPU
// harness is slow, so the large-vocabulary model (YaRN, the MLX split layout, attention width
// != hidden) gets a short case, and its GGUF twin, the same weights, is left out.
var emulated = []struct {
	model
	c ModelCase
}{
	{models[0], ModelCase{Long: true, Patch: true}},
	{models[1], ModelCase{Patch: true}},
	{models[3], ModelCase{Prefill: 2, Decode: 1}},
	{models[5], ModelCase{Patch: true}},
}

// TestEmulated runs the Metal backend's own code (weights placement with no-copy spans, sessions,
// encoding) with the kernels executed by the CPU harness of shaders/shim, against the CPU
// backend. It needs clang and runs everywhere.
func TestEmulated(t *testing.T) {
	_, h := shimtest.ForTest(t)
	for _, tm := range emulated {
		t.Run(tm.name, func(t *testing.T) {
			m := tm.load(t)
			b, err := metal.NewEmulated(m, h)
			require.NoError(t, err)
			defer b.Close()
			Describe(t, b)
			CheckModel(t, b, tm.c)
		})
	}
}

// forEachMetal runs f on the Metal backend for m: as subtest "metal" on the GPU (skipped with the
// reason when Metal is unavailable) and as "metal-emu" on the CPU harness (skipped without clang,
// off Linux, unless BANKAI_REQUIRE_CLANG=1).
func forEachMetal(t *testing.T, m *runtime.Model, f func(t *testing.T, b runtime.Backend)) {
	metalSubtest(t, m, f)
	t.Run("metal-emu", func(t *testing.T) {
		_, h := shimtest.ForTest(t)
		b, err := metal.NewEmulated(m, h)
		require.NoError(t, err)
		defer b.Close()
		f(t, b)
	})
}

// tiny3 loads the synthetic tiny model with 3 layers.
func tiny3(t *testing.T) *runtime.Model {
	spec := synth.Tiny()
	spec.Layers = 3
	p := filepath.Join(t.TempDir(), "tiny3.gguf")
	require.NoError(t, spec.WriteGGUF(p))
	m, err := runtime.Load(p)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// TestFlipped compares the Metal backend's runtime.BatchEvaluator with runtime.CPUBatch.
func TestFlipped(t *testing.T) {
	forEachMetal(t, tiny3(t), CheckFlipped)
}

// TestFlippedEvaluator compares bfs.Evaluator on the Metal backend with the CPU's.
func TestFlippedEvaluator(t *testing.T) {
	forEachMetal(t, tiny3(t), CheckEvaluator)
}
