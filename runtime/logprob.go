package runtime

import "math"

// LogSumExp returns log Σ_v exp(logits[v]) in float64, shifted by the maximum for stability.
func LogSumExp(logits []float32) float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var s float64
	for _, v := range logits {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s)
}

// LogSoftmax returns log-softmax(logits) in float64: logits[v] − LogSumExp(logits).
func LogSoftmax(logits []float32) []float64 {
	z := LogSumExp(logits)
	out := make([]float64, len(logits))
	for i, v := range logits {
		out[i] = float64(v) - z
	}
	return out
}
