package gguf

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkRoundTrip compares a parsed file with what was written, including the ggml layout rules.
func checkRoundTrip(t *testing.T, f *File, raw []byte, kvs []KV, tensors []WriteTensor, align uint64) {
	t.Helper()
	require.Equal(t, uint32(3), f.Version)
	require.Equal(t, align, f.Alignment)
	require.Equal(t, kvs, f.KV)
	require.Equal(t, int64(len(raw)), f.Size)
	require.Zero(t, f.DataOffset%align, "data section must start aligned")
	require.Len(t, f.Tensors, len(tensors))
	var off uint64 // each offset is the sum of the padded sizes before it (docs/FORMATS.md §2.2)
	for i, w := range tensors {
		g := &f.Tensors[i]
		require.Equal(t, w.Name, g.Name)
		require.Equal(t, w.Dims, g.Dims)
		require.Equal(t, w.Type, g.Type)
		require.Equal(t, wantSize(w.Dims, w.Type), g.Size)
		require.Equal(t, off, g.Offset, "tensor %s", w.Name)
		require.Equal(t, w.Data, f.Data(g))
		byName, ok := f.Tensor(w.Name)
		require.True(t, ok)
		require.Same(t, g, byName)
		off += padTo(g.Size, align)
	}
	require.Equal(t, f.DataOffset+off, uint64(len(raw)), "file ends after the last padded tensor")
	for _, kv := range kvs {
		got, ok := f.Get(kv.Key)
		require.True(t, ok, kv.Key)
		require.Equal(t, kv, got)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []KV
		align uint64
	}{
		{"default alignment", nil, 32},
		{"alignment 64", []KV{NewKV(AlignmentKey, uint32(64))}, 64},
		{"alignment 1", []KV{NewKV(AlignmentKey, uint32(1))}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kvs := append(sampleKVs(), tc.extra...)
			tensors := sampleTensors()
			var buf bytes.Buffer
			require.NoError(t, Write(&buf, kvs, tensors))

			f, err := Parse(buf.Bytes())
			require.NoError(t, err)
			checkRoundTrip(t, f, buf.Bytes(), kvs, tensors, tc.align)
			require.NoError(t, f.Close())

			path := filepath.Join(t.TempDir(), "m.gguf")
			require.NoError(t, WriteFile(path, kvs, tensors))
			onDisk, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, buf.Bytes(), onDisk, "Write and WriteFile agree")
			g, err := Open(path)
			require.NoError(t, err)
			defer g.Close()
			checkRoundTrip(t, g, onDisk, kvs, tensors, tc.align)
			require.Equal(t, onDisk, g.Bytes())
		})
	}
}

func TestEmptyFile(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, nil, nil))
	f, err := Parse(buf.Bytes())
	require.NoError(t, err)
	require.Empty(t, f.KV)
	require.Empty(t, f.Tensors)
	require.Equal(t, uint64(DefaultAlignment), f.Alignment)
	_, ok := f.Get("general.architecture")
	require.False(t, ok)
	_, ok = f.Tensor("x")
	require.False(t, ok)
}

func TestOpenCopyOnWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	tensors := sampleTensors()
	require.NoError(t, WriteFile(path, sampleKVs(), tensors))
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	f, err := Open(path)
	require.NoError(t, err)
	ti, ok := f.Tensor("q1.mat")
	require.True(t, ok)
	data := f.Data(ti)
	data[2] ^= 0xff // flip the first 8 sign bits of block 0 in memory
	require.Equal(t, tensors[3].Data[2]^0xff, f.Data(ti)[2], "the mapping sees the flip")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, before, after, "the file never changes")

	require.NoError(t, f.Close())
	require.Nil(t, f.Bytes())
	require.Nil(t, f.Data(ti))
	require.NoError(t, f.Close(), "second Close is a no-op")
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.gguf")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	_, err := Open(empty)
	require.ErrorContains(t, err, "empty file")
	require.ErrorIs(t, err, ErrFormat)

	_, err = Open(filepath.Join(dir, "missing.gguf"))
	require.ErrorIs(t, err, os.ErrNotExist)

	bad := filepath.Join(dir, "bad.gguf")
	require.NoError(t, os.WriteFile(bad, []byte("GGML\x03\x00\x00\x00"), 0o644))
	_, err = Open(bad)
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
	require.ErrorContains(t, err, bad+": bad magic")
}

