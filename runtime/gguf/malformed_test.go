package gguf

import (
	"bytes"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// malformedCase builds a broken file and returns it with the byte offset the error must name.
type malformedCase struct {
	name     string
	build    func() ([]byte, int)
	want     string // substring of the error message
	sentinel error
	hostile  bool // an absurd count or length: parsing must not allocate in proportion to it
}

// oneTensor is a header with no KVs and one tensor info; the returned offset is the field named by at.
func oneTensor(name string, dims []uint64, typ Type, off uint64, dataBytes int, at string) ([]byte, int) {
	r := header(1, 0)
	nDimsAt := r.pos() + 8 + len(name)
	typeAt, offAt := r.tensor(name, dims, typ, off)
	r.align(DefaultAlignment).zeros(dataBytes)
	pos := map[string]int{"n_dims": nDimsAt, "type": typeAt, "offset": offAt}[at]
	if strings.HasPrefix(at, "dim") {
		j, _ := strconv.Atoi(at[3:])
		pos = nDimsAt + 4 + 8*j
	}
	return r.b, pos
}

// oneKV is a header with one KV record whose value bytes come from value; at is relative to the
// start of the value (after the key and the type), or -1 for the start of the record.
func oneKV(key string, typ ValueType, value func(r *raw), at int) ([]byte, int) {
	r := header(0, 1)
	start := r.pos()
	r.str(key).u32(uint32(typ))
	valueAt := r.pos()
	value(r)
	if at < 0 {
		return r.b, start
	}
	return r.b, valueAt + at
}

var malformedCases = []malformedCase{
	{name: "empty input", want: "truncated magic", sentinel: ErrFormat,
		build: func() ([]byte, int) { return nil, 0 }},
	{name: "bad magic", want: `bad magic "GGML"`, sentinel: ErrFormat,
		build: func() ([]byte, int) { return append([]byte("GGML"), header(0, 0).b[4:]...), 0 }},
	{name: "version 1", want: "unsupported version 1 (want 2 or 3)", sentinel: ErrUnsupported,
		build: func() ([]byte, int) { r := &raw{b: []byte("GGUF")}; return r.u32(1).u64(0).u64(0).b, 4 }},
	{name: "big-endian version", want: "big-endian", sentinel: ErrUnsupported,
		build: func() ([]byte, int) { r := &raw{b: []byte("GGUF")}; return r.u32(3 << 24).u64(0).u64(0).b, 4 }},
	{name: "absurd n_kv", want: "n_kv 1099511627776 exceeds limit", sentinel: ErrUnsupported, hostile: true,
		build: func() ([]byte, int) { return header(0, 1<<40).zeros(64).b, 16 }},
	{name: "absurd n_tensors", want: "n_tensors 18446744073709551615 exceeds limit", sentinel: ErrUnsupported, hostile: true,
		build: func() ([]byte, int) { return header(1<<64-1, 0).zeros(64).b, 8 }},
	{name: "n_kv beyond remaining bytes", want: "n_kv 100000 cannot fit in the 64 bytes left", sentinel: ErrFormat, hostile: true,
		build: func() ([]byte, int) { return header(0, 100000).zeros(64).b, 16 }},
	{name: "n_tensors beyond remaining bytes", want: "n_tensors 1048576 cannot fit", sentinel: ErrFormat, hostile: true,
		build: func() ([]byte, int) { return header(MaxTensors, 0).zeros(4096).b, 8 }},
	{name: "absurd string length", want: "key length 4611686018427387904 exceeds limit", sentinel: ErrUnsupported, hostile: true,
		build: func() ([]byte, int) { return header(0, 1).u64(1 << 62).zeros(16).b, 24 }},
	{name: "string length beyond remaining bytes", want: "string value length 1048576 exceeds the 8 bytes left", sentinel: ErrFormat, hostile: true,
		build: func() ([]byte, int) {
			return oneKV("k", ValueString, func(r *raw) { r.u64(1 << 20).zeros(8) }, 0)
		}},
	{name: "absurd array length", want: "array length 1152921504606846976 exceeds limit", sentinel: ErrUnsupported, hostile: true,
		build: func() ([]byte, int) {
			return oneKV("k", ValueArray, func(r *raw) { r.u32(uint32(ValueUint32)).u64(1 << 60).zeros(16) }, 4)
		}},
	{name: "array length beyond remaining bytes", want: "array length 1048576 of string needs at least 8388608 bytes", sentinel: ErrFormat, hostile: true,
		build: func() ([]byte, int) {
			return oneKV("k", ValueArray, func(r *raw) { r.u32(uint32(ValueString)).u64(1 << 20).zeros(100) }, 4)
		}},
	{name: "unknown value type", want: `key "k": unknown value type 13`, sentinel: ErrFormat,
		build: func() ([]byte, int) {
			b, at := oneKV("k", 13, func(r *raw) { r.zeros(8) }, 0)
			return b, at - 4
		}},
	{name: "unknown array element type", want: "unknown array element type 99", sentinel: ErrFormat,
		build: func() ([]byte, int) {
			return oneKV("k", ValueArray, func(r *raw) { r.u32(99).u64(1).zeros(8) }, 0)
		}},
	{name: "arrays nested too deep", want: "arrays nested deeper than 8", sentinel: ErrUnsupported,
		build: func() ([]byte, int) {
			return oneKV("k", ValueArray, func(r *raw) {
				for range MaxDepth {
					r.u32(uint32(ValueArray)).u64(1)
				}
				r.u32(uint32(ValueUint8)).u64(0)
			}, 12*MaxDepth)
		}},
	{name: "bool not 0 or 1", want: "bool value 2 is neither 0 nor 1", sentinel: ErrFormat,
		build: func() ([]byte, int) { return oneKV("k", ValueBool, func(r *raw) { r.u8(2) }, 0) }},
	{name: "duplicate key", want: `key "a": duplicate key (first at byte 0x18)`, sentinel: ErrFormat,
		build: func() ([]byte, int) {
			r := header(0, 2).kvU32("a", 1)
			at := r.pos()
			return r.kvU32("a", 2).b, at
		}},
	{name: "alignment not a power of two", want: `key "general.alignment": alignment 3 is not a power of two`, sentinel: ErrFormat,
		build: func() ([]byte, int) { return header(0, 1).kvU32(AlignmentKey, 3).b, 24 }},
	{name: "alignment zero", want: "alignment 0 is not a power of two", sentinel: ErrFormat,
		build: func() ([]byte, int) { return header(0, 1).kvU32(AlignmentKey, 0).b, 24 }},
	{name: "alignment not uint32", want: "type uint64, want uint32", sentinel: ErrFormat,
		build: func() ([]byte, int) {
			return header(0, 1).str(AlignmentKey).u32(uint32(ValueUint64)).u64(32).b, 24
		}},
	{name: "n_dims 0", want: `tensor "x": n_dims 0 out of range 1..4`, sentinel: ErrFormat,
		build: func() ([]byte, int) { return oneTensor("x", nil, TypeF32, 0, 64, "n_dims") }},
	{name: "n_dims 5", want: "n_dims 5 out of range 1..4", sentinel: ErrFormat,
		build: func() ([]byte, int) { return oneTensor("x", []uint64{1, 1, 1, 1, 1}, TypeF32, 0, 64, "n_dims") }},
	{name: "zero dim", want: "ne[1] is zero", sentinel: ErrFormat,
		build: func() ([]byte, int) { return oneTensor("x", []uint64{4, 0}, TypeF32, 0, 64, "dim1") }},
	{name: "dims product overflow", want: "dims product overflows int64 at ne[1]", sentinel: ErrFormat,
		build: func() ([]byte, int) { return oneTensor("x", []uint64{1 << 32, 1 << 32}, TypeF32, 0, 64, "dim1") }},
	{name: "byte size overflow", want: "byte size of F32 [2147483648 2147483648] overflows", sentinel: ErrFormat,
		build: func() ([]byte, int) { return oneTensor("x", []uint64{1 << 31, 1 << 31}, TypeF32, 0, 64, "type") }},
	{name: "unknown tensor type", want: `gguf: tensor "x": unsupported type 17`, sentinel: ErrUnsupported,
		build: func() ([]byte, int) { return oneTensor("x", []uint64{32}, 17, 0, 64, "type") }},
	{name: "Q1_0 ne[0] not a multiple of 128", want: "ne[0] = 100 is not a multiple of the Q1_0 block size 128", sentinel: ErrFormat,
		build: func() ([]byte, int) { return oneTensor("x", []uint64{100, 2}, TypeQ1_0, 0, 64, "type") }},
	{name: "misaligned offset", want: "offset 0x10 is not a multiple of the alignment 32", sentinel: ErrFormat,
		build: func() ([]byte, int) { return oneTensor("x", []uint64{4}, TypeF32, 16, 64, "offset") }},
	{name: "tensor data past end of file", want: `tensor "x": data [0x40, 0x80) past end of file (0x60)`, sentinel: ErrFormat,
		// 24 header bytes and a 33-byte tensor info end at 0x39, so the data section starts at 0x40
		build: func() ([]byte, int) { return oneTensor("x", []uint64{16}, TypeF32, 0, 32, "offset") }},
	{name: "long tensor name", want: "name of 64 bytes exceeds 63", sentinel: ErrUnsupported,
		build: func() ([]byte, int) {
			b, _ := oneTensor(strings.Repeat("n", 64), []uint64{4}, TypeF32, 0, 64, "type")
			return b, 24
		}},
	{name: "overlapping tensors", want: `tensor "b": data [0x80, 0xc0) overlaps tensor "a" [0x60, 0xa0)`, sentinel: ErrFormat,
		build: func() ([]byte, int) {
			r := header(2, 0)
			r.tensor("a", []uint64{16}, TypeF32, 0)
			_, offAt := r.tensor("b", []uint64{16}, TypeF32, 32)
			return r.align(32).zeros(128).b, offAt
		}},
	{name: "duplicate tensor name", want: `tensor "a": duplicate tensor name`, sentinel: ErrFormat,
		build: func() ([]byte, int) {
			r := header(2, 0)
			r.tensor("a", []uint64{16}, TypeF32, 0)
			_, offAt := r.tensor("a", []uint64{16}, TypeF32, 64)
			return r.align(32).zeros(128).b, offAt
		}},
}

func TestMalformed(t *testing.T) {
	for _, tc := range malformedCases {
		t.Run(tc.name, func(t *testing.T) {
			data, at := tc.build()
			_, err := Parse(data)
			require.ErrorContains(t, err, tc.want)
			require.ErrorIs(t, err, tc.sentinel)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, int64(at), fe.Offset, "offset named by %q", err)
			require.True(t, strings.HasPrefix(err.Error(), "gguf: "), err.Error())
			require.Contains(t, err.Error(), " at byte 0x"+strconv.FormatInt(int64(at), 16))
		})
	}
}

