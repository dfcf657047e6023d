package patch

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

func TestApplyRevert(t *testing.T) {
	m := newFake(t, 1, 3)
	orig := m.clone(t)
	rng := rand.New(rand.NewPCG(1, 2))
	flips := randomFlips(rng, 2, 40) // layers 0 and 1
	// Overlaps of different granularity in layer 2 compose by XOR.
	flips = append(flips, RowFlip(2, "down_proj", 5), BitFlip(2, "down_proj", 5, 300), GroupFlip(2, "down_proj", 5, 1),
		GroupFlip(2, "up_proj", 0, 1), BitFlip(2, "up_proj", 0, 129))
	p := &Patch{Name: "p", Fingerprint: m.fp, Flips: flips}
	a := NewApplied(m)
	require.NoError(t, a.Apply(p, false))
	require.Equal(t, []string{"p"}, a.List())
	require.Empty(t, a.Warnings())

	want := expectedBits(p.Flips)
	require.Equal(t, want, diffBits(t, orig, m), "exactly the flipped bits differ")
	s, err := p.Stats(m)
	require.NoError(t, err)
	require.EqualValues(t, len(want), s.BitsFlipped, "Stats is the Hamming distance")
	require.Equal(t, len(p.Flips), s.Rows+s.Groups+s.Bits)

	require.NoError(t, a.Revert("p"))
	require.True(t, equalData(orig, m), "revert restores every byte")
	require.Empty(t, a.List())
}

func TestApplyAllOrNothing(t *testing.T) {
	m := newFake(t, 2, 2)
	orig := m.clone(t)
	rows := fakeShapes["up_proj"][0]
	p := &Patch{Name: "bad", Fingerprint: m.fp, Flips: []Flip{RowFlip(0, "up_proj", 1), RowFlip(1, "up_proj", rows)}}
	err := NewApplied(m).Apply(p, false)
	require.ErrorContains(t, err, `patch: apply "bad": flip 1: row 12 out of range [0,12) in L1.up_proj`)
	require.True(t, equalData(orig, m), "no byte changed")
	require.Error(t, ApplyFlips(m, p.Flips))
	require.True(t, equalData(orig, m), "no byte changed")
}

func TestValidateErrors(t *testing.T) {
	m := newFake(t, 3, 2)
	cases := []struct {
		flip Flip
		want string
	}{
		{RowFlip(2, "up_proj", 0), "flip 1: layer 2 out of range [0,2)"},
		{RowFlip(0, "down_proj", 8), "flip 1: row 8 out of range [0,8) in L0.down_proj"},
		{GroupFlip(0, "down_proj", 1, 3), "flip 1: group 3 out of range [0,3) in L0.down_proj"},
		{GroupFlip(0, "up_proj", 1, 2), "flip 1: group 2 out of range [0,2) in L0.up_proj"},
		{BitFlip(1, "attn_k", 0, 256), "flip 1: col 256 out of range [0,256) in L1.k_proj"},
		{RowFlip(0, "x_proj", 0), `flip 1: unknown projection "x_proj" (want one of q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)`},
		{RowFlip(0, "up_proj", -1), "flip 1: negative row -1"},
		{Flip{Proj: "up_proj"}, "flip 1: group 0 and col 0: want a row (both -1), group (col -1) or bit (group -1) flip"},
		{RowFlip(0, "ffn_up", 0), "flip 1: L0.up_proj row 0 duplicates flip 0 (a repeated flip cancels itself)"},
	}
	for _, c := range cases {
		p := &Patch{Name: "v", Flips: []Flip{RowFlip(0, "up_proj", 0), c.flip}}
		err := p.Validate(m)
		require.Error(t, err, c.flip.String())
		require.Equal(t, "patch: v: "+c.want, err.Error())
	}
}

