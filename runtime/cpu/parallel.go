package cpu

import (
	"runtime"
	"sync"
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

// parallelRows splits [0, rows) into contiguous ranges, one per worker, when the work
// (rows x cols) is large enough to pay for the goroutines.
func parallelRows(rows, cols int, f func(r0, r1 int)) {
	nt := threads()
	if nt <= 1 || rows*cols < 1<<16 || rows < 2*nt {
		f(0, rows)
		return
	}
	var wg sync.WaitGroup
	chunk := (rows + nt - 1) / nt
	for r0 := 0; r0 < rows; r0 += chunk {
		r1 := min(rows, r0+chunk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(r0, r1)
		}()
	}
	wg.Wait()
}

// ParallelFor runs f(i) for i in [0, n) over the worker goroutines.
func ParallelFor(n int, f func(i int)) {
	nt := threads()
	if nt <= 1 || n <= 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := 0; w < min(nt, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}
