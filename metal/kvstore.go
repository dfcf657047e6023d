package metal

import (
	"fmt"
	goruntime "runtime"
	"sync"
	"weak"

	"github.com/bankai-metal/bankai-metal/runtime"
)

// kvBudget is the device memory of KV stores above which creating another one first collects
// the stores of caches the program has dropped (see kvStores.sweep).
const kvBudget = 1 << 30

// kvStores keeps, on the device, the keys and values of the runtime.KVCaches that RunFlipped
// continues. A runtime.KVCache holds its keys in unexported host slices that this package cannot
// reach, so RunFlipped leaves them empty and uses the cache for its length only (Len, Commit,
// Truncate, Max); the keys live here, keyed by the cache's address through a weak pointer. A
// store is released when its cache is garbage-collected, or when the backend closes.
//
// Each store records how many positions of every layer it has written, so a cache whose
// positions were computed elsewhere (by Model.RunLayers on the CPU) is an error, not garbage.
type kvStores struct {
	dev           device
	layers, kvDim int

	mu      sync.Mutex // guards the fields below; cleanups run on another goroutine
	byCache map[weak.Pointer[runtime.KVCache]]*kvStore
	bytes   int   // device memory held by the stores
	budget  int   // sweep when bytes would pass it
	closed  bool  // the backend closed: every store is released
	swept   int64 // sweeps so far (for tests)
}

// kvStore is one cache's keys and values: per layer, keys (cap, KVDim) then values (cap, KVDim),
// RoPE applied to the keys.
type kvStore struct {
	buf    buffer
	cap    int   // positions per layer
	filled []int // per layer: positions written, from 0
}

func newKVStores(dev device, layers, kvDim int) *kvStores {
	return &kvStores{dev: dev, layers: layers, kvDim: kvDim, byCache: map[weak.Pointer[runtime.KVCache]]*kvStore{}, budget: kvBudget}
}

// keys and vals return layer l's key and value rows from position 0.
func (s *kvStore) keys(l, kvDim int) ref { return ref{s.buf, 4 * 2 * l * s.cap * kvDim} }
func (s *kvStore) vals(l, kvDim int) ref { return ref{s.buf, 4 * (2*l + 1) * s.cap * kvDim} }

// lookup returns the store of c (nil if there is none) and the positions every layer of [from,
// to) holds.
func (st *kvStores) lookup(c *runtime.KVCache, from, to int) (s *kvStore, held int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s = st.byCache[weak.Make(c)]
	if s == nil {
		return nil, 0
	}
	held = s.cap
	for l := from; l < to; l++ {
		held = min(held, s.filled[l])
	}
	return s, held
}

// reserve returns the store of c with room for need positions, creating or growing it (keeping
// the positions it holds). need must not exceed c.Max.
func (st *kvStores) reserve(c *runtime.KVCache, need int) (*kvStore, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return nil, errClosed
	}
	key := weak.Make(c)
	old := st.byCache[key]
	if old != nil && old.cap >= need {
		return old, nil
	}
	newCap := min(c.Max, max(need, 64))
	if old != nil {
		newCap = min(c.Max, max(need, 2*old.cap))
	}
	size := 4 * 2 * st.layers * newCap * st.kvDim
	if st.bytes+size > st.budget {
		st.sweep()
	}
	buf, err := st.dev.newBuffer(size)
	if err != nil {
		return nil, fmt.Errorf("metal: KV cache of %d positions: %w", newCap, err)
	}
	s := &kvStore{buf: buf, cap: newCap, filled: make([]int, st.layers)}
	if old != nil { // keep the positions held
		for l := range st.layers {
			n := old.filled[l] * st.kvDim
			copy(floats(s.keys(l, st.kvDim).bytes())[:n], floats(old.keys(l, st.kvDim).bytes()))
			copy(floats(s.vals(l, st.kvDim).bytes())[:n], floats(old.vals(l, st.kvDim).bytes()))
		}
		copy(s.filled, old.filled)
		st.bytes -= len(old.buf.bytes())
		old.buf.release()
	} else {
		goruntime.AddCleanup(c, st.drop, key)
	}
	st.byCache[key] = s
	st.bytes += size
	return s, nil
}

// written records that a RunFlipped pass wrote positions [0, n) of layers [from, to) of s (the
// positions past n, written by an earlier pass that was not committed, are stale).
func (st *kvStores) written(s *kvStore, from, to, n int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for l := from; l < to; l++ {
		s.filled[l] = n
	}
}

// sweep releases the stores of caches that are no longer reachable. Cleanups do that too, but
// only after a garbage collection, which the device memory held here does not prompt: the Go heap
// sees a few bytes per cache. So past the budget, sweep collects garbage itself, once, and raises
// the budget to twice what stays live. Called with st.mu held.
func (st *kvStores) sweep() {
	goruntime.GC() // clears the weak pointers of unreachable caches
	for k, s := range st.byCache {
		if k.Value() == nil {
			st.bytes -= len(s.buf.bytes())
			s.buf.release()
			delete(st.byCache, k)
		}
	}
	st.budget = max(kvBudget, 2*st.bytes)
	st.swept++
}

// drop releases the store of a cache that was garbage-collected (a cleanup).
func (st *kvStores) drop(key weak.Pointer[runtime.KVCache]) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s := st.byCache[key]; s != nil {
		st.bytes -= len(s.buf.bytes())
		s.buf.release()
		delete(st.byCache, key)
	}
}

// release frees every store (the backend is closing).
func (st *kvStores) release() {
	st.mu.Lock()
	defer st.mu.Unlock()
	for k, s := range st.byCache {
		s.buf.release()
		delete(st.byCache, k)
	}
	st.bytes, st.closed = 0, true
}
