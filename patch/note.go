package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Note is the provenance record a patched copy of a model carries (the runtime stores it under
// the GGUF key bankai.patches, or as bankai_patches.json in an MLX directory): the fingerprint
// of the unpatched base model and the patches applied to it, in the order they were applied.
// A copy with no patches left carries no note at all, so reverting every patch gives back the
// base file byte for byte.
type Note struct {
	Base    string       `json:"base_fingerprint"`
	Patches []NoteRecord `json:"patches"`
}

// NoteRecord is one patch in a Note.
type NoteRecord struct {
	Name        string `json:"name"`
	ID          string `json:"id"` // Patch.ID, the content identity
	Fingerprint string `json:"fingerprint,omitempty"`
	Flips       int    `json:"flips"`
}

// ParseNote decodes a note; "" (a model that was never patched) gives nil.
func ParseNote(s string) (*Note, error) {
	if s == "" {
		return nil, nil
	}
	var n Note
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	if err := dec.Decode(&n); err != nil {
		return nil, fmt.Errorf("patch note: not the JSON object bankai-metal writes (base_fingerprint, patches): %v", plainJSONError(err))
	}
	return &n, nil
}

// String encodes the note as one line of JSON, or "" when no patch is recorded.
func (n *Note) String() string {
	if n == nil || len(n.Patches) == 0 {
		return ""
	}
	b, _ := json.Marshal(n) // strings and ints only: cannot fail
	return string(b)
}

// Find returns the index of the record with the given ID, or -1.
func (n *Note) Find(id string) int {
	if n == nil || id == "" {
		return -1
	}
	return slices.IndexFunc(n.Patches, func(r NoteRecord) bool { return r.ID == id })
}

// plainJSONError describes a decoding error without Go type names.
func plainJSONError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q: got a JSON %s", te.Field, te.Value)
		}
		return fmt.Sprintf("got a JSON %s", te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	return err.Error()
}
