package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Threads is the number of goroutines kernels split their work over (0 = GOMAXPROCS).
// Results never depend on it.
var Threads = 0

func threads() int {
	if Threads > 0 {
		return Threads
	}
	return runtime.GOMAXPROCS(0)
}

// minParallelWork is the smallest amount of work (rows x cols multiply-adds) worth splitting
// over goroutines.
const minParallelWork = 1 << 16

// rowChunk is the number of rows in one unit of work when rows are split over nt workers:
// about four units per worker, handed out as workers free up, so that a worker slowed down by
// other load on its core does not hold up the rest.
func rowChunk(rows, nt int) int { return max(16, (rows+4*nt-1)/(4*nt)) }

// parallelRows runs f over [0, rows) split into contiguous ranges spread over the workers,
// when the work (rows x cols) is large enough to pay for the goroutines.
func parallelRows(rows, cols int, f func(r0, r1 int)) {
	nt := threads()
	if nt <= 1 || rows*cols < minParallelWork || rows < 2*nt {
		f(0, rows)
		return
	}
	chunk := rowChunk(rows, nt)
	parallelFor(nt, (rows+chunk-1)/chunk, func(i int) {
		f(i*chunk, min(rows, (i+1)*chunk))
	})
}

// ParallelFor runs f(i) for i in [0, n) over the worker goroutines.
func ParallelFor(n int, f func(i int)) { parallelFor(threads(), n, f) }

// parallelFor runs f(i) for every i in [0, n) on up to nt goroutines, the caller's included,
// each taking the next index from a shared counter until none is left.
func parallelFor(nt, n int, f func(i int)) {
	nt = min(nt, n)
	if nt <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			f(i)
		}
	}
	var wg sync.WaitGroup
	for range nt - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}
