package patch

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

// writeLargePatch writes a v1 patch of n row flips in upstream's indented style (about 75 bytes
// a flip, so n = 700000 gives a 52 MB file like the one that took 796 MB of RSS to load).
func writeLargePatch(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "large.json")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fmt.Fprint(f, "{\n  \"version\": 1,\n  \"format\": \"bankai_row_xor_v1\",\n  \"name\": \"large\",\n  \"flips\": [")
	projs := Projections()
	for i := range n {
		sep := ","
		if i == 0 {
			sep = ""
		}
		// distinct flips: (layer, proj, row) enumerates i
		fmt.Fprintf(f, "%s\n    {\n      \"layer\": %d,\n      \"proj\": %q,\n      \"row\": %d\n    }", sep, i%36, projs[i/36%7], i/252)
	}
	fmt.Fprint(f, "\n  ],\n  \"metadata\": {}\n}")
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// peakHeap runs fn while sampling the heap every 200µs and returns the highest heap in use
// (live and not yet collected objects) above what was in use before fn started.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak atomic.Uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	fn()
	if v := read(); v > peak.Load() {
		peak.Store(v)
	}
	close(done)
	<-stopped
	if peak.Load() < base {
		return 0
	}
	return peak.Load() - base
}

// BenchmarkLoadLarge loads a 700000-flip (52 MB) patch file and reports the peak heap in MB
// and the heap per flip.
func BenchmarkLoadLarge(b *testing.B) {
	const n = 700000
	path := writeLargePatch(b, n)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var peak uint64
	for b.Loop() {
		peak = max(peak, peakHeap(func() {
			p, err := Load(path)
			if err != nil {
				b.Fatal(err)
			}
			if len(p.Flips) != n {
				b.Fatalf("%d flips, want %d", len(p.Flips), n)
			}
		}))
	}
	b.ReportMetric(float64(st.Size())/1e6, "file-MB")
	b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
}
