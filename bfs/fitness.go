package bfs

import (
	"fmt"
	"math"
)

// FitnessMode selects how target gains are aggregated.
type FitnessMode int

const (
	// FitnessMean averages the target gains (upstream's default).
	FitnessMean FitnessMode = iota
	// FitnessMin takes the smallest target gain.
	FitnessMin
)

// String returns "mean" or "min".
func (f FitnessMode) String() string {
	if f == FitnessMin {
		return "min"
	}
	return "mean"
}

// MarshalText implements encoding.TextMarshaler.
func (f FitnessMode) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// ParseFitnessMode accepts "mean" or "min".
func ParseFitnessMode(s string) (FitnessMode, error) {
	switch s {
	case "mean":
		return FitnessMean, nil
	case "min":
		return FitnessMin, nil
	}
	return 0, fmt.Errorf("bfs: unknown fitness mode %q (want mean or min)", s)
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *FitnessMode) UnmarshalText(b []byte) error {
	v, err := ParseFitnessMode(string(b))
	*f = v
	return err
}

// DefaultLambda is upstream's control penalty.
const DefaultLambda = 2.0

// Fitness computes
//
//	F = agg_{t} (target[t] − target0[t]) − lambda · mean_{c} max(0, control0[c] − control[c])
//
// with agg the mean or the minimum (mode). target0 and control0 are the scores of the unmodified
// model, so F = 0 there. Sums run in index order in float64; an empty control set contributes 0,
// an empty target set 0.
func Fitness(mode FitnessMode, lambda float64, target, target0, control, control0 []float64) float64 {
	var gain float64
	if len(target) > 0 {
		if mode == FitnessMin {
			gain = math.Inf(1)
			for i, g := range target {
				gain = min(gain, g-target0[i])
			}
		} else {
			for i, g := range target {
				gain += g - target0[i]
			}
			gain /= float64(len(target))
		}
	}
	var loss float64
	if len(control) > 0 {
		for i, g := range control {
			loss += max(0, control0[i]-g)
		}
		loss /= float64(len(control))
	}
	return gain - lambda*loss
}
