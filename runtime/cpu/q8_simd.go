package cpu

import (
	"math"
	"math/bits"
	"sync"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// The Q8_0 kernels of the SIMD levels. They compute exactly what q8Row does (see MatMulQ8),
// from input vectors laid out for vector registers: for each 128-column group g, a vector
// takes q8GroupWords 32-bit words,
//
//	words  0..31: the 128 int8 values q[128g ..], four to a word (little-endian)
//	words 32..63: t[8k+l] = Σ_{e<4} q[128g + 32k + 4l + e], as int32 (k = 0..3, l = 0..7)
//	words 64..95: dy[8k+l] = the scale of Q8_0 block 4g+k (float32 bits), once per lane l
//
// so that the signed lane sums are s_k[l] = 2·Σ_{bit set} q − t[8k+l], an integer whatever
// the instructions that form it. Vectors go in blocks of up to q8VecBlock: a block of nb
// vectors holds, for each group, the nb vectors' words one after the other, and blocks follow
// each other (q8VecBlock·Groups·q8GroupWords words apart).

// q8GroupWords is the words one prepared vector takes per group.
const q8GroupWords = 96

// q8PrepVectors is the most input vectors prepared at once (their words stay in L2).
const q8PrepVectors = 64

// q8TileRows is how many rows pass over every block of vectors before the next rows start,
// so that their sign bytes stay in L1.
const q8TileRows = 32

// prepareQ8SIMD quantises the n vectors x (n, cols) into buf in the layout above.
func prepareQ8SIMD(nt int, x []float32, n, cols int, buf []uint32) {
	G := cols / q1.GroupSize
	if n*cols < minParallelWork/4 {
		nt = 1
	}
	parallelFor(nt, n, func(v int) {
		b, nb := v/q8VecBlock, min(q8VecBlock, n-v/q8VecBlock*q8VecBlock)
		base := buf[b*q8VecBlock*G*q8GroupWords+v%q8VecBlock*q8GroupWords:]
		xv := x[v*cols : (v+1)*cols]
		var q [Q8Block]int8
		var d [1]float32
		for g := range G {
			w := (*[q8GroupWords]uint32)(base[g*nb*q8GroupWords:])
			for k := range 4 {
				QuantizeQ8(xv[g*q1.GroupSize+k*Q8Block:][:Q8Block], q[:], d[:])
				dy := math.Float32bits(d[0])
				for l := range 8 {
					q0, q1, q2, q3 := q[4*l], q[4*l+1], q[4*l+2], q[4*l+3]
					w[8*k+l] = uint32(uint8(q0)) | uint32(uint8(q1))<<8 | uint32(uint8(q2))<<16 | uint32(uint8(q3))<<24
					w[32+8*k+l] = uint32(int32(q0) + int32(q1) + int32(q2) + int32(q3))
					w[64+8*k+l] = dy
				}
			}
		}
	})
}

// scaleMode returns how the assembly kernels decode m's scales: XOR the sign into the value,
// read bf16 (else fp16) bits. ok is false for a kind they do not know.
func scaleMode(k q1.ScaleKind) (sign, bf16 uint32, ok bool) {
	switch k {
	case q1.ScaleF16:
		return 0, 0, true
	case q1.ScaleNegF16:
		return 1 << 31, 0, true
	case q1.ScaleNegBF16:
		return 1 << 31, 1, true
	}
	return 0, 0, false
}

// matMulQ8SIMD is MatMulQ8Shared with the kernels of the active SIMD level.
func matMulQ8SIMD(nt int, ms []*q1.Matrix, x []float32, n int, outs [][]float32) {
	cols := ms[0].Cols
	G := cols / q1.GroupSize
	chunk := min(n, q8PrepVectors)
	buf := getWords((chunk + q8VecBlock - 1) / q8VecBlock * q8VecBlock * G * q8GroupWords)
	for v0 := 0; v0 < n; v0 += chunk {
		nv := min(chunk, n-v0)
		prepareQ8SIMD(nt, x[v0*cols:(v0+nv)*cols], nv, cols, *buf)
		eachRows(nt, ms, nv, 0, func(i, r0, r1 int, _ []float32) {
			q8RowsSIMD(ms[i], r0, r1, *buf, nv, outs[i][v0*ms[i].Rows:])
		})
	}
	putWords(buf)
}

// q8RowsSIMD computes out[v*Rows+r] for r in [r0, r1) and the nv vectors prepared in buf.
func q8RowsSIMD(m *q1.Matrix, r0, r1 int, buf []uint32, nv int, out []float32) {
	G, R := m.Groups, m.Rows
	sign, bf16, ok := scaleMode(m.Kind)
	var acc [q8TileRows * q8VecBlock * 8]float32 // q8Dot4's lane accumulators between tiles
	for rb := r0; rb < r1; rb += q8TileRows {
		nr := min(r1, rb+q8TileRows) - rb
		bp, sp := &m.Bits[rb*G*m.BitStride], &m.Scales[rb*G*m.ScaleStride]
		for b := 0; b*q8VecBlock < nv; b++ {
			nb := min(q8VecBlock, nv-b*q8VecBlock)
			blk := buf[b*q8VecBlock*G*q8GroupWords:]
			o := out[b*q8VecBlock*R+rb:]
			switch {
			case !ok:
				for v := range nb {
					q8RowsRef(m, rb, rb+nr, blk[v*q8GroupWords:], nb*q8GroupWords, o[v*R:])
				}
			case nb == q8VecBlock:
				bs, ss := m.BitStride, m.ScaleStride
				for g0 := 0; g0 < G; g0 += q8TileGroups {
					ng := min(q8TileGroups, G-g0)
					flags := 0
					if g0 == 0 {
						flags |= 1
					}
					if g0+ng == G {
						flags |= 2
					}
					q8Dot4(&m.Bits[(rb*G+g0)*bs], &m.Scales[(rb*G+g0)*ss], bs, ss, ng, nr, sign, bf16,
						&blk[g0*q8VecBlock*q8GroupWords], &o[0], 4*R, G*bs, G*ss, &acc[0], flags)
				}
			default:
				for v := range nb {
					q8Dot1(bp, sp, m.BitStride, m.ScaleStride, G, nr, sign, bf16, &blk[v*q8GroupWords], 4*nb*q8GroupWords, &o[v*R])
				}
			}
		}
	}
}

// q8RowsRef is the Go twin of the assembly kernels q8Dot1 and q8Dot4: out[r-r0] for r in
// [r0, r1), one prepared vector whose group g is x[g*stride:] (stride in words). It spells
// out the instructions' arithmetic; q8Row computes the same from lane tables.
func q8RowsRef(m *q1.Matrix, r0, r1 int, x []uint32, stride int, out []float32) {
	for r := r0; r < r1; r++ {
		var acc [8]float32
		for g := range m.Groups {
			s := m.GroupSigns(r, g)
			w := (*[q8GroupWords]uint32)(x[g*stride:])
			var blk [8]float32
			for k := range 4 {
				for l := range 8 {
					var set int32 // Σ q where the bit is set, then 2·set − t
					for e := range 4 {
						j := 32*k + 4*l + e
						if s[j/8]>>(j%8)&1 == 1 {
							set += int32(int8(w[8*k+l] >> (8 * e)))
						}
					}
					sk := float32(2*set - int32(w[32+8*k+l]))
					dy := math.Float32frombits(w[64+8*k+l])
					if k == 0 {
						blk[l] = dy * sk
					} else {
						blk[l] = fma32(dy, sk, blk[l])
					}
				}
			}
			d := m.Scale(r, g)
			for l := range acc {
				acc[l] = fma32(d, blk[l], acc[l])
			}
		}
		out[r-r0] = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
	}
}

// wordPools recycle the prepared vectors, by size class like bufPools.
var wordPools [64]sync.Pool

// getWords returns a buffer of n words with arbitrary contents.
func getWords(n int) *[]uint32 {
	c := bits.Len(uint(n))
	if p, ok := wordPools[c].Get().(*[]uint32); ok {
		*p = (*p)[:n]
		return p
	}
	s := make([]uint32, n, 1<<c)
	return &s
}

func putWords(p *[]uint32) { wordPools[bits.Len(uint(cap(*p)))-1].Put(p) }
