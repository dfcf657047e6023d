package cpu

import "math"

// RMSNorm writes out[i] = x[i] / sqrt(mean(x²) + eps) · w[i] for each of the len(x)/len(w)
// rows of x (rows of width len(w)). The mean of squares is accumulated in float64.
// out may alias x.
func RMSNorm(out, x, w []float32, eps float32) {
	n := len(w)
	for o := 0; o+n <= len(x); o += n {
		row := x[o : o+n]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		scale := float32(1 / math.Sqrt(ss/float64(n)+float64(eps)))
		dst := out[o : o+n]
		for i, v := range row {
			dst[i] = v * scale * w[i]
		}
	}
}

// Add computes dst[i] += src[i].
func Add(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}

// SiluMul computes out[i] = silu(gate[i]) · up[i] with silu(z) = z / (1 + e^-z).
// out may alias gate or up.
func SiluMul(out, gate, up []float32) {
	up = up[:len(gate)]
	out = out[:len(gate)]
	for i, g := range gate {
		out[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
	}
}

// Silu returns z / (1 + e^-z).
func Silu(z float32) float32 { return z / (1 + float32(math.Exp(float64(-z)))) }
