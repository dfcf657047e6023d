package mlx

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// rawSafetensors builds a file from a literal header and dataLen bytes of data (0, 1, 2, ...).
func rawSafetensors(header string, dataLen int) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	for i := 0; i < dataLen; i++ {
		out = append(out, byte(i))
	}
	return out
}

// smallTensors is a valid little set: a U32 matrix, an F16 vector, a scalar and an empty tensor.
func smallTensors() []*Tensor {
	return []*Tensor{
		{Name: "b.weight", DType: "U32", Shape: []int64{2, 3}, Data: []byte("abcdefghijklmnopqrstuvwx")},
		{Name: "a.norm", DType: "F16", Shape: []int64{3}, Data: []byte{0, 0x3c, 0, 0x40, 0, 0xc0}},
		{Name: "c.scalar", DType: "F32", Shape: []int64{}, Data: []byte{0, 0, 0x80, 0x3f}},
		{Name: "a.empty", DType: "F32", Shape: []int64{0, 5}, Data: nil},
	}
}

func writeSmall(t *testing.T) []byte {
	path := filepath.Join(t.TempDir(), "small.safetensors")
	require.NoError(t, WriteSafetensors(path, smallTensors(), map[string]string{"format": "mlx", "k": "v"}))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}

func TestSafetensorsWriteParse(t *testing.T) {
	data := writeSmall(t)
	n := binary.LittleEndian.Uint64(data)
	require.Zero(t, (8+n)%8, "data region must start 8-byte aligned")

	st, err := ParseSafetensors(data)
	require.NoError(t, err)
	require.Equal(t, []string{"a.empty", "a.norm", "b.weight", "c.scalar"}, st.Names)
	require.Equal(t, map[string]string{"format": "mlx", "k": "v"}, st.Metadata)
	for _, want := range smallTensors() {
		got := st.Tensors[want.Name]
		require.NotNil(t, got, want.Name)
		require.Equal(t, want.DType, got.DType)
		require.Equal(t, want.Shape, got.Shape)
		require.Equal(t, len(want.Data), len(got.Data))
		if len(want.Data) > 0 {
			require.Equal(t, want.Data, got.Data)
		}
	}

	// Tensors are stored in name order, back to back after the header.
	var hdr map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data[8:8+n], &hdr))
	var off int64
	for _, name := range st.Names {
		var e struct {
			DataOffsets []int64 `json:"data_offsets"`
		}
		require.NoError(t, json.Unmarshal(hdr[name], &e))
		require.Equal(t, []int64{off, off + int64(len(st.Tensors[name].Data))}, e.DataOffsets, name)
		off = e.DataOffsets[1]
	}
	require.Equal(t, int64(len(data))-int64(8+n), off)

	// Data aliases the input.
	w := st.Tensors["b.weight"]
	w.Data[0] ^= 0xff
	require.Equal(t, w.Data[0], data[int(8+n)+len(smallTensors()[1].Data)])
}

func TestSafetensorsWriteRejects(t *testing.T) {
	dir := t.TempDir()
	ok := smallTensors()
	for name, ts := range map[string][]*Tensor{
		"duplicate":  {ok[0], ok[0]},
		"size":       {{Name: "x", DType: "F32", Shape: []int64{3}, Data: make([]byte, 8)}},
		"dtype":      {{Name: "x", DType: "F12", Shape: []int64{1}, Data: make([]byte, 2)}},
		"empty name": {{Name: "", DType: "U8", Shape: []int64{1}, Data: make([]byte, 1)}},
	} {
		path := filepath.Join(dir, name+".safetensors")
		require.Error(t, WriteSafetensors(path, ts, nil), name)
		_, err := os.Stat(path)
		require.True(t, errors.Is(err, os.ErrNotExist), "%s: nothing may be left behind", name)
	}
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, left, "temporary files must be removed")
}

func TestSafetensorsTruncated(t *testing.T) {
	data := writeSmall(t)
	for i := 0; i < len(data); i++ {
		_, err := ParseSafetensors(data[:i:i])
		require.Error(t, err, "prefix of %d of %d bytes", i, len(data))
		require.ErrorIs(t, err, ErrFormat, "prefix %d", i)
	}
}

