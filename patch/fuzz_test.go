package patch

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
)

// FuzzPatch checks that Parse never panics, and that whatever it accepts survives Marshal and
// Parse unchanged.
func FuzzPatch(f *testing.F) {
	for _, s := range []string{
		`{"flips":[]}`,
		`{"version":1,"format":"bankai_row_xor_v1","name":"a","flips":[{"layer":1,"proj":"up_proj","row":2},{"layer":1,"proj":"up_proj","row":3,"group":4}],"metadata":{"x":[1,2.5e-7,"\u00e9"]}}`,
		`{"version":1,"type":"row_flip","flips":[{"layer":0,"proj":"gate_proj","row":0}],"n_flips":1}`,
		`{"version":2,"format":"bankai_xor_v2","fingerprint":"f","flips":[{"layer":0,"proj":"attn_q","row":1,"col":9}],"stats":{"bits_flipped":1}}`,
		`{"flips":[{"layer":0,"proj":"ffn_down","row":1,"group":null}],"bankai_metal":{"fingerprint":"z","bits_flipped":5}}`,
	} {
		f.Add([]byte(s))
	}
	if dir, ok := testenv.Lookup(f, "upstream", "patches"); ok {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if data, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		out, err := p.Marshal()
		require.NoError(t, err)
		q, err := Parse(out, "fuzz")
		require.NoError(t, err, "%s", out)
		require.Equal(t, p.Flips, q.Flips)
		require.Equal(t, p.Name, q.Name)
		require.Equal(t, p.Description, q.Description)
		require.Equal(t, p.Fingerprint, q.Fingerprint)
		require.Equal(t, p.BitsFlipped, q.BitsFlipped)
		again, err := q.Marshal()
		require.NoError(t, err)
		require.Equal(t, string(out), string(again))
	})
}

// fuzzFlips decodes 5 bytes per flip into distinct valid flips of the fake model.
func fuzzFlips(data []byte) []Flip {
	seen := map[Flip]bool{}
	var out []Flip
	for ; len(data) >= 5; data = data[5:] {
		proj := ProjName(int(data[1]) % NumProj)
		s := fakeShapes[proj]
		l, r := int(data[0])%2, int(data[2])%s[0]
		var f Flip
		switch data[0] / 2 % 3 {
		case 0:
			f = RowFlip(l, proj, r)
		case 1:
			f = GroupFlip(l, proj, r, int(data[3])%(s[1]/128))
		default:
			f = BitFlip(l, proj, r, (int(data[3])<<8|int(data[4]))%s[1])
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

// FuzzApplyRevert checks the XOR algebra on random flips: applying twice is the identity,
// stacking commutes and equals applying both, and the Hamming distance to the base equals
// Stats.BitsFlipped.
func FuzzApplyRevert(f *testing.F) {
	f.Add([]byte{0, 5, 1, 0, 0, 2, 5, 1, 1, 0}, []byte{4, 5, 1, 0, 7, 0, 5, 1, 0, 0})
	f.Add([]byte{1, 6, 3, 2, 0, 3, 6, 3, 2, 1, 5, 6, 3, 1, 44}, []byte{1, 6, 3, 2, 0})
	f.Add([]byte("row, group and bit flips of every projection"), []byte("and a second patch"))
	base := newFake(f, 99, 2)
	f.Fuzz(func(t *testing.T, da, db []byte) {
		a := &Patch{Name: "a", Flips: fuzzFlips(da)}
		b := &Patch{Name: "b", Flips: fuzzFlips(db)}
		m := base.clone(t)

		require.NoError(t, ApplyFlips(m, a.Flips))
		s, err := a.Stats(m)
		require.NoError(t, err)
		require.EqualValues(t, len(diffBits(t, base, m)), s.BitsFlipped, "Hamming distance = Stats.BitsFlipped")
		require.Equal(t, expectedBits(a.Flips), diffBits(t, base, m))
		require.NoError(t, ApplyFlips(m, a.Flips))
		require.True(t, equalData(base, m), "applying twice is the identity")

		ab, cab, err := Stack(a, b)
		require.NoError(t, err)
		ba, cba, err := Stack(b, a)
		require.NoError(t, err)
		require.Equal(t, ab, ba)
		require.Equal(t, cab, cba)

		require.NoError(t, ApplyFlips(m, ab.Flips))
		both := base.clone(t)
		require.NoError(t, ApplyFlips(both, append(append([]Flip{}, a.Flips...), b.Flips...)))
		require.True(t, equalData(both, m), "the stack equals a then b")
		s, err = ab.Stats(m)
		require.NoError(t, err)
		require.EqualValues(t, len(diffBits(t, base, m)), s.BitsFlipped)
	})
}
