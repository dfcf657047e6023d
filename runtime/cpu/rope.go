package cpu

import "math"

// Rope describes rotary position embedding in the NeoX ("rotate half") layout, with optional
// YaRN scaling (docs/FORMATS.md §7.2).
type Rope struct {
	Dim  int     // rotated width: the head dimension
	Base float64 // theta base, 1e6 for Qwen3
	// YaRN; Factor == 0 or 1 means plain RoPE.
	Factor      float64 // s
	OrigContext int     // n_orig
	BetaFast    float64 // default 32
	BetaSlow    float64 // default 1
	AttnFactor  float64 // extra multiplier on mscale; 1 by default
}

// Tables returns cos and sin for positions [pos0, pos0+n), each (n, Dim/2).
//
// Pair i rotates (x[i], x[i+Dim/2]) by θ_i = pos·base^(−2i/Dim); with YaRN
// θ = θ/s·(1−ramp_i) + θ·ramp_i and cos, sin are multiplied by mscale = 1 + 0.1·ln s.
func (r Rope) Tables(pos0, n int) (cos, sin []float32) {
	half := r.Dim / 2
	cos = make([]float32, n*half)
	sin = make([]float32, n*half)
	ramp := make([]float64, half)
	mscale := 1.0
	yarn := r.Factor > 1
	if yarn {
		corr := func(beta float64) float64 {
			return float64(r.Dim) * math.Log(float64(r.OrigContext)/(beta*2*math.Pi)) / (2 * math.Log(r.Base))
		}
		lo := math.Max(0, math.Floor(corr(r.BetaFast)))
		hi := math.Min(float64(r.Dim-1), math.Ceil(corr(r.BetaSlow)))
		for i := range ramp {
			y := (float64(i) - lo) / math.Max(0.001, hi-lo)
			ramp[i] = 1 - math.Min(1, math.Max(0, y))
		}
		mscale = 1 + 0.1*math.Log(r.Factor)
		if r.AttnFactor > 0 {
			mscale *= r.AttnFactor
		}
	}
	// θ_{i+1} = θ_i · base^(−2/Dim) in float32, as llama.cpp computes it.
	step := float32(math.Pow(r.Base, -2/float64(r.Dim)))
	for p := 0; p < n; p++ {
		theta := float32(pos0 + p)
		for i := 0; i < half; i++ {
			t := float64(theta)
			if yarn {
				t = t/r.Factor*(1-ramp[i]) + t*ramp[i]
			}
			cos[p*half+i] = float32(math.Cos(t) * mscale)
			sin[p*half+i] = float32(math.Sin(t) * mscale)
			theta *= step
		}
	}
	return cos, sin
}

// ApplyRope rotates x (n, heads, Dim) in place with tables (n, Dim/2) from Tables:
//
//	x'[i] = x[i]·cos θ_i − x[i+Dim/2]·sin θ_i,  x'[i+Dim/2] = x[i]·sin θ_i + x[i+Dim/2]·cos θ_i
func ApplyRope(x []float32, n, heads, dim int, cos, sin []float32) {
	half := dim / 2
	for p := 0; p < n; p++ {
		c := cos[p*half : (p+1)*half]
		s := sin[p*half : (p+1)*half]
		for h := 0; h < heads; h++ {
			v := x[(p*heads+h)*dim : (p*heads+h+1)*dim]
			for i := 0; i < half; i++ {
				a, b := v[i], v[i+half]
				v[i] = a*c[i] - b*s[i]
				v[i+half] = a*s[i] + b*c[i]
			}
		}
	}
}