func TestSafetensorsMalformed(t *testing.T) {
	huge := binary.LittleEndian.AppendUint64(nil, 1<<63)
	tooBig := binary.LittleEndian.AppendUint64(nil, MaxHeaderBytes+1)
	tooBig = append(tooBig, make([]byte, 64)...)
	cases := []struct {
		name string
		file []byte
		want string
		sent error
	}{
		{"short", []byte{1, 2, 3}, "shorter than the 8-byte header length", ErrFormat},
		{"absurd header length", append(huge, "{}"...), "header length 9223372036854775808 exceeds", ErrFormat},
		{"header past limit", tooBig, "exceeds the file", ErrFormat},
		{"header past file", binary.LittleEndian.AppendUint64(nil, 3), "exceeds the file", ErrFormat},
		{"not json", rawSafetensors("not json", 0), "not a JSON object", ErrFormat},
		{"json array", rawSafetensors("[1,2]", 0), "not a JSON object", ErrFormat},
		{"trailing data", rawSafetensors(`{} {}`, 0), "trailing data", ErrFormat},
		{"offsets past end", rawSafetensors(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, 3),
			`tensor "a": data [0x0, 0x4) outside the data region (0x3 bytes)`, ErrFormat},
		{"end before begin", rawSafetensors(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[2,1]}}`, 3),
			`tensor "a": data [0x2, 0x1)`, ErrFormat},
		{"negative offset", rawSafetensors(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, 3),
			`tensor "a": data [-0x1, 0x0)`, ErrFormat},
		{"overlap", rawSafetensors(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U16","shape":[2],"data_offsets":[2,6]}}`, 6),
			`tensors "a" [0x0, 0x4) and "b" [0x2, 0x6) overlap`, ErrFormat},
		{"contained overlap", rawSafetensors(`{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[1],"data_offsets":[3,4]},"c":{"dtype":"U8","shape":[1],"data_offsets":[5,6]}}`, 8),
			`tensors "a" [0x0, 0x8) and "b" [0x3, 0x4) overlap`, ErrFormat},
		{"size mismatch", rawSafetensors(`{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}`, 12),
			`tensor "a": data is 12 bytes, F32 [2 2] needs 16`, ErrFormat},
		{"unknown dtype", rawSafetensors(`{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}}`, 2),
			`tensor "a": unknown dtype "Q4"`, ErrUnsupported},
		{"duplicate name", rawSafetensors(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2),
			`name "a" appears twice`, ErrFormat},
		{"negative dim", rawSafetensors(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`, 0),
			`tensor "a": bad shape [-1]`, ErrFormat},
		{"shape overflow", rawSafetensors(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, 0),
			`tensor "a": bad shape`, ErrFormat},
		{"too many dims", rawSafetensors(`{"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}`, 1),
			`9 dimensions`, ErrFormat},
		{"missing offsets", rawSafetensors(`{"a":{"dtype":"U8","shape":[1]}}`, 1),
			`tensor "a": dtype, shape and data_offsets are all required`, ErrFormat},
		{"three offsets", rawSafetensors(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, 2),
			`data_offsets has 3 values`, ErrFormat},
		{"fractional dim", rawSafetensors(`{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}`, 2),
			`tensor "a": bad header entry`, ErrFormat},
		{"metadata not strings", rawSafetensors(`{"__metadata__":{"n":3}}`, 0), `__metadata__ is not a map of strings`, ErrFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSafetensors(c.file)
			require.Error(t, err)
			require.ErrorIs(t, err, c.sent)
			require.Contains(t, err.Error(), c.want)
			require.Contains(t, err.Error(), "mlx: safetensors: ")
		})
	}
}

func FuzzSafetensors(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.safetensors")
	if err := WriteSafetensors(path, smallTensors(), map[string]string{"format": "mlx"}); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(rawSafetensors(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U16","shape":[2],"data_offsets":[2,6]}}`, 6))
	f.Add(rawSafetensors(`{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[],"data_offsets":[0,2]}}`, 2))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseSafetensors(data)
		if err != nil {
			return
		}
		require.Len(t, st.Names, len(st.Tensors))
		for _, name := range st.Names {
			tn := st.Tensors[name]
			want, err := tn.wantBytes()
			require.NoError(t, err)
			require.Equal(t, want, int64(len(tn.Data)))
		}
	})
}
