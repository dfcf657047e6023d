//go:build darwin && !nometal

package metal

import (
	"fmt"
	"sync"

	"github.com/bankai-metal/bankai-metal/shaders"
)

// metalGPU implements device with the binding: one device, one command queue, and a pipeline
// for every kernel, all built up front (compiling mid-run costs hundreds of milliseconds and has
// been reported to race; docs/METAL.md §3.12).
type metalGPU struct {
	dev   mtlDevice
	queue mtlQueue
	lib   mtlLibrary
	pipes map[string]mtlPipeline
	label string
	once  sync.Once
}

func openMetal() (*metalGPU, error) {
	if err := load(); err != nil {
		return nil, err
	}
	g := &metalGPU{pipes: map[string]mtlPipeline{}}
	err := withPool(func() error {
		var err error
		if g.dev, err = defaultDevice(); err != nil {
			return err
		}
		g.label = g.dev.name()
		if !g.dev.hasUnifiedMemory() {
			return fmt.Errorf("%w: %s has no unified memory (only Apple silicon is supported)", ErrUnavailable, g.label)
		}
		if g.lib, err = g.dev.newLibrary(shaders.Source()); err != nil {
			return err
		}
		for _, k := range shaders.Kernels {
			f, err := g.lib.function(k)
			if err != nil {
				return err
			}
			p, err := g.dev.newPipeline(f, k)
			f.release()
			if err != nil {
				return err
			}
			g.pipes[k] = p
			if w := p.simdWidth(); w != shaders.SimdWidth {
				return fmt.Errorf("metal: kernel %s runs %d-wide simdgroups; the kernels assume %d", k, w, shaders.SimdWidth)
			}
			if m := p.maxThreads(); m < shaders.MaxThreads[k] {
				return fmt.Errorf("metal: kernel %s allows %d threads per threadgroup; it needs %d", k, m, shaders.MaxThreads[k])
			}
		}
		g.queue, err = g.dev.newQueue()
		return err
	})
	if err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

func (g *metalGPU) name() string { return g.label }

// metalBuffer adapts mtlBuffer to buffer, caching the host view.
type metalBuffer struct {
	b    mtlBuffer
	host []byte
}

func (b *metalBuffer) bytes() []byte { return b.host }

// release releases the MTLBuffer once; later calls do nothing.
func (b *metalBuffer) release() {
	if b.b.id != 0 {
		_ = withPool(func() error { b.b.release(); return nil })
		b.b.id, b.host = 0, nil
	}
}

func (g *metalGPU) newBuffer(size int) (buffer, error) {
	var out *metalBuffer
	err := withPool(func() error {
		b, err := g.dev.newBuffer(max(size, 16))
		if err != nil {
			return err
		}
		out = &metalBuffer{b: b, host: b.contents()[:size]}
		return nil
	})
	return out, err
}

func (g *metalGPU) wrap(span []byte) buffer {
	var out *metalBuffer
	_ = withPool(func() error {
		if b, ok := g.dev.newBufferNoCopy(span); ok {
			out = &metalBuffer{b: b, host: span}
		}
		return nil
	})
	if out == nil {
		return nil // a nil *metalBuffer in a buffer interface would not compare equal to nil
	}
	return out
}

// run encodes f into one command buffer and one compute encoder, commits and waits: one token
// step is one call, inside one autorelease pool.
func (g *metalGPU) run(f func(e encoder)) error {
	return withPool(func() error {
		cb, err := g.queue.commandBuffer()
		if err != nil {
			return err
		}
		enc, err := cb.computeEncoder()
		if err != nil {
			return err
		}
		// A panic while encoding still ends the pass (a command buffer released with an open
		// encoder aborts the process in Metal, hiding the panic); nothing is committed then.
		encodeAll(&metalEncoder{e: enc, g: g}, enc.endEncoding, f)
		cb.commit()
		cb.waitUntilCompleted()
		return cb.err()
	})
}

func (g *metalGPU) close() {
	g.once.Do(func() {
		_ = withPool(func() error {
			for _, p := range g.pipes {
				p.release()
			}
			g.queue.release()
			g.lib.release()
			g.dev.release()
			return nil
		})
	})
}

// metalEncoder adapts mtlEncoder to encoder.
type metalEncoder struct {
	e mtlEncoder
	g *metalGPU
}

func (m *metalEncoder) dispatch(kernel string, args []byte, g shaders.Grid, binds ...bind) {
	p, ok := m.g.pipes[kernel]
	if !ok {
		panic("metal: no pipeline for kernel " + kernel) // shaders.Kernels lists every kernel
	}
	m.e.setPipeline(p)
	m.e.setBytes(args, 0)
	for _, b := range binds {
		m.e.setBuffer(b.buf.(*metalBuffer).b.id, b.off, b.index)
	}
	if g.TGMem > 0 {
		m.e.setThreadgroupMemoryLength(g.TGMem, 0)
	}
	m.e.dispatchThreadgroups(
		mtlSize{Width: uint64(g.Groups[0]), Height: uint64(g.Groups[1]), Depth: uint64(g.Groups[2])},
		mtlSize{Width: uint64(g.Threads[0]), Height: uint64(g.Threads[1]), Depth: uint64(g.Threads[2])})
}

func (m *metalEncoder) barrier() { m.e.memoryBarrier() }
