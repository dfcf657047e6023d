package patch

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// IDLength is the number of hex digits of a patch ID.
const IDLength = 16

// ID returns the patch's content identity: IDLength hex digits of a SHA-256 over its flip set
// in canonical form (Hugging Face projection names, sorted into the canonical order). It does
// not depend on the name, description, fingerprint or metadata, on the order of the flips or
// on the file format, so two files with equal IDs flip the same bits. (Two ways of writing the
// same bits, such as one group flip and its 128 bit flips, have different IDs: Stack writes
// the one canonical form.) It fails only on a flip that is malformed or listed twice.
func (p *Patch) ID() (string, error) {
	flips, err := normalizeFlips(p.Flips)
	if err != nil {
		return "", fmt.Errorf("patch: %s: %w", p.Name, err)
	}
	return flipsID(flips), nil
}

// flipsID hashes normalised flips in canonical order: per flip the layer, projection index,
// row, group and col as little-endian int64s (-1 for an absent group or col).
func flipsID(flips []Flip) string {
	h := sha256.New()
	h.Write([]byte("bankai-flips-v1\x00"))
	var buf [5 * 8]byte
	for _, k := range canonicalOrder(flips) {
		f := flips[k.i]
		for j, v := range []int{f.Layer, projIndex(f.Proj), f.Row, f.Group, f.Col} {
			binary.LittleEndian.PutUint64(buf[8*j:], uint64(int64(v)))
		}
		h.Write(buf[:])
	}
	return hex.EncodeToString(h.Sum(nil))[:IDLength]
}
