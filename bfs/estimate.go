package bfs

import (
	"fmt"
	"math"
	"slices"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// First-order estimates (docs/SENSITIVITY.md). One backward pass per probe sequence gives, for
// every projection, its input x (n, Cols), output o (n, Rows) and dgap/do (n, Rows). A flip
// changes output row r by δo[t] and, to first order, the probe's gap by Σ_t dgap/do[t][r]·δo[t]:
//
//	row:    δo[t] = −2·o[t][r]
//	group:  δo[t] = −2·c[t],  c[t] = Σ_{j∈g} w[r][j]·x[t][j]  (the group's share of o[t][r])
//	bit:    δo[t] = −2·w[r][j]·x[t][j]
//
// gate_proj rows and groups go through the SiLU instead (the activation form, which the linear
// one misses badly there): with g, u the gate and up outputs and dh = dgap/dh the gradient at
// the down projection's input, h = silu(g)·u changes by
//
//	row:    δh[t] = −g[t]·u[t]                      (silu(−g) − silu(g) = −g)
//	group:  δh[t] = (silu(g[t] − 2c[t]) − silu(g[t]))·u[t]
//
// and the gap by Σ_t dh[t][r]·δh[t]. Bits use the linear form everywhere (the two agree).
// The fitness of a candidate is then estimated as Fitness on the current scores plus each
// probe's estimated change; only the exact evaluator decides what is accepted.

// MaxEstimateCandidates bounds one estimate (a float64 per candidate and probe is kept).
const MaxEstimateCandidates = 1 << 22

// estimateDeltas returns the first-order change of every probe's gap for every candidate,
// out[c*len(probes)+p], on the model as it is now. The probes are e's.
func (e *Evaluator) estimateDeltas(cands []patch.Flip) ([]float64, error) {
	if len(cands) > MaxEstimateCandidates {
		return nil, fmt.Errorf("bfs: estimate: %d candidates; at most %d at once (sample fewer)", len(cands), MaxEstimateCandidates)
	}
	m := e.m
	np := len(e.prep)
	byMat := map[matKey][]int{} // candidate indices per matrix
	var layers []int
	gateLayers := map[int]bool{}
	for i, f := range cands {
		if err := m.CheckFlip(f); err != nil {
			return nil, fmt.Errorf("bfs: estimate: flip %v: %w", f, err)
		}
		p, _ := runtime.ParseProj(f.Proj)
		k := matKey{f.Layer, p}
		if len(byMat[k]) == 0 && !slices.Contains(layers, f.Layer) {
			layers = append(layers, f.Layer)
		}
		byMat[k] = append(byMat[k], i)
		if p == runtime.ProjGate && f.Kind() != patch.KindBit {
			gateLayers[f.Layer] = true
		}
	}
	out := make([]float64, len(cands)*np) // (candidates, probes)
	if len(cands) == 0 {
		return out, nil
	}
	bk := backwardOf(e.b)
	for p := range e.prep {
		for _, sq := range e.sequences(p) {
			var dh, up []float32 // this layer's dgap/dh (n, FFN) and up output (n, FFN), for gate flips
			visit := func(g runtime.ProjGrad) {
				switch {
				case g.Proj == runtime.ProjDown && gateLayers[g.Layer]:
					dh = append(dh[:0], g.DIn...)
				case g.Proj == runtime.ProjUp && gateLayers[g.Layer]:
					up = append(up[:0], g.Out...)
				}
				idx := byMat[matKey{g.Layer, g.Proj}]
				if len(idx) == 0 {
					return
				}
				mat := m.Layers[g.Layer].Proj[g.Proj]
				n := len(sq.tokens)
				gate := g.Proj == runtime.ProjGate
				cpu.Workers(m.Threads).ParallelFor((len(idx)+63)/64, func(c int) {
					for _, i := range idx[c*64 : min(len(idx), (c+1)*64)] {
						out[i*np+p] += flipEffect(mat, cands[i], g, n, gate, dh, up)
					}
				})
			}
			if err := bk(sq.tokens, sq.dlogits, layers, visit); err != nil {
				return nil, fmt.Errorf("bfs: estimate: probe %q: %w", e.probes[p].Name, err)
			}
		}
	}
	return out, nil
}

// matKey names one projection matrix.
type matKey struct {
	layer int
	proj  runtime.Proj
}

// backwardOf is the backend's backward pass, or the CPU one.
func backwardOf(b runtime.Backend) func([]int32, func([]float32) ([]float32, error), []int, func(runtime.ProjGrad)) error {
	if d, ok := b.(runtime.Differentiator); ok {
		return d.Backward
	}
	return b.Model().Backward
}

// flipEffect is the first-order change of the probe's gap for flip f of mat, from one
// sequence's backward pass g (n tokens); dh and up are the layer's dgap/dh and up output, set
// when f is a gate row or group flip. Sums run over tokens in order, in float64.
func flipEffect(mat *q1.Matrix, f patch.Flip, g runtime.ProjGrad, n int, gate bool, dh, up []float32) float64 {
	R, C, r := mat.Rows, mat.Cols, f.Row
	var s float64
	switch f.Kind() {
	case patch.KindRow:
		for t := range n {
			o := float64(g.Out[t*R+r])
			if gate {
				s += float64(dh[t*R+r]) * (-o * float64(up[t*R+r]))
			} else {
				s += float64(g.DOut[t*R+r]) * (-2 * o)
			}
		}
	case patch.KindGroup:
		d := float64(mat.Scale(r, f.Group))
		signs := mat.GroupSigns(r, f.Group)
		for t := range n {
			x := g.In[t*C+f.Group*q1.GroupSize:][:q1.GroupSize]
			var c float64
			for j, v := range x {
				if signs[j>>3]>>(j&7)&1 == 1 {
					c += float64(v)
				} else {
					c -= float64(v)
				}
			}
			c *= d
			if gate {
				o := float64(g.Out[t*R+r])
				s += float64(dh[t*R+r]) * (silu64(o-2*c) - silu64(o)) * float64(up[t*R+r])
			} else {
				s += float64(g.DOut[t*R+r]) * (-2 * c)
			}
		}
	case patch.KindBit:
		w := float64(mat.Weight(r, f.Col))
		for t := range n {
			s += float64(g.DOut[t*R+r]) * (-2 * w * float64(g.In[t*C+f.Col]))
		}
	}
	return s
}

func silu64(z float64) float64 { return z / (1 + math.Exp(-z)) }

// probeSeq is one sequence of a probe for the backward pass: its tokens from position 0 and
// the gradient of the probe's gap with respect to its logits.
type probeSeq struct {
	tokens  []int32
	dlogits func(logits []float32) ([]float32, error)
}

// sequences lists probe p's sequences: for token_gap the shared prefix, with dgap/dlogit = +1
// at the correct token and −1 at the wrong one at its last position; for seq_logprob the prefix
// followed by each answer's segment, with the gradient of ±Σ log p(a) (onehot − softmax, + for
// the correct answer's reads, − for the wrong one's). Every read of the gap is in exactly one
// sequence, so the sum over sequences is the gradient of the gap.
func (e *Evaluator) sequences(p int) []probeSeq {
	pp := &e.prep[p]
	V := e.m.Vocab
	pre := len(pp.parts[0])
	var out []probeSeq
	for side := 0; side < 2; side++ {
		var reads []read
		for _, r := range pp.reads {
			if (r.part == 0 && r.side == side) || r.part == 1+side {
				reads = append(reads, r)
			}
		}
		if e.metric == MetricTokenGap && side == 1 {
			break
		}
		if len(reads) == 0 {
			continue
		}
		toks := append(append([]int32{}, pp.parts[0]...), pp.parts[1+side]...)
		if e.metric == MetricTokenGap {
			toks = pp.parts[0]
		}
		metric := e.metric
		sign := float32(1)
		if side == 1 {
			sign = -1
		}
		out = append(out, probeSeq{tokens: toks, dlogits: func(logits []float32) ([]float32, error) {
			n := len(logits) / V
			d := make([]float32, len(logits)) // (n, Vocab)
			for _, r := range reads {
				pos := r.pos
				if r.part > 0 {
					pos += pre
				}
				if pos >= n {
					return nil, fmt.Errorf("read at position %d of %d", pos, n)
				}
				row, drow := logits[pos*V:(pos+1)*V], d[pos*V:(pos+1)*V]
				if metric == MetricTokenGap {
					drow[r.a] += 1
					drow[r.b] -= 1
					continue
				}
				lse := runtime.LogSumExp(row)
				for v, l := range row {
					drow[v] -= sign * float32(math.Exp(float64(l)-lse))
				}
				drow[r.a] += sign
			}
			return d, nil
		}})
	}
	return out
}

// estimateFitness turns per-probe estimated changes (candidates, probes) into an estimated
// fitness per candidate: Fitness of the walker on the current scores plus the changes.
func (w *walker) estimateFitness(deltas []float64, cur []float64) []float64 {
	np := len(cur)
	n := len(deltas) / max(np, 1)
	out := make([]float64, n)
	s := make([]float64, np)
	for c := range n {
		for p := range np {
			s[p] = cur[p] + deltas[c*np+p]
		}
		out[c] = w.fitness(s)
	}
	return out
}

// estimateS is the estimated S = −F of every candidate on e's model as it is now.
func estimateS(e *Evaluator, w *walker, cands []patch.Flip) ([]float64, error) {
	d, err := e.estimateDeltas(cands)
	if err != nil {
		return nil, err
	}
	f := w.estimateFitness(d, e.Scores())
	for i := range f {
		f[i] = -f[i]
	}
	return f, nil
}
