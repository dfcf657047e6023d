package runtime

import "fmt"

// KVCache holds the keys and values of one sequence for every layer, in float32.
// It grows on demand up to Max tokens, so a long context limit costs nothing until used.
type KVCache struct {
	Max int         // context limit in tokens
	n   int         // committed tokens
	k   [][]float32 // per layer (n, KVDim), RoPE applied
	v   [][]float32 // per layer (n, KVDim)
	kvd int
}

// NewKVCache returns an empty cache for m of at most maxCtx tokens.
func (m *Model) NewKVCache(maxCtx int) *KVCache {
	return &KVCache{Max: maxCtx, k: make([][]float32, len(m.Layers)), v: make([][]float32, len(m.Layers)), kvd: m.KVDim()}
}

// Len is the number of tokens in the cache.
func (c *KVCache) Len() int { return c.n }

// Reset empties the cache, keeping its memory.
func (c *KVCache) Reset() { c.Truncate(0) }

// Truncate drops every token from position n on.
func (c *KVCache) Truncate(n int) {
	if n < c.n {
		c.n = n
		for l := range c.k {
			c.k[l] = c.k[l][:min(len(c.k[l]), n*c.kvd)]
			c.v[l] = c.v[l][:min(len(c.v[l]), n*c.kvd)]
		}
	}
}

// Bytes is the memory the cache holds now.
func (c *KVCache) Bytes() int64 {
	var b int64
	for l := range c.k {
		b += int64(cap(c.k[l])+cap(c.v[l])) * 4
	}
	return b
}

// ErrContextFull is returned when a forward would pass the cache's context limit.
var ErrContextFull = fmt.Errorf("context window is full")

func (c *KVCache) check(n int) error {
	if c.n+n > c.Max {
		return fmt.Errorf("%w: %d tokens in cache + %d new > limit %d", ErrContextFull, c.n, n, c.Max)
	}
	return nil
}

// appendLayer stores the keys and values (n, KVDim) of new tokens of layer l and returns the
// layer's whole key and value history.
func (c *KVCache) appendLayer(l int, k, v []float32) (keys, vals []float32) {
	c.k[l] = append(c.k[l][:c.n*c.kvd], k...)
	c.v[l] = append(c.v[l][:c.n*c.kvd], v...)
	return c.k[l], c.v[l]
}
