package runtime

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

// Fingerprint is a short content fingerprint of the model as loaded (before any in-memory
// patch): "gguf:" or "mlx:" followed by 16 hex digits of a SHA-256 over the configuration,
// every matrix's shape and the first 16 sign bytes (group 0) plus the first scale of every row,
// and the patch note of a copy saved by SaveCopy.
//
// It tells formats, shapes and models apart, and an already-patched file too whenever its
// patch flips whole rows (every upstream patch does) or group 0 of a row; a flip confined to
// other groups or bits of a row is not seen. Hashing 16 of every row's bytes costs about
// 30 MB of reading for an 8B model. The value is computed once, at the first call.
func (m *Model) Fingerprint() string {
	if m.fingerprint == "" {
		m.fingerprint = m.computeFingerprint(m.Source.PatchNote)
	}
	return m.fingerprint
}

// ContentFingerprint recomputes the fingerprint from the bits as they are in memory now,
// ignoring any patch note: on an unpatched model it equals Fingerprint. `patch verify` uses it
// to tell whether reverting a patch brings a model back to the patch's base.
func (m *Model) ContentFingerprint() string { return m.computeFingerprint("") }

func (m *Model) computeFingerprint(note string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%+v|%q|", m.Source.Format, m.Config, note)
	var buf [8]byte
	add := func(mt *q1.Matrix) {
		fmt.Fprintf(h, "%s:%dx%d|", mt.Name, mt.Rows, mt.Cols)
		for r := 0; r < mt.Rows; r++ {
			h.Write(mt.GroupSigns(r, 0))
			binary.LittleEndian.PutUint32(buf[:], uint32(int32(mt.Scale(r, 0)*(1<<20))))
			h.Write(buf[:4])
		}
	}
	add(m.Embed)
	if !m.Tied {
		add(m.Output)
	}
	for _, l := range m.Layers {
		for _, p := range l.Proj {
			add(p)
		}
	}
	return m.Source.Format + ":" + hex.EncodeToString(h.Sum(nil)[:8])
}

// Tokenizer builds the model's tokenizer from its metadata (GGUF) or tokenizer.json (MLX).
func (m *Model) Tokenizer() (*tokenizer.Tokenizer, error) {
	if m.tok != nil {
		return m.tok, nil
	}
	var t *tokenizer.Tokenizer
	var err error
	switch {
	case m.Source.tok.gguf != nil:
		t, err = tokenizer.FromGGUF(m.Source.tok.gguf)
	case m.Source.tok.json != nil:
		t, err = tokenizer.FromJSON(m.Source.tok.json, m.Source.tok.configJSON)
	default:
		err = fmt.Errorf("no tokenizer in %s (an MLX directory needs tokenizer.json)", m.Source.Path)
	}
	if err == nil {
		err = m.checkTokenizer(t) // MLX: tokenizer.json is parsed only here, so it is checked here
	}
	if err != nil {
		return nil, fmt.Errorf("model: tokenizer: %w", err)
	}
	m.tok = t
	return t, nil
}