func TestApplyFingerprint(t *testing.T) {
	m := newFake(t, 4, 1)
	orig := m.clone(t)
	p := &Patch{Name: "other", Fingerprint: "other-model", Flips: []Flip{RowFlip(0, "q_proj", 0)}}
	a := NewApplied(m)
	err := a.Apply(p, false)
	require.ErrorContains(t, err, "other-model")
	require.ErrorContains(t, err, m.fp)
	require.True(t, equalData(orig, m))
	require.Empty(t, a.List())

	require.NoError(t, a.Apply(p, true))
	require.Len(t, a.Warnings(), 1)
	require.Contains(t, a.Warnings()[0], "by force")

	anon := &Patch{Name: "anon", Flips: []Flip{RowFlip(0, "k_proj", 0)}}
	require.NoError(t, a.Apply(anon, false))
	require.Len(t, a.Warnings(), 2)
	require.Contains(t, a.Warnings()[1], "no model fingerprint")
	require.Equal(t, []string{"other", "anon"}, a.List())
}

func TestApplyTwiceRefused(t *testing.T) {
	m := newFake(t, 5, 1)
	p := &Patch{Name: "p", Fingerprint: m.fp, Flips: []Flip{RowFlip(0, "q_proj", 0), GroupFlip(0, "up_proj", 1, 1)}}
	a := NewApplied(m)
	require.NoError(t, a.Apply(p, false))
	after := m.clone(t)

	require.ErrorContains(t, a.Apply(p, false), `patch: apply "p": already applied`)
	same := &Patch{Name: "q", Fingerprint: m.fp, Flips: []Flip{GroupFlip(0, "ffn_up", 1, 1), RowFlip(0, "q_proj", 0)}}
	require.ErrorContains(t, a.Apply(same, false), `already applied (same flips as "p")`)
	require.True(t, equalData(after, m), "a refused apply does not revert")

	over := &Patch{Name: "over", Fingerprint: m.fp, Flips: []Flip{BitFlip(0, "up_proj", 1, 130)}}
	require.NoError(t, a.Apply(over, false))
	require.Len(t, a.Warnings(), 1)
	require.Contains(t, a.Warnings()[0], `overlaps applied patch "p" in 1 flip pairs`)

	require.ErrorContains(t, a.Revert("nope"), `patch: revert "nope": not applied`)
}

func TestRevertAnyOrder(t *testing.T) {
	m := newFake(t, 6, 2)
	orig := m.clone(t)
	rng := rand.New(rand.NewPCG(6, 6))
	a := NewApplied(m)
	names := []string{"a", "b", "c"}
	for _, n := range names {
		require.NoError(t, a.Apply(&Patch{Name: n, Fingerprint: m.fp, Flips: randomFlips(rng, 2, 10)}, false))
	}
	require.NoError(t, a.Revert("b"))
	require.NoError(t, a.Revert("a"))
	require.Equal(t, []string{"c"}, a.List())
	require.NoError(t, a.Revert("c"))
	require.True(t, equalData(orig, m))
}

func TestStatsNominal(t *testing.T) {
	m := newFake(t, 7, 1)
	p := &Patch{Name: "s", Flips: []Flip{RowFlip(0, "down_proj", 1), RowFlip(0, "up_proj", 1), GroupFlip(0, "up_proj", 2, 0)}}
	s, err := p.Stats(m)
	require.NoError(t, err)
	// Exact: a down_proj row is its 384 columns, an up_proj row 256, a group 128.
	require.EqualValues(t, 384+256+128, s.BitsFlipped)
	require.Equal(t, map[string]int{"L0.down_proj": 1, "L0.up_proj": 2}, s.ByLayerProj)
	require.Equal(t, 2, s.Rows)
	require.Equal(t, 1, s.Groups)
	// Upstream's nominal figures: 4096 bits and 12 bytes per flip whatever the flip.
	require.Equal(t, NominalStats{BitsFlipped: 3 * 4096, SizeBytes: 3 * 12}, s.Nominal)
	require.Equal(t, s.Nominal, p.StatsNominal())
}

