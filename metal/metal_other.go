//go:build !darwin || nometal

package metal

import (
	"fmt"
	goruntime "runtime"

	"github.com/bankai-metal/bankai-metal/runtime"
)

func unavailable() error {
	if goruntime.GOOS == "darwin" {
		return fmt.Errorf("%w on %s/%s (built with -tags nometal)", ErrUnavailable, goruntime.GOOS, goruntime.GOARCH)
	}
	return fmt.Errorf("%w on %s/%s", ErrUnavailable, goruntime.GOOS, goruntime.GOARCH)
}

// Available reports whether the Metal backend can run here: on this build it never can.
func Available() error { return unavailable() }

// New returns ErrUnavailable on this build; use runtime.NewCPU.
func New(*runtime.Model) (runtime.Backend, error) { return nil, unavailable() }

// NewKernelRunner returns ErrUnavailable on this build.
func NewKernelRunner() (*KernelRunner, error) { return nil, unavailable() }
