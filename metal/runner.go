package metal

import (
	"errors"
	"fmt"
	"math"
	"os"
	"unsafe"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/shaders"
)

// KernelRunner runs single kernels on a device, for tests that compare every kernel with its Go
// twin in runtime/cpu (internal/backendtest). Each method uploads its inputs into fresh buffers,
// dispatches once, waits and returns the output. Matrices are copied, never wrapped. Output
// buffers carry guard values after the data; a kernel writing into them is reported as an
// error. A KernelRunner is not safe for concurrent use, and refuses work once closed.
type KernelRunner struct {
	dev    device
	closed bool
}

var errRunnerClosed = errors.New("metal: kernel runner is closed")

// guard is the number of sentinel floats after every output, and sentinel their bit pattern
// (a quiet NaN no kernel produces).
const (
	guard    = 64
	sentinel = 0x7fc0dead
)

// Name describes the device the kernels run on.
func (r *KernelRunner) Name() string { return r.dev.name() }

// Close releases the device; later kernel calls return an error. Closing twice is harmless.
func (r *KernelRunner) Close() error {
	if !r.closed {
		r.closed = true
		r.dev.close()
	}
	return nil
}

// job holds the buffers of one kernel launch.
type job struct {
	r    *KernelRunner
	ws   *weights
	bufs []buffer
	outs []ref // outputs with their guard bands
	err  error
}

// job starts a kernel launch; on a closed runner it carries the error and allocates nothing.
func (r *KernelRunner) job() *job {
	j := &job{r: r, ws: newWeights(r.dev, os.Getpagesize(), nil)}
	if r.closed {
		j.err = errRunnerClosed
	}
	return j
}

func (j *job) alloc(size int) ref {
	if j.err != nil {
		return ref{}
	}
	b, err := j.r.dev.newBuffer(size)
	if err != nil {
		j.err = err
		return ref{}
	}
	j.bufs = append(j.bufs, b)
	return ref{b, 0}
}

// in uploads data.
func (j *job) in(data []byte) ref {
	r := j.alloc(max(len(data), 4))
	if j.err == nil {
		copy(r.buf.bytes(), data)
	}
	return r
}

// out allocates n floats (initialised from init when given) followed by the guard band.
func (j *job) out(n int, init []float32) ref {
	r := j.alloc(4 * (n + guard))
	if j.err == nil {
		f := floats(r.buf.bytes())
		copy(f, init)
		for i := n; i < n+guard; i++ {
			f[i] = math.Float32frombits(sentinel)
		}
		j.outs = append(j.outs, r)
	}
	return r
}

func (j *job) weight(m *q1.Matrix) *weight {
	if j.err != nil {
		return nil
	}
	w, err := j.ws.add(m)
	j.err = err
	return w
}

// run dispatches and returns the first n floats of out.
func (j *job) run(kernel string, out ref, n int, f func(e encoder)) ([]float32, error) {
	defer j.close()
	if j.err != nil {
		return nil, j.err
	}
	if err := j.r.dev.run(f); err != nil {
		return nil, err
	}
	for _, o := range j.outs {
		f := floats(o.buf.bytes())
		for _, v := range f[len(f)-guard:] {
			if math.Float32bits(v) != sentinel {
				return nil, fmt.Errorf("metal: kernel %s wrote past the end of its output", kernel)
			}
		}
	}
	return append([]float32(nil), floats(out.buf.bytes())[:n]...), nil
}

func (j *job) close() {
	for _, b := range j.bufs {
		b.release()
	}
	j.ws.release()
}

// MatMul runs matvec_q1: out (n, Rows) = x (n, Cols) · Wᵀ, like cpu.MatMul.
func (r *KernelRunner) MatMul(m *q1.Matrix, x []float32, n int) ([]float32, error) {
	j := r.job()
	w, xb, out := j.weight(m), j.in(floatBytes(x[:n*m.Cols])), j.out(n*m.Rows, nil)
	return j.run(shaders.KernelMatVec, out, n*m.Rows, func(e encoder) { encMatVec(e, w, xb, n, out) })
}

