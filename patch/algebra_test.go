package patch

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// applied returns a copy of m with the flips applied.
func applied(t *testing.T, m *fakeModel, flips []Flip) *fakeModel {
	c := m.clone(t)
	require.NoError(t, ApplyFlips(c, flips))
	return c
}

func TestStackCancellation(t *testing.T) {
	a := &Patch{Name: "a", Fingerprint: "fp", Flips: []Flip{RowFlip(0, "up_proj", 1), RowFlip(0, "up_proj", 2), GroupFlip(1, "q_proj", 0, 1)}}
	b := &Patch{Name: "b", Flips: []Flip{RowFlip(0, "ffn_up", 2), BitFlip(0, "up_proj", 1, 7), BitFlip(1, "q_proj", 0, 200)}}
	s, cancelled, err := Stack(a, b)
	require.NoError(t, err)
	require.Equal(t, "a+b", s.Name)
	require.Equal(t, "fp", s.Fingerprint)
	require.Equal(t, []Flip{
		RowFlip(0, "up_proj", 1), BitFlip(0, "up_proj", 1, 7), // row 1 except col 7
		GroupFlip(1, "q_proj", 0, 1), BitFlip(1, "q_proj", 0, 200), // group 1 except col 200
	}, s.Flips)
	require.Equal(t, []Flip{BitFlip(0, "up_proj", 1, 7), RowFlip(0, "up_proj", 2), BitFlip(1, "q_proj", 0, 200)}, cancelled)

	// The stacked patch does to a model exactly what a then b do.
	m := newFake(t, 10, 2)
	require.True(t, equalData(applied(t, applied(t, m, a.Flips), b.Flips), applied(t, m, s.Flips)))

	_, _, err = Stack(a, &Patch{Name: "c", Fingerprint: "other"})
	require.ErrorContains(t, err, `"a" is for model fp but "c" is for model other`)
	_, _, err = Stack()
	require.Error(t, err)
}

func TestStackGroupsIntoWhole(t *testing.T) {
	// 128 bit flips from two patches fill group 0; three flips of one row cancel to one.
	var bits1, bits2 []Flip
	for c := range 128 {
		if c%2 == 0 {
			bits1 = append(bits1, BitFlip(0, "v_proj", 3, c))
		} else {
			bits2 = append(bits2, BitFlip(0, "v_proj", 3, c))
		}
	}
	s, cancelled, err := Stack(&Patch{Name: "x", Flips: append(bits1, RowFlip(0, "k_proj", 1))},
		&Patch{Name: "y", Flips: append(bits2, RowFlip(0, "k_proj", 1))},
		&Patch{Name: "z", Flips: []Flip{RowFlip(0, "k_proj", 1)}})
	require.NoError(t, err)
	require.Equal(t, []Flip{RowFlip(0, "k_proj", 1), GroupFlip(0, "v_proj", 3, 0)}, s.Flips)
	require.Empty(t, cancelled, "a bit flipped three times is not cancelled")
}

func TestStackOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	m := newFake(t, 11, 2)
	// Draw from a small pool so that patches overlap.
	ps := make([]*Patch, 4)
	for i := range ps {
		ps[i] = &Patch{Name: string(rune('a' + i)), Flips: randomFlips(rng, 2, 30)}
	}
	want, wantC, err := Stack(ps...)
	require.NoError(t, err)
	for range 5 {
		rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		got, gotC, err := Stack(ps...)
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.Equal(t, wantC, gotC)
	}
	var all []Flip
	for _, p := range ps {
		all = append(all, p.Flips...)
	}
	require.True(t, equalData(applied(t, m, all), applied(t, m, want.Flips)))
	require.NoError(t, want.Validate(m))
}

