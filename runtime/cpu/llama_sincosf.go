package cpu

import "math"

// glibc's single-precision sine and cosine (sysdeps/ieee754/flt-32, from Arm's
// optimized-routines, in glibc since 2.28) as its FMA build computes them on x86-64: the
// argument is reduced to |r| <= π/4 in float64, a short float64 polynomial is evaluated with
// FMAs and the result rounded to float32. They are within 0.56 ulp but not correctly rounded
// (about 1.3 % of results differ from float32(math.Cos(x)) by one ulp), and RoPE tables built
// from correctly rounded values drift from llama.cpp's on long sequences.

// sincosfPoly holds glibc's polynomial coefficients; the second set negates the cosine.
var sincosfPoly = [2]struct{ c0, c1, c2, c3, c4, s1, s2, s3 float64 }{
	{1, -0x1.ffffffd0c621cp-2, 0x1.55553e1068f19p-5, -0x1.6c087e89a359dp-10, 0x1.99343027bf8c3p-16,
		-0x1.555545995a603p-3, 0x1.1107605230bc4p-7, -0x1.994eb3774cf24p-13},
	{-1, 0x1.ffffffd0c621cp-2, -0x1.55553e1068f19p-5, 0x1.6c087e89a359dp-10, -0x1.99343027bf8c3p-16,
		-0x1.555545995a603p-3, 0x1.1107605230bc4p-7, -0x1.994eb3774cf24p-13},
}

// invPio4 is 2/π in binary, 8 new bits per entry (bit windows of the fraction 0.a2f9836e...).
var invPio4 = [24]uint32{
	0xa2, 0xa2f9, 0xa2f983, 0xa2f9836e, 0xf9836e4e, 0x836e4e44, 0x6e4e4415, 0x4e441529,
	0x441529fc, 0x1529fc27, 0x29fc2757, 0xfc2757d1, 0x2757d1f5, 0x57d1f534, 0xd1f534dd, 0xf534ddc0,
	0x34ddc0db, 0xddc0db62, 0xc0db6295, 0xdb629599, 0x6295993c, 0x95993c43, 0x993c4390, 0x3c439041,
}

func abstop12(f float32) uint32 { return math.Float32bits(f) >> 20 & 0x7ff }

// sinfPoly evaluates sin (n even) or cos (n odd) of a reduced argument x (x2 = x·x).
func sinfPoly(x, x2 float64, tab int, n int) float32 {
	p := &sincosfPoly[tab]
	if n&1 == 0 {
		x3 := float64(x * x2)
		s1 := math.FMA(x2, p.s3, p.s2)
		x7 := float64(x3 * x2)
		s := math.FMA(x3, p.s1, x)
		return float32(math.FMA(x7, s1, s))
	}
	x4 := float64(x2 * x2)
	c2 := math.FMA(x2, p.c4, p.c3)
	c1 := math.FMA(x2, p.c1, p.c0)
	x6 := float64(x4 * x2)
	c := math.FMA(x4, p.c2, c1)
	return float32(math.FMA(x6, c2, c))
}

// reduceSinf reduces a finite y with |y| >= π/4 as glibc does: r = y − n·π/2 in float64 with
// one FMA below 120, and |y| reduced with exact integer arithmetic on 2/π above. It returns r
// in [−π/4, π/4], the quadrant that selects the sign and the polynomial table (n, plus 1 for
// a negative y reduced as |y|) and the one whose parity selects sine or cosine (n).
func reduceSinf(y float32) (x float64, quad, parity int) {
	if abstop12(y) < abstop12(120) {
		r := float64(float64(y) * 0x1.45F306DC9C883p+23) // 2/π · 2^24
		n := (int32(r) + 0x800000) >> 24
		return math.FMA(-float64(n), 0x1.921FB54442D18p0, float64(y)), int(n), int(n)
	}
	xi := math.Float32bits(y)
	sign := int(xi >> 31)
	arr := invPio4[xi>>26&15:]
	shift := xi >> 23 & 7
	xi = (xi&0xffffff | 0x800000) << shift
	res0 := uint64(xi * arr[0]) // 32-bit product, as in C
	res1 := uint64(xi) * uint64(arr[4])
	res2 := uint64(xi) * uint64(arr[8])
	res0 = res2>>32 | res0<<32
	res0 += res1
	n := (res0 + 1<<61) >> 62
	res0 -= n << 62
	return float64(int64(res0)) * 0x1.921FB54442D18p-62, int(n) + sign, int(n)
}

// sincosLlama returns glibc's sinf(y) (cos = false) or cosf(y) (cos = true).
func sincosLlama(y float32, cos bool) float32 {
	odd := 0
	if cos {
		odd = 1
	}
	switch {
	case abstop12(y) < abstop12(math.Pi/4):
		if abstop12(y) < abstop12(0x1p-12) {
			if cos {
				return 1
			}
			return y
		}
		x := float64(y)
		return sinfPoly(x, float64(x*x), 0, odd)
	case abstop12(y) >= abstop12(float32(math.Inf(1))):
		return float32(math.NaN())
	}
	x, quad, parity := reduceSinf(y)
	if quad&3 == 1 || quad&3 == 2 { // the sign of the quadrant
		x = -x
	}
	return sinfPoly(x, float64(x*x), quad>>1&1, parity^odd)
}
