package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Workers is the number of goroutines a kernel call splits its work over; 0 means GOMAXPROCS.
// It is a value passed with each call (the model holds one), not a global: results never
// depend on it.
type Workers int

// count is the number of goroutines w stands for.
func (w Workers) count() int {
	if w > 0 {
		return int(w)
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

// ParallelFor runs f(i) for i in [0, n) over w goroutines.
func (w Workers) ParallelFor(n int, f func(i int)) { parallelFor(w.count(), n, f) }

// ParallelFor runs f(i) for i in [0, n) over GOMAXPROCS goroutines.
func ParallelFor(n int, f func(i int)) { Workers(0).ParallelFor(n, f) }

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
