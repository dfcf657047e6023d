package cpu

import "github.com/bankai-metal/bankai-metal/runtime/q1"

// FlipDelta corrects, in place, the output out (n, Rows) of MatMul(m, x) for a flip of m that
// is not written to the weights: what MatMul would return had the flip been applied.
//
// The address is (row, group, col) as in q1.Matrix.Flip; an invalid one (q1.KindInvalid)
// changes nothing.
//
//   - whole row (group -1, col -1): out[t][row] = −out[t][row]
//   - group g:  out[t][row] −= 2 · d[row,g] · (2·Σ_{j∈g, bit=1} x[t][j] − Σ_{j∈g} x[t][j])
//   - bit col:  out[t][row] −= 2 · w[row,col] · x[t][col]
//
// A flip negates the weights it covers, so the output loses twice their contribution. x is
// (n, Cols).
func FlipDelta(m *q1.Matrix, x []float32, n int, out []float32, row, group, col int) {
	switch q1.KindOf(group, col) {
	case q1.KindRow:
		for t := 0; t < n; t++ {
			out[t*m.Rows+row] = -out[t*m.Rows+row]
		}
	case q1.KindGroup:
		d := m.Scale(row, group)
		s := m.GroupSigns(row, group)
		for t := 0; t < n; t++ {
			xs := x[t*m.Cols+group*q1.GroupSize : t*m.Cols+(group+1)*q1.GroupSize]
			var set, all float32
			for j, v := range xs {
				all += v
				if s[j>>3]>>(j&7)&1 == 1 {
					set += v
				}
			}
			out[t*m.Rows+row] -= 2 * d * (2*set - all)
		}
	case q1.KindBit:
		w := m.Weight(row, col)
		for t := 0; t < n; t++ {
			out[t*m.Rows+row] -= 2 * w * x[t*m.Cols+col]
		}
	}
}
