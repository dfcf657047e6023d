package metal

import "github.com/bankai-metal/bankai-metal/shaders"

// device is what the backend needs from a GPU. The Metal binding implements it on macOS
// (gpu_darwin.go); a shaders.Emulator, such as the CPU harness of shaders/shim, implements it
// everywhere (emulated.go).
type device interface {
	// name describes the device ("Apple M2 Pro").
	name() string
	// newBuffer returns a zeroed buffer of size bytes shared with the host.
	newBuffer(size int) (buffer, error)
	// wrap returns a buffer over span (page-aligned, a whole number of pages, outside the Go
	// heap) without copying it, or nil if the device refuses.
	wrap(span []byte) buffer
	// run encodes one command list through f, submits it and waits for it to complete.
	run(f func(e encoder)) error
	// close releases the device.
	close()
}

// buffer is device memory the host can read and write.
type buffer interface {
	// bytes is the host view of the buffer.
	bytes() []byte
	release()
}

// encoder records dispatches into a command list.
type encoder interface {
	// dispatch launches kernel over grid g with args bound at index 0 and binds at theirs.
	dispatch(kernel string, args []byte, g shaders.Grid, binds ...bind)
	// barrier makes the writes of earlier dispatches visible to later ones.
	barrier()
}

// bind binds a buffer at a byte offset to a kernel's [[buffer(index)]].
type bind struct {
	index int
	buf   buffer
	off   int
}

// ref is a position in a buffer: the buffer and a byte offset.
type ref struct {
	buf buffer
	off int
}

// at returns the reference floats float32 values further on.
func (r ref) at(floats int) ref { return ref{r.buf, r.off + 4*floats} }

func (r ref) bind(index int) bind { return bind{index, r.buf, r.off} }

// bytes is the host view of the buffer from the reference on.
func (r ref) bytes() []byte { return r.buf.bytes()[r.off:] }

// bufSpec is a float32 buffer to allocate and the field that receives it.
type bufSpec struct {
	dst    *buffer
	floats int
}

// allocAll allocates every spec; if one fails it calls undo (which releases what was stored)
// and returns the error.
func allocAll(d device, specs []bufSpec, undo func()) error {
	for _, z := range specs {
		b, err := d.newBuffer(4 * z.floats)
		if err != nil {
			undo()
			return err
		}
		*z.dst = b
	}
	return nil
}
