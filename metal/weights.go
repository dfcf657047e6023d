package metal

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/shaders"
)

// view is where one byte slice of a matrix (its signs or its scales) lives on the device.
type view struct {
	buf    buffer
	off    int    // byte offset of the slice in buf
	copied bool   // buf holds a copy, refreshed by WeightsChanged; else it wraps the host bytes
	host   []byte // the slice in host memory
}

// weight is a 1-bit matrix on the device.
type weight struct {
	m            *q1.Matrix
	bits, scales view
}

// layout describes the matrix for the kernels; both views are bound at offset 0 of their buffers.
func (w *weight) layout() shaders.Q1Layout {
	return shaders.LayoutOf(w.m, uint32(w.bits.off), uint32(w.scales.off))
}

// span is a no-copy buffer over the page-aligned memory [lo, hi) of a file mapping.
type span struct {
	lo, hi uintptr
	buf    buffer
}

// weights places the matrices of a model on a device. A slice inside a file mapping is wrapped
// without copying: the buffer covers the page-aligned span around it and the view carries the
// offset, so sign bits XORed in host memory (patches) reach the GPU with no upload. Any other
// slice, or one the device refuses to wrap, is copied, and WeightsChanged re-copies it.
type weights struct {
	dev    device
	page   int
	mapped func(lo, hi uintptr) bool // reports whether [lo, hi) lies in one file mapping
	spans  []span
	copies []buffer
	byMat  map[*q1.Matrix]*weight
	order  []*weight
}

func newWeights(dev device, page int, mapped func(lo, hi uintptr) bool) *weights {
	return &weights{dev: dev, page: page, mapped: mapped, byMat: map[*q1.Matrix]*weight{}}
}

// add places m (once, however often it is added) and returns it.
func (ws *weights) add(m *q1.Matrix) (*weight, error) {
	if w, ok := ws.byMat[m]; ok {
		return w, nil
	}
	w := &weight{m: m}
	var err error
	if w.bits, err = ws.place(m.Bits); err != nil {
		return nil, fmt.Errorf("metal: matrix %s signs: %w", m.Name, err)
	}
	if w.scales, err = ws.place(m.Scales); err != nil {
		return nil, fmt.Errorf("metal: matrix %s scales: %w", m.Name, err)
	}
	ws.byMat[m] = w
	ws.order = append(ws.order, w)
	return w, nil
}

// place returns a view of b: inside an existing span, in a new span, or in a copy.
func (ws *weights) place(b []byte) (view, error) {
	if len(b) == 0 {
		return view{}, fmt.Errorf("empty data")
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	pg := uintptr(ws.page)
	lo, hi := p&^(pg-1), (p+uintptr(len(b))+pg-1)&^(pg-1)
	for _, s := range ws.spans {
		if lo >= s.lo && hi <= s.hi {
			return view{buf: s.buf, off: int(p - s.lo), host: b}, nil
		}
	}
	// Offsets travel as uint32 in Q1Layout, so a span stays below 4 GiB.
	if ws.mapped != nil && hi-lo <= math.MaxUint32 && ws.mapped(lo, hi) {
		mem := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), -int(p-lo))), int(hi-lo))
		// Every page private before the device sees any of it (private.go), or no wrap.
		if privatizeWraps && !makePrivate(mem, ws.page) {
			return ws.copyOf(b)
		}
		if buf := ws.dev.wrap(mem); buf != nil {
			ws.spans = append(ws.spans, span{lo, hi, buf})
			return view{buf: buf, off: int(p - lo), host: b}, nil
		}
	}
	return ws.copyOf(b)
}

func (ws *weights) copyOf(b []byte) (view, error) {
	buf, err := ws.dev.newBuffer(len(b))
	if err != nil {
		return view{}, err
	}
	copy(buf.bytes(), b)
	ws.copies = append(ws.copies, buf)
	return view{buf: buf, copied: true, host: b}, nil
}

// refresh re-uploads the copied views of the given matrices (after a patch changed their bits).
func (ws *weights) refresh(mats []*q1.Matrix) error {
	for _, m := range mats {
		w, ok := ws.byMat[m]
		if !ok {
			return fmt.Errorf("metal: WeightsChanged: matrix %q is not part of this backend's model", m.Name)
		}
		for _, v := range []view{w.bits, w.scales} {
			if v.copied {
				copy(v.buf.bytes()[v.off:], v.host)
			}
		}
	}
	return nil
}

// stats counts the views wrapped without copying and the views copied.
func (ws *weights) stats() (wrapped, copied int) {
	for _, w := range ws.order {
		for _, v := range []view{w.bits, w.scales} {
			if v.copied {
				copied++
			} else {
				wrapped++
			}
		}
	}
	return wrapped, copied
}

// copyAll replaces every wrapped view by a copy and releases the spans.
func (ws *weights) copyAll() error {
	for _, w := range ws.order {
		for _, v := range []*view{&w.bits, &w.scales} {
			if !v.copied {
				c, err := ws.copyOf(v.host)
				if err != nil {
					return err
				}
				*v = c
			}
		}
	}
	for _, s := range ws.spans {
		s.buf.release()
	}
	ws.spans = nil
	return nil
}

func (ws *weights) release() {
	for _, s := range ws.spans {
		s.buf.release()
	}
	for _, b := range ws.copies {
		b.release()
	}
	ws.spans, ws.copies, ws.byMat, ws.order = nil, nil, nil, nil
}