// Embedding runs embed_q1: the rows tokens of m, dequantised (len(tokens), Cols), like
// q1.Matrix.DequantRow.
func (r *KernelRunner) Embedding(m *q1.Matrix, tokens []int32) ([]float32, error) {
	j := r.job()
	n := len(tokens)
	w, tb, out := j.weight(m), j.in(int32Bytes(tokens)), j.out(n*m.Cols, nil)
	return j.run(shaders.KernelEmbed, out, n*m.Cols, func(e encoder) { encEmbed(e, w, tb, n, out) })
}

// RMSNorm runs rms_norm over the len(x)/len(w) rows of x, like cpu.RMSNorm.
func (r *KernelRunner) RMSNorm(x, w []float32, eps float32) ([]float32, error) {
	j := r.job()
	rows := len(x) / len(w)
	xb, wb, out := j.in(floatBytes(x)), j.in(floatBytes(w)), j.out(len(x), nil)
	return j.run(shaders.KernelRMSNorm, out, len(x), func(e encoder) { encRMSNorm(e, xb, wb, out, rows, len(w), eps) })
}

// Add runs add and returns dst + src, like cpu.Add.
func (r *KernelRunner) Add(dst, src []float32) ([]float32, error) {
	j := r.job()
	out, sb := j.out(len(dst), dst), j.in(floatBytes(src))
	return j.run(shaders.KernelAdd, out, len(dst), func(e encoder) { encAdd(e, out, sb, len(dst)) })
}

// SiluMul runs silu_mul, like cpu.SiluMul.
func (r *KernelRunner) SiluMul(gate, up []float32) ([]float32, error) {
	j := r.job()
	gb, ub, out := j.in(floatBytes(gate)), j.in(floatBytes(up)), j.out(len(gate), nil)
	return j.run(shaders.KernelSiluMul, out, len(gate), func(e encoder) { encSiluMul(e, gb, ub, out, len(gate)) })
}

// ApplyRope runs rope_neox on a copy of x (n, heads, dim) with tables (n, dim/2), like
// cpu.ApplyRope.
func (r *KernelRunner) ApplyRope(x []float32, n, heads, dim int, cos, sin []float32) ([]float32, error) {
	j := r.job()
	out, cb, sb := j.out(n*heads*dim, x), j.in(floatBytes(cos)), j.in(floatBytes(sin))
	return j.run(shaders.KernelRope, out, n*heads*dim, func(e encoder) { encRope(e, out, n, heads, dim, cb, sb) })
}

// Attention runs attention for n queries q (n, heads, dim) over k, v (ctx, kvHeads, dim), like
// cpu.Attention.
func (r *KernelRunner) Attention(q, k, v []float32, n, ctx, heads, kvHeads, dim int) ([]float32, error) {
	j := r.job()
	qb, kb, vb, out := j.in(floatBytes(q)), j.in(floatBytes(k)), j.in(floatBytes(v)), j.out(n*heads*dim, nil)
	return j.run(shaders.KernelAttention, out, n*heads*dim, func(e encoder) {
		encAttention(e, qb, kb, vb, out, n, ctx, heads, kvHeads, dim)
	})
}

// FlipDelta runs flip_delta: for every candidate flip f and input t, res[f][t] is what
// cpu.FlipDelta would leave in base[t][row_f] (base is MatMul(m, x), (n, Rows)).
func (r *KernelRunner) FlipDelta(m *q1.Matrix, x []float32, n int, base []float32, flips []shaders.FlipDesc) ([]float32, error) {
	j := r.job()
	var fb []byte
	if len(flips) > 0 {
		fb = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(flips))), len(flips)*int(unsafe.Sizeof(flips[0])))
	}
	w, xb, bb, flb := j.weight(m), j.in(floatBytes(x[:n*m.Cols])), j.in(floatBytes(base[:n*m.Rows])), j.in(fb)
	out := j.out(len(flips)*n, nil)
	return j.run(shaders.KernelFlipDelta, out, len(flips)*n, func(e encoder) {
		encFlipDelta(e, w, xb, bb, flb, out, n, len(flips))
	})
}

// int32Bytes views int32 values as bytes.
func int32Bytes(v []int32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}
