package tokenizer

import (
	"strings"
	"sync"
)

// BPE over one pre-tokenizer piece (docs/FORMATS.md §9.1 step 5). The piece's bytes start as the
// single-character tokens of the byte-level alphabet; then, repeatedly, the adjacent pair with
// the lowest merge rank is merged (ties: leftmost pair first) until no adjacent pair has a
// rank. A heap of candidate pairs over a doubly linked list of symbols makes this
// O(n log n) per piece. No whole-piece shortcut is taken: a vocabulary entry is not always
// what the merges produce, so the merge loop always runs (the piece cache makes repeats cheap).

// merge is the result of merging one adjacent pair.
type merge struct {
	rank int32 // index in the merge list; lower merges first
	id   int32 // token id of the merged string
}

// pairKey packs a pair of token ids into a map key.
func pairKey(left, right int32) uint64 { return uint64(uint32(left))<<32 | uint64(uint32(right)) }

// symbol is one node of the linked list of a piece being merged.
type symbol struct {
	id         int32
	prev, next int32 // indices into the symbol slice, -1 at the ends
}

// candidate is a mergeable adjacent pair; it is stale once either side has changed.
type candidate struct {
	rank, pos   int32 // pos: index of the left symbol (its original byte position order)
	left, right int32 // the token ids the pair had when it was pushed
}

// less orders candidates by rank, then leftmost first.
func (a candidate) less(b candidate) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// candHeap is a binary min-heap of candidates.
type candHeap []candidate

func (h *candHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *candHeap) pop() candidate {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].less(s[m]) {
			m = l
		}
		if r < len(s) && s[r].less(s[m]) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// bpe appends the token ids of one piece (raw bytes, before the byte-level mapping) to out.
func (t *Tokenizer) bpe(piece string, out []int32) []int32 {
	if ids, ok := t.cache.get(piece); ok {
		return append(out, ids...)
	}
	syms := make([]symbol, 0, len(piece)) // (n_bytes,)
	for i := 0; i < len(piece); i++ {
		id := t.byteID[piece[i]]
		if id < 0 {
			continue // the byte's character is not in the vocabulary: dropped, as HF does without unk
		}
		n := int32(len(syms))
		syms = append(syms, symbol{id: id, prev: n - 1, next: n + 1})
	}
	if len(syms) == 0 {
		return out
	}
	syms[len(syms)-1].next = -1

	var h candHeap
	try := func(pos int32) {
		nx := syms[pos].next
		if nx < 0 {
			return
		}
		if m, ok := t.merges[pairKey(syms[pos].id, syms[nx].id)]; ok {
			h.push(candidate{rank: m.rank, pos: pos, left: syms[pos].id, right: syms[nx].id})
		}
	}
	for i := range syms {
		try(int32(i))
	}
	for len(h) > 0 {
		c := h.pop()
		l := &syms[c.pos]
		if l.id != c.left || l.next < 0 || syms[l.next].id != c.right {
			continue // stale: one side has merged since
		}
		r := syms[l.next]
		syms[l.next].id = -1 // dead: candidates starting at it are stale
		l.id = t.merges[pairKey(c.left, c.right)].id
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = c.pos
		}
		if l.prev >= 0 {
			try(l.prev)
		}
		try(c.pos)
	}

	start := len(out)
	for i := int32(0); i >= 0; i = syms[i].next {
		out = append(out, syms[i].id)
	}
	t.cache.put(piece, out[start:])
	return out
}

// pieceCache remembers the ids of short pieces; it is cleared when full. Safe for concurrent use.
type pieceCache struct {
	mu sync.RWMutex
	m  map[string][]int32
}

const (
	cacheMaxEntries  = 1 << 16
	cacheMaxPieceLen = 64 // bytes; longer pieces are rare and not worth keeping
)

func (c *pieceCache) get(piece string) ([]int32, bool) {
	if len(piece) > cacheMaxPieceLen {
		return nil, false
	}
	c.mu.RLock()
	ids, ok := c.m[piece]
	c.mu.RUnlock()
	return ids, ok
}

func (c *pieceCache) put(piece string, ids []int32) {
	if len(piece) > cacheMaxPieceLen {
		return
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= cacheMaxEntries {
		c.m = make(map[string][]int32)
	}
	c.m[strings.Clone(piece)] = append([]int32(nil), ids...) // clone: piece may alias a large text
	c.mu.Unlock()
}
