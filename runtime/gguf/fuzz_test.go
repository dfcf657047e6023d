package gguf

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
)

// FuzzGGUF: Parse never panics, allocates O(input) and only fails with a *FormatError; whatever it accepts, Write
// accepts too, and the result parses to the same metadata and tensors. Seeds: generated files,
// every malformed case, the committed corpus in testdata/fuzz/FuzzGGUF and, when ../shared is
// present, the oracle tiny-q1.gguf.
func FuzzGGUF(f *testing.F) {
	for _, kvs := range [][]KV{nil, sampleKVs(), append(sampleKVs(), NewKV(AlignmentKey, uint32(64)))} {
		for _, tensors := range [][]WriteTensor{nil, sampleTensors()} {
			var buf bytes.Buffer
			require.NoError(f, Write(&buf, kvs, tensors))
			f.Add(buf.Bytes())
		}
	}
	for _, tc := range malformedCases {
		data, _ := tc.build()
		f.Add(data)
	}
	if path, ok := testenv.Lookup(f, "oracle", "tiny-q1.gguf"); ok {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var g *File
		var err error
		alloc := allocated(func() { g, err = Parse(data) })
		// Every record costs a small constant multiple of its smallest encoding (see
		// TestDenseRecordsAllocation), so memory stays O(input) whatever the counts say.
		require.LessOrEqual(t, alloc, uint64(64<<10+16*len(data)), "bytes allocated for %d bytes of input", len(data))
		if err != nil {
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			return
		}
		var once bytes.Buffer
		require.NoError(t, Write(&once, g.KV, writeTensorsOf(g)))
		h, err := Parse(once.Bytes())
		require.NoError(t, err)

		require.Len(t, h.KV, len(g.KV))
		for i := range g.KV {
			require.Equal(t, g.KV[i].Key, h.KV[i].Key)
			require.Equal(t, g.KV[i].Type, h.KV[i].Type)
		}
		require.Equal(t, g.Alignment, h.Alignment)
		require.Len(t, h.Tensors, len(g.Tensors))
		for i := range g.Tensors {
			a, b := &g.Tensors[i], &h.Tensors[i]
			require.Equal(t, a.Name, b.Name)
			require.Equal(t, a.Dims, b.Dims)
			require.Equal(t, a.Type, b.Type)
			require.Equal(t, a.Size, b.Size)
			require.Equal(t, g.Data(a), h.Data(b))
		}
		// Values compare through their encoding, which is exact (NaN payloads included).
		var twice bytes.Buffer
		require.NoError(t, Write(&twice, h.KV, writeTensorsOf(h)))
		require.Equal(t, once.Bytes(), twice.Bytes())
	})
}