func TestDiff(t *testing.T) {
	a := newFake(t, 12, 2)
	var fill []Flip
	for c := 128; c < 256; c++ {
		fill = append(fill, BitFlip(1, "gate_proj", 4, c)) // a whole group, bit by bit
	}
	p := &Patch{Name: "p", Flips: append([]Flip{
		RowFlip(0, "down_proj", 2),
		GroupFlip(0, "up_proj", 3, 1), BitFlip(0, "up_proj", 3, 5),
		BitFlip(1, "o_proj", 7, 255), BitFlip(1, "o_proj", 7, 0),
		RowFlip(1, "q_proj", 0), BitFlip(1, "q_proj", 0, 17), // row except one bit
	}, fill...)}
	b := applied(t, a, p.Flips)
	d, err := Diff(a, b)
	require.NoError(t, err)
	require.Equal(t, a.fp, d.Fingerprint)
	want := slices.Clone(p.Flips[:7])
	want = append(want, GroupFlip(1, "gate_proj", 4, 1))
	sortFlips(want)
	require.Equal(t, want, d.Flips, "compressed: 128 bits become a group flip")
	require.EqualValues(t, len(expectedBits(p.Flips)), d.BitsFlipped)
	require.True(t, equalData(applied(t, a, d.Flips), b), "the diff maps a to b")

	// Random patches: Diff maps a to b, is never longer than Stack's form (which cannot see the
	// row length), and is already in Stack's canonical form.
	rng := rand.New(rand.NewPCG(12, 1))
	for range 20 {
		q := &Patch{Name: "q", Flips: randomFlips(rng, 2, 25)}
		b := applied(t, a, q.Flips)
		d, err := Diff(a, b)
		require.NoError(t, err)
		require.True(t, equalData(applied(t, a, d.Flips), b))
		sq, _, err := Stack(q)
		require.NoError(t, err)
		require.LessOrEqual(t, len(d.Flips), len(sq.Flips))
		sd, _, err := Stack(d)
		require.NoError(t, err)
		require.Equal(t, d.Flips, sd.Flips)
		require.EqualValues(t, len(diffBits(t, a, b)), d.BitsFlipped)
		s, err := d.Stats(a)
		require.NoError(t, err)
		require.Equal(t, d.BitsFlipped, s.BitsFlipped)
	}

	same, err := Diff(a, a.clone(t))
	require.NoError(t, err)
	require.Empty(t, same.Flips)

	c := a.clone(t)
	c.data["L1.up_proj"][18*3] ^= 1 // scale byte of block 3
	_, err = Diff(a, c)
	require.ErrorContains(t, err, "patch: diff: L1.up_proj row 1 group 1: scales differ")

	_, err = Diff(a, newFake(t, 12, 1))
	require.ErrorContains(t, err, "2 layers vs 1")
}

func TestVerify(t *testing.T) {
	base := newFake(t, 13, 2)
	p := &Patch{Name: "p", Fingerprint: base.fp, Flips: []Flip{RowFlip(0, "up_proj", 1), GroupFlip(1, "down_proj", 2, 2), BitFlip(1, "v_proj", 0, 3)}}
	m := base.clone(t)
	check := func(want State) {
		t.Helper()
		got, err := Verify(m, base, p)
		require.NoError(t, err)
		require.Equal(t, want, got, "%s", got)
	}
	check(StateNotApplied)
	require.Equal(t, []string{"not applied", "applied", "partial"}, []string{StateNotApplied.String(), StateApplied.String(), StatePartial.String()})
	require.NoError(t, ApplyFlips(m, p.Flips))
	check(StateApplied)
	require.NoError(t, ApplyFlips(m, p.Flips[2:]))
	check(StatePartial)
	require.NoError(t, ApplyFlips(m, p.Flips[2:]))
	check(StateApplied)
	require.NoError(t, ApplyFlips(m, []Flip{BitFlip(0, "up_proj", 1, 100)}))
	check(StatePartial)

	other := &Patch{Name: "o", Fingerprint: "elsewhere", Flips: p.Flips}
	_, err := Verify(m, base, other)
	require.ErrorContains(t, err, "made for model elsewhere")
}
