package bfs

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzCheckpoint checks that ParseCheckpoint never panics; that what it accepts can be checked
// against the model without panicking; and that it survives SaveCheckpoint's encoding and a
// second parse unchanged. The seeds are made here, not read from anywhere: real checkpoints of
// interrupted tiny searches (greedy, fast, fast inside its scan) and damaged copies of them.
func FuzzCheckpoint(f *testing.F) {
	smallScanChunks(f)
	m := tinyModel(f, 4)
	cks := sampleCheckpoints(f, m)
	names := make([]string, 0, len(cks))
	for name := range cks {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		data, err := json.Marshal(cks[name])
		require.NoError(f, err)
		f.Add(data)
		f.Add(data[:len(data)/2])
		f.Add(bytes.Replace(data, []byte(`"row":`), []byte(`"row":-`), 1))
		f.Add(bytes.Replace(data, []byte(`"iteration":`), []byte(`"iteration":1`), 1))
		f.Add(bytes.Replace(data, []byte(`"greedy"`), []byte(`"fast"`), 1))
	}
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ck, err := ParseCheckpoint(data, "fuzz.json")
		if err != nil {
			return
		}
		_ = ck.validateModel(m) // an error is fine, a panic is not
		out, err := json.Marshal(ck)
		require.NoError(t, err)
		back, err := ParseCheckpoint(out, "fuzz.json")
		require.NoError(t, err, "%s", out)
		require.Equal(t, ck, back)
	})
}
