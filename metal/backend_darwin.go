//go:build darwin && !nometal

package metal

import (
	"sync"

	"github.com/bankai-metal/bankai-metal/runtime"
)

var (
	availOnce sync.Once
	availErr  error
)

// Available reports whether the Metal backend can run: the frameworks load and a device exists.
// The answer is computed once.
func Available() error {
	availOnce.Do(func() {
		if availErr = load(); availErr != nil {
			return
		}
		availErr = withPool(func() error {
			d, err := defaultDevice()
			if err != nil {
				return err
			}
			d.release()
			return nil
		})
	})
	return availErr
}

// New compiles the kernels, places the model's weights on the default Metal device (no-copy
// over the file mapping where possible) and returns the backend. New must not run while other
// goroutines use the model (it briefly flips a sign byte per matrix to check coherence).
func New(m *runtime.Model) (runtime.Backend, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	g, err := openMetal()
	if err != nil {
		return nil, err
	}
	b, err := newBackend(m, g, "metal", fileBacked)
	if err != nil {
		g.close()
		return nil, err
	}
	return b, nil
}

// NewKernelRunner returns a KernelRunner on the default Metal device.
func NewKernelRunner() (*KernelRunner, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	g, err := openMetal()
	if err != nil {
		return nil, err
	}
	return &KernelRunner{dev: g}, nil
}
