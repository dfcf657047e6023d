package metal

import (
	"fmt"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/shaders"
)

// NewEmulated returns the Metal backend running on the emulator em (the CPU harness of
// shaders/shim, in tests) instead of a GPU: the same weights placement, session and encode
// code, and the same kernels, executed by em. It exists to test the backend on machines without
// Metal, and is slow.
func NewEmulated(m *runtime.Model, em shaders.Emulator) (runtime.Backend, error) {
	return newBackend(m, &emuDevice{em: em}, "metal-emu", fileBacked)
}

// NewEmulatedKernelRunner returns a KernelRunner on the emulator em.
func NewEmulatedKernelRunner(em shaders.Emulator) *KernelRunner {
	return &KernelRunner{dev: &emuDevice{em: em}}
}

// emuDevice implements device with an emulator: buffers are Go memory (or wrapped host memory),
// and run ships the whole command list to one Emulator.Run.
type emuDevice struct {
	em shaders.Emulator
}

type emuBuffer struct {
	data    []byte
	wrapped bool // host memory the kernels only read
}

func (b *emuBuffer) bytes() []byte { return b.data }
func (b *emuBuffer) release()      { b.data = nil }

// name is the emulator's own description when it has one (fmt.Stringer), else its type.
func (d *emuDevice) name() string {
	if s, ok := d.em.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("an emulator (%T)", d.em)
}

func (d *emuDevice) newBuffer(size int) (buffer, error) {
	return &emuBuffer{data: make([]byte, size)}, nil
}

func (d *emuDevice) wrap(span []byte) buffer { return &emuBuffer{data: span, wrapped: true} }

func (d *emuDevice) close() {}

// emuEncoder records a command list for the emulator, numbering buffers in order of first use.
type emuEncoder struct {
	bufs  []shaders.Buf
	index map[*emuBuffer]int
	list  []shaders.Dispatch
}

func (e *emuEncoder) dispatch(kernel string, args []byte, g shaders.Grid, binds ...bind) {
	d := shaders.Dispatch{Kernel: kernel, Args: append([]byte(nil), args...), Grid: g}
	for _, b := range binds {
		eb := b.buf.(*emuBuffer)
		i, ok := e.index[eb]
		if !ok {
			i = len(e.bufs)
			e.index[eb] = i
			e.bufs = append(e.bufs, shaders.Buf{Data: eb.data, ReadOnly: eb.wrapped})
		}
		d.Binds = append(d.Binds, shaders.Bind{Index: b.index, Buf: i, Off: b.off})
	}
	e.list = append(e.list, d)
}

func (e *emuEncoder) barrier() {} // an emulator runs dispatches one after another

func (d *emuDevice) run(f func(e encoder)) error {
	e := &emuEncoder{index: map[*emuBuffer]int{}}
	f(e)
	if err := d.em.Run(e.bufs, e.list); err != nil {
		return fmt.Errorf("metal: emulator: %w", err)
	}
	return nil
}