// TestMalformedAllocation: absurd counts and lengths are rejected before anything proportional
// to them is allocated.
func TestMalformedAllocation(t *testing.T) {
	for _, tc := range malformedCases {
		if !tc.hostile {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			data, _ := tc.build()
			alloc := allocated(func() { _, _ = Parse(data) })
			require.Less(t, alloc, uint64(64<<10+4*len(data)))
			t.Logf("%d bytes allocated for %d bytes of input", alloc, len(data))
		})
	}
}

// TestDenseRecordsAllocation: a file packed with the smallest possible records parses (it is
// valid), and the memory it costs stays a small multiple of its size.
func TestDenseRecordsAllocation(t *testing.T) {
	const n = 20000
	r := header(0, n)
	for i := range n {
		r.str(strconv.Itoa(i)).u32(uint32(ValueUint8)).u8(1)
	}
	f, err := Parse(r.b)
	require.NoError(t, err)
	require.Len(t, f.KV, n)
	alloc := allocated(func() { _, _ = Parse(r.b) })
	// Per 14-byte record: a 40-byte KV, the key copy, a sort index and a record offset.
	require.Less(t, alloc, uint64(64<<10+8*len(r.b)))
	t.Logf("%d bytes allocated for %d bytes of input", alloc, len(r.b))
}

// allocated returns the bytes allocated while fn runs.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestTruncated cuts a valid file at every length before its last data byte: each prefix must
// fail with a format error (and never panic); the full file and prefixes that only drop
// trailing padding must parse.
func TestTruncated(t *testing.T) {
	var buf bytes.Buffer
	tensors := sampleTensors()[:4] // the last of these is not a multiple of 32 bytes
	require.NoError(t, Write(&buf, sampleKVs(), tensors))
	full := buf.Bytes()
	f, err := Parse(full)
	require.NoError(t, err)
	last := f.Tensors[len(f.Tensors)-1]
	end := int(f.DataOffset + last.Offset + last.Size)
	require.Less(t, end, len(full), "the file must end in padding for this test")
	for n := range len(full) + 1 {
		_, err := Parse(full[:n])
		if n < end {
			require.Error(t, err, "prefix of %d bytes", n)
			require.True(t, errors.Is(err, ErrFormat), "prefix of %d bytes: %v", n, err)
		} else {
			require.NoError(t, err, "prefix of %d bytes", n)
		}
	}
}
