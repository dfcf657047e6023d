package patch

import (
	"fmt"
	"math/bits"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// Upstream's nominal accounting (docs/UPSTREAM.md §2.1): every flip counts as a 4096-bit row of a
// gate/up projection stored as three 4-byte integers, whatever its projection or granularity.
const (
	nominalBitsPerFlip  = 4096
	nominalBytesPerFlip = 12
)

// NominalStats are upstream's "stats" figures: BitsFlipped = 4096 per flip and SizeBytes = 12 per
// flip. They are wrong for down_proj rows (12288 bits), group flips (128 bits) and bit flips, and
// are kept only because upstream files carry them.
type NominalStats struct {
	BitsFlipped int
	SizeBytes   int
}

// Stats describes a patch measured on a model.
type Stats struct {
	Flips, Rows, Groups, Bits int // flips in total and by kind
	// BitsFlipped is the exact number of sign bits that differ after applying the patch: a row
	// flip counts the projection's Cols bits, a group 128, a bit 1, and overlapping flips of one
	// patch are combined by XOR first.
	BitsFlipped int64
	// ByLayerProj counts flips per projection, keyed like "L3.up_proj".
	ByLayerProj map[string]int
	// Nominal holds upstream's figures for comparison.
	Nominal NominalStats
}

// StatsNominal returns upstream's nominal figures (see NominalStats); it needs no model.
func (p *Patch) StatsNominal() NominalStats {
	n := len(p.Flips)
	return NominalStats{BitsFlipped: n * nominalBitsPerFlip, SizeBytes: n * nominalBytesPerFlip}
}

// Stats validates the patch against t and measures it exactly.
func (p *Patch) Stats(t Target) (Stats, error) {
	flips, mats, err := resolve(t, p.Flips, true)
	if err != nil {
		return Stats{}, fmt.Errorf("patch: %s: %w", p.Name, err)
	}
	s := Stats{Flips: len(flips), ByLayerProj: map[string]int{}, Nominal: p.StatsNominal()}
	for _, f := range flips {
		switch f.Kind() {
		case KindRow:
			s.Rows++
		case KindGroup:
			s.Groups++
		case KindBit:
			s.Bits++
		}
		s.ByLayerProj[fmt.Sprintf("L%d.%s", f.Layer, f.Proj)]++
	}
	forEachRow(flips, mats, func(_ rowKey, _ *q1.Matrix, _ []int, mask []byte) {
		s.BitsFlipped += popcount(mask)
	})
	return s, nil
}

func popcount(b []byte) int64 {
	var n int
	for _, x := range b {
		n += bits.OnesCount8(x)
	}
	return int64(n)
}
