package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/metal"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// deviceFlags are --device and --threads, for every command that runs a model.
var deviceFlags = []cli.Flag{
	&cli.StringFlag{Name: "device", Value: "auto", EnvVars: []string{"BANKAI_DEVICE"},
		Usage: "where to run: auto (Metal on a Mac when available, else CPU), metal, or cpu"},
	&cli.IntFlag{Name: "threads", Usage: "CPU threads; results never depend on it", DefaultText: "all cores"},
}

// maxThreads bounds --threads: each kernel starts that many goroutines.
const maxThreads = 1024

// numericsFlag selects the CPU arithmetic, for the commands that print or sample logits.
var numericsFlag = &cli.StringFlag{Name: "numerics", Value: "float",
	Usage: "CPU arithmetic: float (float32 activations) or llama (llama.cpp's x86 Q8_0 arithmetic, bit for bit; the faster CPU path with SIMD kernels)"}

// runFlags are the flags of every command that runs a model: device, threads and patches.
func runFlags() []cli.Flag { return append(append([]cli.Flag{}, deviceFlags...), patchFlags...) }

// newBackend returns the backend chosen by --device for m.
func newBackend(c *cli.Context, m *runtime.Model) (runtime.Backend, error) {
	switch n := c.Int("threads"); {
	case n < 0 || n > maxThreads:
		return nil, fmt.Errorf("--threads %d: want 1 to %d (or 0, all cores)", n, maxThreads)
	case n > 0:
		m.Threads = n
	}
	if v := c.String("numerics"); v != "" {
		n, err := runtime.ParseNumerics(v)
		if err != nil {
			return nil, fmt.Errorf("--numerics: %w", err)
		}
		m.Numerics = n
		if n != runtime.NumericsFloat {
			if c.String("device") == "metal" {
				return nil, fmt.Errorf("--numerics %s runs on the CPU only; drop --device metal", n)
			}
			return runtime.NewCPU(m), nil
		}
	}
	switch d := c.String("device"); d {
	case "cpu", "":
		return runtime.NewCPU(m), nil
	case "metal":
		b, err := metal.New(m)
		if err != nil {
			return nil, fmt.Errorf("--device metal: %w", err)
		}
		return b, nil
	case "auto":
		if metal.Available() != nil {
			return runtime.NewCPU(m), nil
		}
		b, err := metal.New(m)
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "warning: Metal failed (%v); using the CPU\n", err)
			return runtime.NewCPU(m), nil
		}
		return b, nil
	default:
		return nil, fmt.Errorf("--device %q: want auto, metal or cpu", d)
	}
}

// openRun loads --model, applies its --patch files and starts the --device backend. The
// returned function releases both.
func openRun(c *cli.Context) (*runtime.Model, runtime.Backend, func(), error) {
	m, err := loadModel(c)
	if err != nil {
		return nil, nil, nil, err
	}
	b, err := newBackend(c, m)
	if err != nil {
		m.Close()
		return nil, nil, nil, err
	}
	return m, b, func() { b.Close(); m.Close() }, nil
}
