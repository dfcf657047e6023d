package patch

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIDIsContent(t *testing.T) {
	a := &Patch{Name: "math_patch", Flips: []Flip{RowFlip(0, "up_proj", 3), GroupFlip(1, "down_proj", 2, 1), BitFlip(0, "q_proj", 1, 9)}}
	// same flips, other order, GGUF projection names, other name and metadata
	b := &Patch{Name: "other", Fingerprint: "x", Metadata: map[string]any{"k": 1},
		Flips: []Flip{BitFlip(0, "attn_q", 1, 9), RowFlip(0, "ffn_up", 3), GroupFlip(1, "ffn_down", 2, 1)}}
	c := &Patch{Name: "math_patch", Flips: []Flip{RowFlip(0, "up_proj", 4)}}
	ida, err := a.ID()
	require.NoError(t, err)
	idb, err := b.ID()
	require.NoError(t, err)
	idc, err := c.ID()
	require.NoError(t, err)
	require.Len(t, ida, IDLength)
	require.Equal(t, ida, idb, "order, names and metadata do not matter")
	require.NotEqual(t, ida, idc, "the same name with other flips is another patch")

	_, err = (&Patch{Name: "d", Flips: []Flip{RowFlip(0, "up_proj", 3), RowFlip(0, "up_proj", 3)}}).ID()
	require.ErrorContains(t, err, "flip 1: L0.up_proj row 3 duplicates flip 0")
}

// TestApplySameNameDifferentContent: two patches both named math_patch stack; the same
// content under another name does not; each can be reverted.
func TestApplySameNameDifferentContent(t *testing.T) {
	m := newFake(t, 8, 2)
	orig := m.clone(t)
	a := NewApplied(m)
	p1 := &Patch{Name: "math_patch", Fingerprint: m.fp, Flips: []Flip{RowFlip(0, "up_proj", 1)}}
	p2 := &Patch{Name: "math_patch", Fingerprint: m.fp, Flips: []Flip{RowFlip(1, "up_proj", 2)}}
	require.NoError(t, a.Apply(p1, false))
	require.NoError(t, a.Apply(p2, false))
	id2, _ := p2.ID()
	require.Equal(t, []string{"math_patch", "math_patch@" + id2}, a.List())
	copyOf1 := &Patch{Name: "renamed", Fingerprint: m.fp, Flips: p1.Flips}
	require.ErrorContains(t, a.Apply(copyOf1, false), `already applied (same flips as "math_patch")`)
	require.ErrorContains(t, a.Apply(copyOf1, true), "already applied", "force does not apply the same content twice")

	n := a.Note("base-fp")
	require.Equal(t, "base-fp", n.Base)
	require.Len(t, n.Patches, 2)
	require.Equal(t, id2, n.Patches[1].ID)

	require.NoError(t, a.Revert(id2), "revert by ID")
	require.NoError(t, a.RevertPatch(copyOf1), "revert by content")
	require.Empty(t, a.List())
	require.Nil(t, a.Note("base-fp"), "no patch, no note")
	require.True(t, equalData(orig, m))
}

// TestInheritNote: a patched copy's note makes its patches count as applied; a patch for the
// copy's base is accepted; forcing a recorded patch reverts it and drops it from the note.
func TestInheritNote(t *testing.T) {
	m := newFake(t, 9, 2) // stands for a patched copy; its own fingerprint is m.fp
	orig := m.clone(t)
	old := &Patch{Name: "old", Fingerprint: "base", Flips: []Flip{RowFlip(0, "up_proj", 1)}}
	oldID, _ := old.ID()
	note := &Note{Base: "base", Patches: []NoteRecord{{Name: "old", ID: oldID, Fingerprint: "base", Flips: 1}}}
	back, err := ParseNote(note.String())
	require.NoError(t, err)
	require.Equal(t, note, back)

	a := NewApplied(m)
	a.Inherit(back)
	require.Equal(t, []string{"old"}, a.Inherited())
	require.ErrorContains(t, a.Apply(old, false), "already applied to this model file (recorded in its patch note")
	require.True(t, equalData(orig, m), "refused: nothing flipped")

	fresh := &Patch{Name: "fresh", Fingerprint: "base", Flips: []Flip{RowFlip(1, "up_proj", 1)}}
	require.NoError(t, a.Apply(fresh, false), "made for the copy's base")
	other := &Patch{Name: "other", Fingerprint: "elsewhere", Flips: []Flip{RowFlip(1, "q_proj", 1)}}
	require.ErrorContains(t, a.Apply(other, false), "(a patched copy of model base)")

	require.NoError(t, a.Apply(old, true), "forced: reverts it")
	n := a.Note("ignored")
	require.Equal(t, "base", n.Base)
	require.Len(t, n.Patches, 1)
	require.Equal(t, "fresh", n.Patches[0].Name)
	require.NoError(t, a.RevertPatch(fresh))
	require.Nil(t, a.Note("ignored"))
	require.ErrorContains(t, a.RevertPatch(old), "not applied to this model")
}

func TestParseNoteErrors(t *testing.T) {
	n, err := ParseNote("")
	require.NoError(t, err)
	require.Nil(t, n)
	_, err = ParseNote(`{"patches": 3}`)
	require.ErrorContains(t, err, `field "patches": got a JSON number`)
	require.NotContains(t, err.Error(), "Go value")
	_, err = ParseNote(`{`)
	require.ErrorContains(t, err, "patch note")
}