// TestApplyFlipsTouched: the matrices reported are those the flips address, each once, in the
// order of their first flip; none for an invalid list (which changes nothing) or no flips.
func TestApplyFlipsTouched(t *testing.T) {
	m := newFake(t, 10, 2)
	orig := m.clone(t)
	flips := []Flip{RowFlip(1, "up_proj", 0), BitFlip(0, "attn_q", 1, 2), GroupFlip(1, "ffn_up", 3, 1), RowFlip(1, "up_proj", 4)}
	mats, err := ApplyFlipsTouched(m, flips)
	require.NoError(t, err)
	require.Equal(t, []*q1.Matrix{m.mats["L1.up_proj"], m.mats["L0.q_proj"]}, mats)
	require.Equal(t, expectedBits(flips), diffBits(t, orig, m))

	mats, err = ApplyFlipsTouched(m, append(flips, RowFlip(2, "up_proj", 0)))
	require.Error(t, err)
	require.Nil(t, mats)
	mats, err = ApplyFlipsTouched(m, nil)
	require.NoError(t, err)
	require.Nil(t, mats)
	require.Equal(t, expectedBits(flips), diffBits(t, orig, m), "neither call changed a bit")
}

// TestOnChange: the hook hears exactly the matrices of every apply and revert that flips bits,
// including a forced re-apply and a revert of patches the inherited note records, and nothing
// from a refused call. Its error is returned with the change kept.
func TestOnChange(t *testing.T) {
	m := newFake(t, 11, 2)
	orig := m.clone(t)
	var calls [][]*q1.Matrix
	var hookErr error
	a := NewApplied(m)
	a.OnChange(func(mats ...*q1.Matrix) error {
		calls = append(calls, mats)
		return hookErr
	})
	old := &Patch{Name: "old", Fingerprint: "base", Flips: []Flip{RowFlip(0, "up_proj", 1), RowFlip(0, "up_proj", 2)}}
	oldID, _ := old.ID()
	a.Inherit(&Note{Base: "base", Patches: []NoteRecord{{Name: "old", ID: oldID, Fingerprint: "base", Flips: 2}}})
	p := &Patch{Name: "p", Fingerprint: "base", Flips: []Flip{BitFlip(1, "down_proj", 0, 3), RowFlip(0, "gate_proj", 2), GroupFlip(1, "down_proj", 1, 2)}}
	pMats := []*q1.Matrix{m.mats["L1.down_proj"], m.mats["L0.gate_proj"]}
	oldMats := []*q1.Matrix{m.mats["L0.up_proj"]}

	require.NoError(t, a.Apply(p, false))
	require.Error(t, a.Apply(p, false))
	require.Error(t, a.Apply(old, false))
	require.Error(t, a.Revert("nope"))
	require.Error(t, a.Apply(&Patch{Name: "bad", Flips: []Flip{RowFlip(5, "up_proj", 0)}}, false))
	require.NoError(t, a.Apply(&Patch{Name: "empty", Fingerprint: "base"}, false))
	require.Equal(t, [][]*q1.Matrix{pMats}, calls, "refused and empty calls report nothing")

	require.NoError(t, a.Revert("p"))
	require.NoError(t, a.Apply(old, true), "forced: reverts the inherited patch")
	require.NoError(t, a.Apply(p, false))
	require.NoError(t, a.RevertPatch(p))
	require.Equal(t, [][]*q1.Matrix{pMats, pMats, oldMats, pMats, pMats}, calls)

	hookErr = errors.New("device lost")
	err := a.Apply(p, false)
	require.ErrorIs(t, err, hookErr)
	require.Equal(t, `patch: apply "p": the bits changed, but the change hook failed: device lost`, err.Error())
	require.Equal(t, []string{"empty", "p"}, a.List(), "the patch stays applied")
	require.ErrorIs(t, a.Revert("p"), hookErr)
	require.Equal(t, []string{"empty"}, a.List())

	a.OnChange(nil)
	hookErr = nil
	require.NoError(t, a.Apply(p, false))
	require.Len(t, calls, 7, "no hook, no call")
	require.NoError(t, a.Revert("p"))
	require.Equal(t, expectedBits(old.Flips), diffBits(t, orig, m), "only the forced re-apply of old remains")
}
