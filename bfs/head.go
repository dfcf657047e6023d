package bfs

import (
	"errors"
	"fmt"
	"slices"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// headRows copies the LM-head rows of ids (sorted) into a compact matrix with the same encoding,
// so that cpu.MatMul gives bit-identical logits for them.
func headRows(out *q1.Matrix, ids map[int32]bool) (*q1.Matrix, map[int32]int) {
	list := make([]int32, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	slices.Sort(list)
	idx := make(map[int32]int, len(list))
	bits := make([]byte, 0, len(list)*out.Cols/8)     // (n_ids, Cols/8)
	scales := make([]byte, 0, len(list)*out.Groups*2) // (n_ids, Groups, 2)
	for i, id := range list {
		idx[id] = i
		for g := 0; g < out.Groups; g++ {
			bits = append(bits, out.GroupSigns(int(id), g)...)
			o := (int(id)*out.Groups + g) * out.ScaleStride
			scales = append(scales, out.Scales[o], out.Scales[o+1])
		}
	}
	return &q1.Matrix{Name: out.Name + "[probe rows]", Rows: len(list), Cols: out.Cols, Groups: out.Groups,
		Bits: bits, BitStride: q1.GroupSignBytes, Scales: scales, ScaleStride: 2, Kind: out.Kind}, idx
}

// headScores computes the metric from the final residual rows x of k blocks of probes laid out
// by off and per (see layout). It returns (k, n_probes) scores. Each distinct row read goes
// through the final norm and the LM head once: the token_gap pairs' rows of the compact head, or
// the whole vocabulary with one log-sum-exp per row for seq_logprob. Sums run in read order.
// A NaN or infinite logit is an error: a score computed from it would be meaningless.
func (e *Evaluator) headScores(x [3][]float32, k int, probes []int, off [3][]int, per [3]int) ([][]float64, error) {
	D := e.m.Hidden
	type src struct{ ph, row int }
	var rows []src   // distinct rows read, in read order
	var reads []read // every read, in (block, probe, read) order
	var which []int  // per read: index into rows
	for c := 0; c < k; c++ {
		for j, p := range probes {
			for i, r := range e.prep[p].reads {
				if i == 0 || r.part != e.prep[p].reads[i-1].part || r.pos != e.prep[p].reads[i-1].pos {
					rows = append(rows, src{r.part, c*per[r.part] + off[r.part][j] + r.pos})
				}
				reads = append(reads, r)
				which = append(which, len(rows)-1)
			}
		}
	}
	head, width := e.m.Output, e.m.Vocab
	if e.metric == MetricTokenGap {
		head, width = e.head, e.head.Rows
	}
	step := max(4, (64<<20)/(4*width))
	h := make([]float32, min(step, len(rows))*D)          // (step, Hidden)
	logits := make([]float32, min(step, len(rows))*width) // (step, width)
	lse := make([]float64, min(step, len(rows)))          // (step)
	vals := make([]float64, len(reads))                   // per read: the gap or log p
	ri := 0
	for r0 := 0; r0 < len(rows); r0 += step {
		n := min(step, len(rows)-r0)
		for i := 0; i < n; i++ {
			s := rows[r0+i]
			copy(h[i*D:(i+1)*D], x[s.ph][s.row*D:(s.row+1)*D])
		}
		cpu.RMSNorm(h[:n*D], h[:n*D], e.m.OutNorm, e.m.RMSEps)
		cpu.Workers(e.m.Threads).MatMul(head, h, n, logits)
		if err := runtime.CheckLogits(logits[:n*width], width, 0); err != nil {
			var le *runtime.LogitsError
			errors.As(err, &le)
			return nil, fmt.Errorf("bfs: the forward pass produced a %g logit: the model's activations overflow float32", le.Value)
		}
		if e.metric == MetricSeqLogprob {
			for i := 0; i < n; i++ {
				lse[i] = runtime.LogSumExp(logits[i*width : (i+1)*width])
			}
		}
		for ; ri < len(reads) && which[ri] < r0+n; ri++ {
			i := which[ri] - r0
			l := logits[i*width : (i+1)*width]
			if r := reads[ri]; e.metric == MetricTokenGap {
				vals[ri] = float64(l[e.headIdx[r.a]]) - float64(l[e.headIdx[r.b]])
			} else {
				vals[ri] = float64(l[r.a]) - lse[i]
			}
		}
	}
	out := make([][]float64, k) // (k, n_probes)
	ri = 0
	for c := range out {
		out[c] = make([]float64, len(probes))
		for j, p := range probes {
			var side [2]float64 // token_gap: the gap; seq_logprob: the two answers' sums
			for _, r := range e.prep[p].reads {
				side[r.side] += vals[ri]
				ri++
			}
			out[c][j] = side[0] - side[1]
		}
	}
	return out, nil
}
