package cpu

import (
	"math"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// The row kernels of MatMul. Each output is
//
//	acc = 0;  for g = 0 .. Groups−1:  acc += d[r,g] · S_g,   S_g = Σ_k T_k[s_k]
//
// with the 16 entries of S_g (one per sign byte s_k of the group, T from matmul_lut.go) added in
// the fixed tree ((e0+e1)+(e2+e3) + (e4+e5)+(e6+e7)) + ((e8+e9)+(e10+e11) + (e12+e13)+(e14+e15)).
// All kernels compute exactly this, whatever the table layout, the row range or the tiling. The
// product d·S_g is converted to float32 explicitly so that no platform fuses it with the
// addition (on arm64 the compiler may emit FMADD, and might do so in one kernel but not another).

// nib is the entry T_k[b] = L_k[b&15] + H_k[b>>4] from the nibble tables t (16, 2, 16).
func nib(t *[512]float32, k int, b byte) float32 {
	return t[32*k+int(b&15)] + t[32*k+16+int(b>>4)]
}

// sumNibble is S_g from a group's nibble tables t (16, 2, 16).
func sumNibble(t *[512]float32, s *[16]byte) float32 {
	return (((nib(t, 0, s[0]) + nib(t, 1, s[1])) + (nib(t, 2, s[2]) + nib(t, 3, s[3]))) +
		((nib(t, 4, s[4]) + nib(t, 5, s[5])) + (nib(t, 6, s[6]) + nib(t, 7, s[7])))) +
		(((nib(t, 8, s[8]) + nib(t, 9, s[9])) + (nib(t, 10, s[10]) + nib(t, 11, s[11]))) +
			((nib(t, 12, s[12]) + nib(t, 13, s[13])) + (nib(t, 14, s[14]) + nib(t, 15, s[15]))))
}

// tile1Groups is how many groups the one-vector kernel sweeps per row before moving to the
// next row: the tables of a tile (tile1Groups x 16 KiB) stay in L2 while a block of rows
// passes. It matters for long rows (the down projection), whose whole tables do not fit.
const tile1Groups = 16

// block1Rows is the number of rows per block of rows1.
const block1Rows = 128

// rows1 computes out[r] for r in [r0, r1), one vector with tables t (Cols/8, 256). sc is
// scratch (>= rows1Scratch(Groups)). Rows go in blocks, each swept tile by tile; the
// accumulators live in sc between tiles, so every output still adds its groups in order.
func rows1(m *q1.Matrix, t []float32, r0, r1 int, out, sc []float32) {
	G, bs := m.Groups, m.BitStride
	acc, sc := sc[:block1Rows], sc[block1Rows:]
	for rb := r0; rb < r1; rb += block1Rows {
		nr := min(r1, rb+block1Rows) - rb
		for i := range nr {
			rowScales(m, rb+i, sc[i*G:(i+1)*G])
		}
		clear(acc)
		asm := rowsTileOK()
		for g0 := 0; g0 < G; g0 += tile1Groups {
			g1 := min(G, g0+tile1Groups)
			if asm { // the loop below, in assembly
				rows1Tile(&t[g0*4096], &m.Bits[rb*G*bs+g0*bs], G*bs, bs, &sc[g0], 4*G, &acc[0], nr, g1-g0)
				continue
			}
			for i := range nr {
				ds := sc[i*G : (i+1)*G]
				bits := m.Bits[(rb+i)*G*bs:]
				a := acc[i]
				for g := g0; g < g1; g++ {
					// S_g written out: as a function it is not inlined, and the call costs ~10%
					tg, s := (*[4096]float32)(t[g*4096:]), (*[16]byte)(bits[g*bs:])
					a += float32(ds[g] * ((((tg[s[0]] + tg[256+int(s[1])]) + (tg[512+int(s[2])] + tg[768+int(s[3])])) +
						((tg[1024+int(s[4])] + tg[1280+int(s[5])]) + (tg[1536+int(s[6])] + tg[1792+int(s[7])]))) +
						(((tg[2048+int(s[8])] + tg[2304+int(s[9])]) + (tg[2560+int(s[10])] + tg[2816+int(s[11])])) +
							((tg[3072+int(s[12])] + tg[3328+int(s[13])]) + (tg[3584+int(s[14])] + tg[3840+int(s[15])])))))
				}
				acc[i] = a
			}
		}
		copy(out[rb:rb+nr], acc[:nr])
	}
}

// rows1Scratch is the scratch rows1 needs for a matrix of g groups per row.
func rows1Scratch(g int) int { return block1Rows * (g + 1) }

// rowsNibble is rows1 for one vector with nibble tables t (Cols/8, 2, 16): twice the lookups
// per group, but tables 8 times cheaper to build, for matrices with few rows.
func rowsNibble(m *q1.Matrix, t []float32, r0, r1 int, out, sc []float32) {
	G, bs := m.Groups, m.BitStride
	sc = sc[:G]
	for r := r0; r < r1; r++ {
		rowScales(m, r, sc)
		bits := m.Bits[r*G*bs:]
		var acc float32
		for g, d := range sc {
			acc += float32(d * sumNibble((*[512]float32)(t[g*512:]), (*[16]byte)(bits[g*bs:])))
		}
		out[r] = acc
	}
}

// tile4Groups is how many groups the four-vector kernel sweeps per row before moving to the
// next row: its tables for a tile (tile4Groups x 64 KiB) stay in L2 while a block of rows
// passes.
const tile4Groups = 2

// block4Bytes bounds the weight bytes of a block of rows of the four-vector kernel, so that
// the block stays in cache between its tiles.
const block4Bytes = 512 << 10

// block4Rows is the number of rows per block of rows4 for a matrix of g groups per row.
func block4Rows(g int) int { return max(16, block4Bytes/(g*q1.BlockBytes)) }

// rows4 computes out[v*Rows+r] for r in [r0, r1) and the four vectors whose interleaved
// tables are t (Cols/8, 256, 4). sc is scratch (>= block4Rows(Groups) x (Groups + 4)).
// Rows go in blocks, each swept tile by tile; the accumulators live in sc between tiles, so
// every output still adds its groups in order.
func rows4(m *q1.Matrix, t []float32, r0, r1 int, out, sc []float32) {
	G, bs, R := m.Groups, m.BitStride, m.Rows
	block := block4Rows(G)
	accs, sc := sc[:vecBlock*block], sc[vecBlock*block:]
	for rb := r0; rb < r1; rb += block {
		nr := min(r1, rb+block) - rb
		for i := range nr {
			rowScales(m, rb+i, sc[i*G:(i+1)*G])
		}
		acc := accs[:vecBlock*nr] // (nr, 4)
		clear(acc)
		asm := rowsTileOK()
		for g0 := 0; g0 < G; g0 += tile4Groups {
			g1 := min(G, g0+tile4Groups)
			if asm { // the loop below, in assembly
				rows4Tile(&t[g0*16384], &m.Bits[rb*G*bs+g0*bs], G*bs, bs, &sc[g0], 4*G, &acc[0], nr, g1-g0)
				continue
			}
			for i := range nr {
				ds := sc[i*G : (i+1)*G]
				bits := m.Bits[(rb+i)*G*bs:]
				a := (*[vecBlock]float32)(acc[vecBlock*i:])
				for g := g0; g < g1; g++ {
					d := ds[g]
					tg, s := (*[16384]float32)(t[g*16384:]), (*[16]byte)(bits[g*bs:])
					for v := range vecBlock { // S_g of vector v, from t[k][b][v]
						a[v] += float32(d * ((((tg[v+4*int(s[0])] + tg[v+1024+4*int(s[1])]) + (tg[v+2048+4*int(s[2])] + tg[v+3072+4*int(s[3])])) +
							((tg[v+4096+4*int(s[4])] + tg[v+5120+4*int(s[5])]) + (tg[v+6144+4*int(s[6])] + tg[v+7168+4*int(s[7])]))) +
							(((tg[v+8192+4*int(s[8])] + tg[v+9216+4*int(s[9])]) + (tg[v+10240+4*int(s[10])] + tg[v+11264+4*int(s[11])])) +
								((tg[v+12288+4*int(s[12])] + tg[v+13312+4*int(s[13])]) + (tg[v+14336+4*int(s[14])] + tg[v+15360+4*int(s[15])])))))
					}
				}
			}
		}
		for v := range vecBlock {
			o := out[v*R+rb : v*R+rb+nr]
			for i := range o {
				o[i] = acc[vecBlock*i+v]
			}
		}
	}
}

// rows4Scratch is the scratch rows4 needs for a matrix of g groups per row.
func rows4Scratch(g int) int { return block4Rows(g) * (g + vecBlock) }

// rowScales writes the Groups scales of row r into dst, equal to m.Scale(r, g) bit for bit.
func rowScales(m *q1.Matrix, r int, dst []float32) {
	ss := m.ScaleStride
	s := m.Scales[r*m.Groups*ss:]
	s = s[:(len(dst)-1)*ss+2]
	switch m.Kind {
	case q1.ScaleF16, q1.ScaleNegF16:
		var sign uint32 // flips the sign for ScaleNegF16
		if m.Kind == q1.ScaleNegF16 {
			sign = 1 << 31
		}
		for g := range dst {
			h := uint16(s[g*ss]) | uint16(s[g*ss+1])<<8
			// normal numbers inline; zeros, subnormals, infinities and NaNs by q1
			if e := uint32(h>>10) & 0x1f; e-1 < 30 {
				dst[g] = math.Float32frombits((uint32(h&0x8000)<<16 | (e+112)<<23 | uint32(h&0x3ff)<<13) ^ sign)
			} else {
				dst[g] = math.Float32frombits(math.Float32bits(q1.F16ToF32(h)) ^ sign)
			}
		}
	case q1.ScaleNegBF16:
		for g := range dst {
			dst[g] = -math.Float32frombits(uint32(s[g*ss])<<16 | uint32(s[g*ss+1])<<24)
		}
	default:
		for g := range dst {
			dst[g] = m.Scale(r, g)
		}
	}
}
