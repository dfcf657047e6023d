package cpu

// Lookup tables of the 1-bit matmul.
//
// For the 8 inputs x[8k .. 8k+8) of one vector, byte k of a group's signs selects the entry
//
//	T_k[b] = L_k[b & 15] + H_k[b >> 4]
//	L_k[l] = (s0·x0 + s1·x1) + (s2·x2 + s3·x3),  s_i = +1 if bit i of l is set, else −1
//
// and H_k likewise over x4..x7, so T_k[b] = Σ_i ±x_i is the signed sum of the 8 inputs with the
// weights' signs and a group's masked sum needs no separate Σx. Every table layout below holds
// these same float32 values (L and H computed by nibbles, T by one addition), which is what makes
// the kernels that read different layouts agree to the bit.

// nibbles writes L and H of the 8 inputs xs (see above) into lo and hi.
func nibbles(xs *[8]float32, lo, hi *[16]float32) {
	nibble(xs[0], xs[1], xs[2], xs[3], lo)
	nibble(xs[4], xs[5], xs[6], xs[7], hi)
}

// nibble writes into q the 16 signed sums (s0·x0 + s1·x1) + (s2·x2 + s3·x3), bit i of the
// index giving the sign of x_i. Negation is exact, so entry 15−l is exactly −entry l.
func nibble(x0, x1, x2, x3 float32, q *[16]float32) {
	a0, a1, a2, a3 := -x0-x1, x0-x1, x1-x0, x0+x1
	b0, b1, b2, b3 := -x2-x3, x2-x3, x3-x2, x2+x3
	q[0], q[1], q[2], q[3] = a0+b0, a1+b0, a2+b0, a3+b0
	q[4], q[5], q[6], q[7] = a0+b1, a1+b1, a2+b1, a3+b1
	q[8], q[9], q[10], q[11] = a0+b2, a1+b2, a2+b2, a3+b2
	q[12], q[13], q[14], q[15] = a0+b3, a1+b3, a2+b3, a3+b3
}

// buildLUT8 fills t (Cols/8, 256) with T_k for k in [k0, k1) of the vector x (Cols).
func buildLUT8(x, t []float32, k0, k1 int) {
	var lo, hi [16]float32
	for k := k0; k < k1; k++ {
		nibbles((*[8]float32)(x[8*k:]), &lo, &hi)
		tk := (*[256]float32)(t[256*k:])
		for h, v := range hi {
			row := (*[16]float32)(tk[16*h:])
			row[0], row[1], row[2], row[3] = lo[0]+v, lo[1]+v, lo[2]+v, lo[3]+v
			row[4], row[5], row[6], row[7] = lo[4]+v, lo[5]+v, lo[6]+v, lo[7]+v
			row[8], row[9], row[10], row[11] = lo[8]+v, lo[9]+v, lo[10]+v, lo[11]+v
			row[12], row[13], row[14], row[15] = lo[12]+v, lo[13]+v, lo[14]+v, lo[15]+v
		}
	}
}

// buildLUT8x4 fills t (Cols/8, 256, 4) with T_k of the four vectors of x (4, Cols)
// interleaved, t[k][b][v], for k in [k0, k1).
func buildLUT8x4(x, t []float32, k0, k1 int) {
	cols := len(x) / vecBlock
	var lo, hi [vecBlock][16]float32
	for k := k0; k < k1; k++ {
		for v := range vecBlock {
			nibbles((*[8]float32)(x[v*cols+8*k:]), &lo[v], &hi[v])
		}
		tk := (*[1024]float32)(t[1024*k:])
		for h := range 16 {
			h0, h1, h2, h3 := hi[0][h], hi[1][h], hi[2][h], hi[3][h]
			for l := range 16 {
				e := (*[vecBlock]float32)(tk[vecBlock*(16*h+l):])
				e[0], e[1], e[2], e[3] = lo[0][l]+h0, lo[1][l]+h1, lo[2][l]+h2, lo[3][l]+h3
			}
		}
	}
}

// buildNibbles fills t (Cols/8, 2, 16) with L_k then H_k of the vector x (Cols), for the
// kernel that adds the two halves of each entry itself (see rowsNibble).
func buildNibbles(x, t []float32) {
	for k := range len(x) / 8 {
		nibbles((*[8]float32)(x[8*k:]), (*[16]float32)(t[32*k:]), (*[16]float32)(t[32*k+16:]))
	}
}
