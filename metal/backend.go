package metal

import (
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/shaders"
)

// backend implements runtime.Backend on a device.
type backend struct {
	m        *runtime.Model
	dev      device
	kind     string // "metal", or "metal-emu" on the CPU harness
	w        *weights
	coherent bool // the GPU saw a host write through the no-copy views (probe.go)
	embed    *weight
	output   *weight
	layers   []layerWeights
	norms    buffer // every norm vector, float32: per layer attn, q, k, ffn, then the output norm
	outNorm  ref
	flip     flipState // RunFlipped's buffers (flipped.go)
	kv       *kvStores // RunFlipped's KV caches (kvstore.go)
	closed   bool
}

// layerWeights is one decoder layer on the device.
type layerWeights struct {
	proj                            [runtime.NumProj]*weight
	attnNorm, qNorm, kNorm, ffnNorm ref // (Hidden), (HeadDim), (HeadDim), (Hidden)
}

// The backend's required and optional capabilities (runtime/backend.go).
var (
	_ runtime.Backend        = (*backend)(nil)
	_ runtime.Describer      = (*backend)(nil)
	_ runtime.BatchEvaluator = (*backend)(nil)
)

var errClosed = errors.New("metal: backend is closed")

// newBackend places m on dev; mapped says whether host memory lies in a file mapping (and may
// be wrapped without a copy).
func newBackend(m *runtime.Model, dev device, kind string, mapped func(lo, hi uintptr) bool) (_ *backend, err error) {
	if err := checkModel(m); err != nil {
		return nil, err
	}
	b := &backend{m: m, dev: dev, kind: kind, w: newWeights(dev, os.Getpagesize(), mapped), kv: newKVStores(dev, len(m.Layers), m.KVDim())}
	defer func() {
		if err != nil {
			b.release()
		}
	}()
	if b.embed, err = b.w.add(m.Embed); err != nil {
		return nil, err
	}
	if b.output, err = b.w.add(m.Output); err != nil {
		return nil, err
	}
	b.layers = make([]layerWeights, len(m.Layers))
	for l := range m.Layers {
		for p := range runtime.NumProj {
			if b.layers[l].proj[p], err = b.w.add(m.Layers[l].Proj[p]); err != nil {
				return nil, err
			}
		}
	}
	if b.coherent, err = b.w.probe(); err != nil {
		return nil, err
	}
	return b, b.uploadNorms()
}

// checkModel rejects shapes the kernels do not handle.
func checkModel(m *runtime.Model) error {
	switch {
	case m == nil || m.Embed == nil || m.Output == nil || len(m.Layers) == 0:
		return errors.New("metal: model has no weights")
	case m.HeadDim <= 0 || m.HeadDim%2 != 0 || m.HeadDim > shaders.AttnMaxDim:
		return fmt.Errorf("metal: head dim %d not supported (even, at most %d)", m.HeadDim, shaders.AttnMaxDim)
	case m.Heads <= 0 || m.KVHeads <= 0 || m.Heads%m.KVHeads != 0:
		return fmt.Errorf("metal: %d query heads are not a multiple of %d kv heads", m.Heads, m.KVHeads)
	case len(m.OutNorm) != m.Hidden:
		return fmt.Errorf("metal: output norm has %d weights, want %d", len(m.OutNorm), m.Hidden)
	}
	for _, x := range []int{m.Vocab, m.Hidden, m.FFN, m.QDim(), m.KVDim()} {
		if x <= 0 || x > math.MaxUint32/4 {
			return fmt.Errorf("metal: model dimension %d out of range", x)
		}
	}
	return nil
}

// uploadNorms copies every norm vector into one buffer.
func (b *backend) uploadNorms() error {
	m := b.m
	total := len(m.OutNorm)
	for _, L := range m.Layers {
		total += len(L.AttnNorm) + len(L.QNorm) + len(L.KNorm) + len(L.FFNNorm)
	}
	buf, err := b.dev.newBuffer(4 * total)
	if err != nil {
		return err
	}
	b.norms = buf
	dst := floats(buf.bytes())
	off := 0
	put := func(v []float32) ref {
		r := ref{buf, 4 * off}
		off += copy(dst[off:], v)
		return r
	}
	for l, L := range m.Layers {
		if len(L.AttnNorm) != m.Hidden || len(L.QNorm) != m.HeadDim || len(L.KNorm) != m.HeadDim || len(L.FFNNorm) != m.Hidden {
			return fmt.Errorf("metal: layer %d: norm weights have the wrong length", l)
		}
		lw := &b.layers[l]
		lw.attnNorm, lw.qNorm, lw.kNorm, lw.ffnNorm = put(L.AttnNorm), put(L.QNorm), put(L.KNorm), put(L.FFNNorm)
	}
	b.outNorm = put(m.OutNorm)
	return nil
}

// Name implements runtime.Backend.
func (b *backend) Name() string { return b.kind }

// Model implements runtime.Backend.
func (b *backend) Model() *runtime.Model { return b.m }

// WeightsChanged implements runtime.Backend: views wrapped over the file mapping already show
// the host's bits; copied views are uploaded again.
func (b *backend) WeightsChanged(mats ...*q1.Matrix) error {
	if b.closed {
		return errClosed
	}
	return b.w.refresh(mats)
}

// Describe implements runtime.Describer: where the backend runs and how its weights are held.
func (b *backend) Describe() string {
	wrapped, copied := b.w.stats()
	s := fmt.Sprintf("%s on %s: %d weight views no-copy over %d file spans, %d copied", b.kind, b.dev.name(), wrapped, len(b.w.spans), copied)
	if !b.coherent {
		s += " (no-copy views were abandoned: the GPU did not see host writes)"
	}
	return s
}

// Close implements runtime.Backend: it releases the weights' device views (so the model, whose
// file mapping they may wrap, must be closed only after the backend), RunFlipped's buffers and
// KV stores, and the device. Sessions should be closed first; one that is not refuses to run
// afterwards (Forward returns an error and touches no device memory), and its Close still frees
// its own buffers. NewSession, WeightsChanged and RunFlipped fail after Close; closing twice is
// harmless.
func (b *backend) Close() error {
	if !b.closed {
		b.closed = true
		b.release()
		b.dev.close()
	}
	return nil
}

func (b *backend) release() {
	b.flip.mu.Lock()
	b.flip.release()
	b.flip.mu.Unlock()
	b.kv.release()
	if b.norms != nil {
		b.norms.release()
		b.norms = nil
	}
	b.w.release()
}
