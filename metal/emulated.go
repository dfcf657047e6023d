package metal

import (
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/shaders"
	"github.com/bankai-metal/bankai-metal/shaders/shim"
)

// NewEmulated returns the Metal backend running on the CPU harness h of shaders/shim instead of
// a GPU: the same weights placement, session and encode code, and the same kernels compiled as
// C++. It exists to test the backend on machines without Metal, and is slow.
func NewEmulated(m *runtime.Model, h *shim.Harness) (runtime.Backend, error) {
	return newBackend(m, &emuDevice{h: h}, "metal-emu", fileBacked)
}

// NewEmulatedKernelRunner returns a KernelRunner on the CPU harness h.
func NewEmulatedKernelRunner(h *shim.Harness) *KernelRunner {
	return &KernelRunner{dev: &emuDevice{h: h}}
}

// emuDevice implements device with the harness: buffers are Go memory (or wrapped host memory),
// and run ships the whole command list to one harness process.
type emuDevice struct {
	h *shim.Harness
}

type emuBuffer struct {
	data    []byte
	wrapped bool // host memory the kernels only read
}

func (b *emuBuffer) bytes() []byte { return b.data }
func (b *emuBuffer) release()      { b.data = nil }

func (d *emuDevice) name() string { return "the CPU harness of shaders/shim" }

func (d *emuDevice) newBuffer(size int) (buffer, error) {
	return &emuBuffer{data: make([]byte, size)}, nil
}

func (d *emuDevice) wrap(span []byte) buffer { return &emuBuffer{data: span, wrapped: true} }

func (d *emuDevice) close() {}

type emuEncoder struct {
	bufs  []shim.Buf
	index map[*emuBuffer]int
	list  []shim.Dispatch
}

func (e *emuEncoder) dispatch(kernel string, args []byte, g shaders.Grid, binds ...bind) {
	d := shim.Dispatch{Kernel: kernel, Args: append([]byte(nil), args...), Grid: g}
	for _, b := range binds {
		eb := b.buf.(*emuBuffer)
		i, ok := e.index[eb]
		if !ok {
			i = len(e.bufs)
			e.index[eb] = i
			e.bufs = append(e.bufs, shim.Buf{Data: eb.data, ReadOnly: eb.wrapped})
		}
		d.Binds = append(d.Binds, shim.Bind{Index: b.index, Buf: i, Off: b.off})
	}
	e.list = append(e.list, d)
}

func (e *emuEncoder) barrier() {} // the harness runs dispatches one after another

func (d *emuDevice) run(f func(e encoder)) error {
	e := &emuEncoder{index: map[*emuBuffer]int{}}
	f(e)
	return d.h.Run(e.bufs, e.list)
}