func TestAccessors(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, []KV{
		NewKV("u8", uint8(7)),
		NewKV("i32.neg", int32(-3)),
		NewKV("i64.pos", int64(9)),
		NewKV("u64.big", uint64(math.MaxUint64)),
		NewKV("f32", float32(0.25)),
		NewKV("s", "qwen3"),
		NewKV("b", true),
		NewKV("strs", []string{"a", "b"}),
		NewKV("ids.u8", []uint8{1, 255}),
		NewKV("ids.u32.big", []uint32{1, math.MaxInt32 + 1}),
		NewKV("ids.i64", []int64{-1, math.MaxInt32}),
	}, nil))
	f, err := Parse(buf.Bytes())
	require.NoError(t, err)

	u, ok := f.Uint("u8")
	require.True(t, ok)
	require.Equal(t, uint64(7), u)
	u, ok = f.Uint("i64.pos")
	require.True(t, ok)
	require.Equal(t, uint64(9), u)
	_, ok = f.Uint("i32.neg")
	require.False(t, ok, "negative values are not unsigned")
	_, ok = f.Uint("s")
	require.False(t, ok)

	i, ok := f.Int("i32.neg")
	require.True(t, ok)
	require.Equal(t, int64(-3), i)
	_, ok = f.Int("u64.big")
	require.False(t, ok, "MaxUint64 does not fit in int64")

	x, ok := f.Float("f32")
	require.True(t, ok)
	require.Equal(t, 0.25, x)
	x, ok = f.Float("i32.neg")
	require.True(t, ok)
	require.Equal(t, -3.0, x)
	x, ok = f.Float("u64.big")
	require.True(t, ok)
	require.Equal(t, float64(math.MaxUint64), x)

	s, ok := f.String("s")
	require.True(t, ok)
	require.Equal(t, "qwen3", s)
	_, ok = f.String("u8")
	require.False(t, ok)
	b, ok := f.Bool("b")
	require.True(t, ok)
	require.True(t, b)
	strs, ok := f.Strings("strs")
	require.True(t, ok)
	require.Equal(t, []string{"a", "b"}, strs)
	_, ok = f.Strings("missing")
	require.False(t, ok)

	ids, ok := f.Int32s("ids.u8")
	require.True(t, ok)
	require.Equal(t, []int32{1, 255}, ids)
	ids, ok = f.Int32s("ids.i64")
	require.True(t, ok)
	require.Equal(t, []int32{-1, math.MaxInt32}, ids)
	_, ok = f.Int32s("ids.u32.big")
	require.False(t, ok, "2^31 does not fit in int32")
	_, ok = f.Int32s("strs")
	require.False(t, ok)

	require.Nil(t, f.Data(nil))
	require.Nil(t, f.Data(&TensorInfo{Offset: 1 << 40, Size: 4}), "a foreign TensorInfo outside the file")
}

func TestTypeNames(t *testing.T) {
	for _, tc := range []struct {
		typ          Type
		name         string
		elems, bytes int
	}{
		{TypeF32, "F32", 1, 4}, {TypeF16, "F16", 1, 2}, {TypeBF16, "BF16", 1, 2}, {TypeQ1_0, "Q1_0", 128, 18},
	} {
		require.Equal(t, tc.name, tc.typ.String())
		e, b, ok := tc.typ.BlockSize()
		require.True(t, ok)
		require.Equal(t, [2]int{tc.elems, tc.bytes}, [2]int{e, b})
	}
	require.Equal(t, "type(17)", Type(17).String())
	_, _, ok := Type(17).BlockSize()
	require.False(t, ok)
	require.Equal(t, "uint32", ValueUint32.String())
	require.Equal(t, "valuetype(13)", ValueType(13).String())
}

