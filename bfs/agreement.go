package bfs

import (
	"cmp"
	"math"
	"slices"
)

// Agreement says how well first-order estimates rank candidates, against their exact S.
type Agreement struct {
	N        int     `json:"n"`        // candidates with both numbers
	Spearman float64 `json:"spearman"` // rank correlation of estimate and exact S (average ranks for ties)
	// TopOverlap[k] is the fraction of the k most helpful candidates by exact S that are also
	// among the k most helpful by estimate, for k = 10 and 100 (when there are that many).
	TopOverlap map[int]float64 `json:"top_overlap"`
	// SignAgreement is the fraction of candidates whose estimate and exact S have the same sign.
	SignAgreement float64 `json:"sign_agreement"`
}

// agreement compares the estimates and exact scores of rows (every row must have Est).
func agreement(rows []ScanRow) *Agreement {
	n := len(rows)
	est, ex := make([]float64, n), make([]float64, n)
	same := 0
	for i, r := range rows {
		est[i], ex[i] = *r.Est, r.S
		if (est[i] < 0) == (ex[i] < 0) {
			same++
		}
	}
	a := &Agreement{N: n, Spearman: spearman(est, ex), TopOverlap: map[int]float64{}}
	if math.IsNaN(a.Spearman) { // fewer than two candidates, or a constant column: no ranking to compare
		a.Spearman = 0
	}
	if n > 0 {
		a.SignAgreement = float64(same) / float64(n)
	}
	re, rx := rankAscending(est), rankAscending(ex)
	for _, k := range []int{10, 100} {
		if k > n {
			continue
		}
		in := map[int]bool{}
		for _, i := range re[:k] {
			in[i] = true
		}
		hit := 0
		for _, i := range rx[:k] {
			if in[i] {
				hit++
			}
		}
		a.TopOverlap[k] = float64(hit) / float64(k)
	}
	return a
}

// rankAscending returns the indices of v from smallest to largest (ties keep index order).
func rankAscending(v []float64) []int {
	idx := indices(0, len(v))
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(v[a], v[b]) })
	return idx
}

// pickFloat returns v at the indices idx.
func pickFloat(idx []int, v []float64) []float64 {
	out := make([]float64, len(idx))
	for i, j := range idx {
		out[i] = v[j]
	}
	return out
}

// spearman is Pearson's correlation of the average ranks of x and y (NaN when either is
// constant or there are fewer than two values).
func spearman(x, y []float64) float64 {
	rx, ry := avgRanks(x), avgRanks(y)
	n := float64(len(x))
	if n < 2 {
		return math.NaN()
	}
	var mx, my float64
	for i := range rx {
		mx += rx[i]
		my += ry[i]
	}
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i := range rx {
		dx, dy := rx[i]-mx, ry[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	return sxy / math.Sqrt(sxx*syy)
}

// avgRanks gives each value its rank (1-based), ties sharing the average of their ranks.
func avgRanks(v []float64) []float64 {
	idx := rankAscending(v)
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = avg
		}
		i = j + 1
	}
	return r
}
