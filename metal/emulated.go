package metal

import (
	"fmt"
	"os"

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
	pins    *pins
}

func (b *emuBuffer) bytes() []byte { return b.data }
func (b *emuBuffer) release()      { b.data, b.pins = nil, nil }

// pins models what a GPU holds of a no-copy buffer over a copy-on-write file mapping: the
// physical pages behind it when it first used it. A page that was private then (already copied
// by a host write) stays the page the host writes to, so the device sees later host writes; a
// page that was still the file's is frozen at its contents then, as a GPU that wired the page
// cache's page would keep reading it after a host write moved the host's view to a fresh copy.
// This is the hazard makePrivate (private.go) removes; where pages cannot be told apart
// (privatePages fails, or off Linux) every page counts as private.
type pins struct {
	page   int
	pinned []bool
	frozen map[int][]byte // page index: its bytes when pinned
}

// pin pins the pages of b not pinned yet.
func (b *emuBuffer) pin() {
	p := b.pins
	if p == nil {
		return
	}
	priv, ok := privatePages(b.data, p.page)
	for i := range p.pinned {
		if p.pinned[i] {
			continue
		}
		p.pinned[i] = true
		if ok && !priv[i] {
			p.frozen[i] = append([]byte(nil), b.data[i*p.page:(i+1)*p.page]...)
		}
	}
}

// deviceView is what the device reads: the host bytes, with frozen pages as they were pinned.
func (b *emuBuffer) deviceView() []byte {
	if b.pins == nil || len(b.pins.frozen) == 0 {
		return b.data
	}
	v := append([]byte(nil), b.data...)
	for i, pg := range b.pins.frozen {
		copy(v[i*b.pins.page:], pg)
	}
	return v
}

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

func (d *emuDevice) wrap(span []byte) buffer {
	page := os.Getpagesize()
	b := &emuBuffer{data: span, wrapped: true}
	if len(span)%page == 0 {
		b.pins = &pins{page: page, pinned: make([]bool, len(span)/page), frozen: map[int][]byte{}}
	}
	return b
}

func (d *emuDevice) close() {}

// emuEncoder records a command list for the emulator, numbering buffers in order of first use.
// It refuses work once ended, as a Metal encoder after endEncoding would.
type emuEncoder struct {
	bufs  []shaders.Buf
	index map[*emuBuffer]int
	list  []shaders.Dispatch
	ended bool
}

func (e *emuEncoder) dispatch(kernel string, args []byte, g shaders.Grid, binds ...bind) {
	if e.ended {
		panic("metal: dispatch on an ended encoder")
	}
	d := shaders.Dispatch{Kernel: kernel, Args: append([]byte(nil), args...), Grid: g}
	for _, b := range binds {
		eb := b.buf.(*emuBuffer)
		i, ok := e.index[eb]
		if !ok {
			i = len(e.bufs)
			e.index[eb] = i
			eb.pin() // the device takes hold of a wrapped buffer's pages when it first uses it
			e.bufs = append(e.bufs, shaders.Buf{Data: eb.deviceView(), ReadOnly: eb.wrapped})
		}
		d.Binds = append(d.Binds, shaders.Bind{Index: b.index, Buf: i, Off: b.off})
	}
	e.list = append(e.list, d)
}

func (e *emuEncoder) barrier() {
	if e.ended {
		panic("metal: barrier on an ended encoder")
	}
} // an emulator runs dispatches one after another

func (d *emuDevice) run(f func(e encoder)) error {
	e := &emuEncoder{index: map[*emuBuffer]int{}}
	encodeAll(e, func() { e.ended = true }, f)
	if err := d.em.Run(e.bufs, e.list); err != nil {
		return fmt.Errorf("metal: emulator: %w", err)
	}
	return nil
}

// encodeAll records f into e and ends the encoding with end, also when f panics (the panic
// then continues, with the encoder closed: Metal aborts the process on a command buffer
// released with an open encoder, which would hide the panic).
func encodeAll(e encoder, end func(), f func(e encoder)) {
	defer end()
	f(e)
}
