package cpu

import (
	"fmt"
	"os"
	"strings"
)

// Level is a set of SIMD kernels: the pure-Go ones, or hand-written assembly for one
// instruction set. Every level computes bit-identical results (simd_test.go holds each
// assembly kernel to its Go twin); only the speed differs.
type Level uint8

const (
	// LevelPurego runs only Go code. It is the only level with the purego build tag and on
	// architectures without assembly kernels.
	LevelPurego Level = iota
	// LevelAVX2 uses amd64 assembly with AVX2, FMA and F16C.
	LevelAVX2
	// LevelAVX512 is reserved for amd64 AVX-512 (BW/VL/VNNI) kernels, which are not written
	// yet: it is never available, and requesting it falls back (see SetSIMD).
	LevelAVX512
	// LevelNEON uses arm64 assembly with Advanced SIMD (every arm64 CPU has it).
	LevelNEON
	numLevels
)

var levelNames = [numLevels]string{"purego", "avx2", "avx512", "neon"}

func (l Level) String() string {
	if l < numLevels {
		return levelNames[l]
	}
	return fmt.Sprintf("Level(%d)", l)
}

// ParseLevel accepts purego, avx2, avx512 or neon.
func ParseLevel(s string) (Level, error) {
	for i, name := range levelNames {
		if strings.EqualFold(s, name) {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("cpu: unknown SIMD level %q (want purego, avx2, avx512 or neon)", s)
}

// Levels returns the levels this machine and build can run, from the slowest (purego) to the
// fastest; the last one is the default.
func Levels() []Level {
	ls := []Level{LevelPurego}
	for l := LevelPurego + 1; l < numLevels; l++ {
		if levelAvailable(l) {
			ls = append(ls, l)
		}
	}
	return ls
}

// simdLevel is the active level; every dispatching kernel reads it.
var simdLevel = LevelPurego

// SIMD returns the active level.
func SIMD() Level { return simdLevel }

// SetSIMD makes l the active level. It returns an error, and changes nothing, when this
// machine or build cannot run l. It must not be called while kernels are running.
func SetSIMD(l Level) error {
	if l >= numLevels {
		return fmt.Errorf("cpu: unknown SIMD level %d", l)
	}
	if l != LevelPurego && !levelAvailable(l) {
		return fmt.Errorf("cpu: SIMD level %s is not available here (available: %s)", l, levelList(Levels()))
	}
	simdLevel = l
	return nil
}

func levelList(ls []Level) string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = l.String()
	}
	return strings.Join(names, ", ")
}

// simdEnv is the environment variable that forces a level for tests and benchmarks.
const simdEnv = "BANKAI_SIMD"

// chooseLevel returns the level to start with: the fastest available one, or the one named
// by $BANKAI_SIMD. A level that is unknown or unavailable here falls back to the fastest
// available one with a warning (returned as a non-empty string), so that a script written for
// another machine still runs; tests that need a level call SetSIMD, which fails instead.
func chooseLevel(env string) (Level, string) {
	ls := Levels()
	best := ls[len(ls)-1]
	if env == "" {
		return best, ""
	}
	l, err := ParseLevel(env)
	if err != nil {
		return best, fmt.Sprintf("%s=%s: %v; using %s", simdEnv, env, err, best)
	}
	if l != LevelPurego && !levelAvailable(l) {
		return best, fmt.Sprintf("%s=%s: not available on this machine or build (available: %s); using %s",
			simdEnv, env, levelList(ls), best)
	}
	return l, ""
}

func init() {
	l, warn := chooseLevel(os.Getenv(simdEnv))
	if warn != "" {
		fmt.Fprintln(os.Stderr, "warning: cpu:", warn)
	}
	simdLevel = l
}