func TestWriteValidation(t *testing.T) {
	good := sampleTensors()
	for _, tc := range []struct {
		name    string
		kvs     []KV
		tensors []WriteTensor
		want    string
	}{
		{"type mismatch", []KV{{Key: "k", Type: ValueUint32, Value: int32(1)}}, nil, `key "k": value of Go type int32 does not match declared type uint32`},
		{"no gguf type", []KV{NewKV("k", 3)}, nil, "Go type int has no GGUF value type"},
		{"nested non-array", []KV{NewKV("k", []any{"x"})}, nil, "nested array element of Go type string"},
		{"too deep", []KV{NewKV("k", []any{[]any{[]any{[]any{[]any{[]any{[]any{[]any{[]uint8{}}}}}}}}})}, nil, "nested deeper than 8"},
		{"duplicate key", []KV{NewKV("k", true), NewKV("k", false)}, nil, `key "k": duplicate key`},
		{"alignment type", []KV{NewKV(AlignmentKey, uint64(32))}, nil, "type uint64, want uint32"},
		{"alignment value", []KV{NewKV(AlignmentKey, uint32(48))}, nil, "alignment 48 is not a power of two"},
		{"data length", nil, []WriteTensor{{Name: "x", Dims: []uint64{4}, Type: TypeF32, Data: make([]byte, 15)}}, `tensor "x": data has 15 bytes, want 16 for F32 [4]`},
		{"unsupported type", nil, []WriteTensor{{Name: "x", Dims: []uint64{4}, Type: 17, Data: nil}}, `tensor "x": unsupported type 17`},
		{"q1 block", nil, []WriteTensor{{Name: "x", Dims: []uint64{64}, Type: TypeQ1_0}}, "ne[0] = 64 is not a multiple of the Q1_0 block size 128"},
		{"no dims", nil, []WriteTensor{{Name: "x", Type: TypeF32}}, "n_dims 0 out of range 1..4"},
		{"zero dim", nil, []WriteTensor{{Name: "x", Dims: []uint64{4, 0}, Type: TypeF32}}, "ne[1] is zero"},
		{"overflow", nil, []WriteTensor{{Name: "x", Dims: []uint64{1 << 32, 1 << 32}, Type: TypeF32}}, "dims product overflows"},
		{"long name", nil, []WriteTensor{{Name: string(make([]byte, 64)), Dims: []uint64{1}, Type: TypeF32, Data: make([]byte, 4)}}, "name of 64 bytes exceeds 63"},
		{"duplicate tensor", nil, []WriteTensor{good[0], good[0]}, `tensor "f32.vec": duplicate tensor name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tc.kvs, tc.tensors)
			require.ErrorContains(t, err, tc.want)
			require.Zero(t, buf.Len(), "nothing is written before validation passes")
		})
	}
	err := Write(&bytes.Buffer{}, nil, []WriteTensor{{Name: "x", Dims: []uint64{4}, Type: 17}})
	require.ErrorIs(t, err, ErrUnsupported)
}

// failWriter fails once more than n bytes have been written.
type failWriter struct {
	n   int
	err error
}

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, w.err
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteIOError(t *testing.T) {
	boom := errors.New("disk full")
	var full bytes.Buffer
	require.NoError(t, Write(&full, sampleKVs(), sampleTensors()))
	for _, n := range []int{0, 100, full.Len() - 1} {
		err := Write(&failWriter{n: n, err: boom}, sampleKVs(), sampleTensors())
		require.ErrorIs(t, err, boom, "failing after %d bytes", n)
	}
}
