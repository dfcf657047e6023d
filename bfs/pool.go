package bfs

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// Granularity is what one candidate flip covers.
type Granularity int

const (
	// GranRow flips a whole output row.
	GranRow Granularity = iota
	// GranGroup flips one 128-weight group of a row.
	GranGroup
	// GranBit flips one weight.
	GranBit
)

// String returns "row", "group" or "bit".
func (g Granularity) String() string {
	switch g {
	case GranGroup:
		return "group"
	case GranBit:
		return "bit"
	}
	return "row"
}

// ParseGranularity accepts "row", "group" or "bit".
func ParseGranularity(s string) (Granularity, error) {
	switch s {
	case "row":
		return GranRow, nil
	case "group":
		return GranGroup, nil
	case "bit":
		return GranBit, nil
	}
	return 0, fmt.Errorf("bfs: unknown granularity %q (want row, group or bit)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (g Granularity) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (g *Granularity) UnmarshalText(b []byte) error {
	v, err := ParseGranularity(string(b))
	*g = v
	return err
}

// DefaultLayers returns upstream's default search layers [1, 2, 3, 4, N-2] (34 of 36 for
// Bonsai-8B). For smaller models, layers that do not exist are dropped and duplicates removed,
// keeping the order: 2 layers give [1, 0], 4 layers [1, 2, 3], and a 1-layer model [0].
func DefaultLayers(n int) []int {
	var out []int
	for _, l := range []int{1, 2, 3, 4, n - 2} {
		if l >= 0 && l < n && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	if len(out) == 0 && n > 0 {
		out = []int{0}
	}
	return out
}

// DefaultProjs are upstream's search projections.
func DefaultProjs() []string { return []string{"gate_proj", "up_proj"} }

// resolveSpace applies the default layers and projections and validates them: layers in range
// and distinct, projections known (GGUF names accepted, Hugging Face names returned) and distinct.
func resolveSpace(m *runtime.Model, layers []int, projs []string) ([]int, []string, error) {
	if layers == nil {
		layers = DefaultLayers(m.NumLayers())
	}
	if projs == nil {
		projs = DefaultProjs()
	}
	projs = slices.Clone(projs)
	for i, p := range projs {
		c, err := patch.CanonicalProj(p)
		if err != nil {
			return nil, nil, err
		}
		if slices.Contains(projs[:i], c) {
			return nil, nil, fmt.Errorf("projection %s listed twice", c)
		}
		projs[i] = c
	}
	for i, l := range layers {
		if l < 0 || l >= m.NumLayers() {
			return nil, nil, fmt.Errorf("layer %d out of range [0,%d)", l, m.NumLayers())
		}
		if slices.Contains(layers[:i], l) {
			return nil, nil, fmt.Errorf("layer %d listed twice", l)
		}
	}
	return layers, projs, nil
}

// pool is the ordered candidate set of a search or scan: for each layer (in the given order),
// each projection, each row, each group or column of the row. Rows carry upstream's sampling
// weight, the mean |scale| of the row.
type pool struct {
	gran   Granularity
	rows   []poolRow
	prefix []int64   // prefix[i] = candidates before row i (len(rows)+1)
	cdf    []float64 // sampling CDF over rows, weight × candidates of the row, normalised
}

type poolRow struct {
	layer int
	proj  string
	row   int
	subs  int // candidates in the row: 1, Groups or Cols
}

// newPool lists the candidates of layers × projs at granularity gran.
func newPool(m *runtime.Model, layers []int, projs []string, gran Granularity) (*pool, error) {
	if len(layers) == 0 || len(projs) == 0 {
		return nil, fmt.Errorf("bfs: no layers or projections to search")
	}
	p := &pool{gran: gran, prefix: []int64{0}}
	var w []float64
	for _, l := range layers {
		for _, name := range projs {
			mat, err := m.Matrix(l, name)
			if err != nil {
				return nil, fmt.Errorf("bfs: %w", err)
			}
			pr, _ := runtime.ParseProj(name)
			subs := 1
			switch gran {
			case GranGroup:
				subs = mat.Groups
			case GranBit:
				subs = mat.Cols
			}
			for r := 0; r < mat.Rows; r++ {
				var s float64
				for g := 0; g < mat.Groups; g++ {
					s += math.Abs(float64(mat.Scale(r, g)))
				}
				p.rows = append(p.rows, poolRow{layer: l, proj: pr.String(), row: r, subs: subs})
				p.prefix = append(p.prefix, p.prefix[len(p.prefix)-1]+int64(subs))
				w = append(w, s/float64(mat.Groups)*float64(subs))
			}
		}
	}
	// Like numpy's choice(p=...): p = w / Σw, cdf = cumsum(p) / cdf[last].
	var total float64
	for _, v := range w {
		total += v
	}
	if !(total > 0) || math.IsInf(total, 0) {
		return nil, fmt.Errorf("bfs: candidate row scales sum to %g", total)
	}
	p.cdf = make([]float64, len(w))
	var c float64
	for i, v := range w {
		c += v / total
		p.cdf[i] = c
	}
	last := p.cdf[len(p.cdf)-1]
	for i := range p.cdf {
		p.cdf[i] /= last
	}
	return p, nil
}

// size is the number of candidates.
func (p *pool) size() int64 { return p.prefix[len(p.prefix)-1] }

// at returns candidate i in pool order.
func (p *pool) at(i int64) patch.Flip {
	r := sort.Search(len(p.rows), func(k int) bool { return p.prefix[k+1] > i })
	return p.flip(r, int(i-p.prefix[r]))
}

func (p *pool) flip(r, sub int) patch.Flip {
	pr := p.rows[r]
	switch p.gran {
	case GranGroup:
		return patch.GroupFlip(pr.layer, pr.proj, pr.row, sub)
	case GranBit:
		return patch.BitFlip(pr.layer, pr.proj, pr.row, sub)
	}
	return patch.RowFlip(pr.layer, pr.proj, pr.row)
}

// draw samples one candidate: a row by inverse CDF on one uniform variate (the first index with
// cdf > u, numpy's searchsorted side="right"), then, for group and bit granularity, a uniform
// group or column of that row. Every candidate thus has probability proportional to its row's
// mean |scale|, as in upstream's pool where each group carries its row's weight.
func (p *pool) draw(rng *rand.Rand) patch.Flip {
	u := rng.Float64()
	r := sort.Search(len(p.cdf), func(k int) bool { return p.cdf[k] > u })
	r = min(r, len(p.cdf)-1)
	sub := 0
	if p.rows[r].subs > 1 {
		sub = rng.IntN(p.rows[r].subs)
	}
	return p.flip(r, sub)
}

// sample returns n distinct candidate indices chosen uniformly (Floyd's algorithm), in pool
// order; all of them when n <= 0 or n >= size.
func (p *pool) sample(n int64, seed uint64) []int64 {
	size := p.size()
	if n <= 0 || n >= size {
		out := make([]int64, size)
		for i := range out {
			out[i] = int64(i)
		}
		return out
	}
	rng := rand.New(rand.NewPCG(seed, seedStream))
	set := make(map[int64]struct{}, n)
	for j := size - n; j < size; j++ {
		t := rng.Int64N(j + 1)
		if _, ok := set[t]; ok {
			t = j
		}
		set[t] = struct{}{}
	}
	out := make([]int64, 0, n)
	for i := range set {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// seedStream is the second PCG word of every generator bfs seeds.
const seedStream = 0xba4a1
