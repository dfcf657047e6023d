package patch

import (
	"testing"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// oneMatrix is a Target with a single 8B-shaped up_proj (12288 x 4096) in layer 0.
type oneMatrix struct{ m *q1.Matrix }

func (o oneMatrix) NumLayers() int      { return 1 }
func (o oneMatrix) Fingerprint() string { return "bench" }
func (o oneMatrix) Matrix(layer int, proj string) (*q1.Matrix, error) {
	return o.m, nil
}

// BenchmarkApplyRevert100Rows applies and reverts a 100-row patch through Applied on a
// Bonsai-8B up_proj: 12288 rows x 32 blocks x 18 bytes.
func BenchmarkApplyRevert100Rows(b *testing.B) {
	const rows, cols = 12288, 4096
	buf := make([]byte, rows*(cols/q1.GroupSize)*q1.BlockBytes) // (rows, cols/128) Q1_0 blocks
	m, err := q1.FromQ1_0("blk.0.ffn_up.weight", rows, cols, buf)
	if err != nil {
		b.Fatal(err)
	}
	t := oneMatrix{m}
	p := &Patch{Name: "bench", Fingerprint: "bench"}
	for i := range 100 {
		p.Flips = append(p.Flips, RowFlip(0, "up_proj", i*(rows/100)))
	}
	a := NewApplied(t)
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Apply(p, false); err != nil {
			b.Fatal(err)
		}
		if err := a.Revert("bench"); err != nil {
			b.Fatal(err)
		}
	}
}
