package gguf

import (
	"encoding/binary"
	"math/rand/v2"
)

// sampleKVs has one record of every value type, arrays of every element type, empty and nested arrays.
func sampleKVs() []KV {
	return []KV{
		NewKV("general.architecture", "qwen3"),
		NewKV("t.u8", uint8(200)),
		NewKV("t.i8", int8(-100)),
		NewKV("t.u16", uint16(60000)),
		NewKV("t.i16", int16(-30000)),
		NewKV("t.u32", uint32(4_000_000_000)),
		NewKV("t.i32", int32(-2_000_000_000)),
		NewKV("t.f32", float32(1.5)),
		NewKV("t.bool", true),
		NewKV("t.string", "h\u00e9llo\x00world"),
		NewKV("t.u64", uint64(1<<63+5)),
		NewKV("t.i64", int64(-1<<62)),
		NewKV("t.f64", float64(-2.25)),
		NewKV("a.u8", []uint8{1, 2, 255}),
		NewKV("a.i8", []int8{-128, 0, 127}),
		NewKV("a.u16", []uint16{0, 65535}),
		NewKV("a.i16", []int16{-32768, 32767}),
		NewKV("a.u32", []uint32{7, 4_000_000_000}),
		NewKV("a.i32", []int32{-5, 151669}),
		NewKV("a.f32", []float32{0.5, -1e-6}),
		NewKV("a.bool", []bool{true, false, true}),
		NewKV("a.string", []string{"\u0120t", "", "h e"}),
		NewKV("a.u64", []uint64{1 << 40}),
		NewKV("a.i64", []int64{-1 << 40, 3}),
		NewKV("a.f64", []float64{1e300, -0.0}),
		NewKV("a.empty", []uint32{}),
		NewKV("a.empty_strings", []string{}),
		NewKV("a.nested", []any{[]int32{1, 2}, []string{"x"}, []any{[]uint8{7}, []any{}}}),
	}
}

// sampleTensors has every supported type; sizes 12, 20, 24, 108 and 128 bytes exercise padding
// and the last one fills whole 32- and 64-byte units, so the file ends where its data ends.
func sampleTensors() []WriteTensor {
	rng := rand.New(rand.NewPCG(1, 2))
	mk := func(name string, typ Type, dims ...uint64) WriteTensor {
		data := make([]byte, wantSize(dims, typ)) // (size,)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		return WriteTensor{Name: name, Dims: dims, Type: typ, Data: data}
	}
	return []WriteTensor{
		mk("f32.vec", TypeF32, 3),
		mk("f16.mat", TypeF16, 5, 2),
		mk("bf16.4d", TypeBF16, 2, 1, 3, 2),
		mk("q1.mat", TypeQ1_0, 256, 3),
		mk("f32.last", TypeF32, 8, 4),
	}
}

// wantSize is the byte size from docs/FORMATS.md §2.2: ne[0]/block × block bytes × the other dims.
func wantSize(dims []uint64, typ Type) uint64 {
	n := uint64(1)
	for _, d := range dims {
		n *= d
	}
	switch typ {
	case TypeF32:
		return 4 * n
	case TypeF16, TypeBF16:
		return 2 * n
	case TypeQ1_0:
		return n / 128 * 18
	}
	panic("wantSize: unexpected type")
}

// padTo rounds n up to a multiple of a.
func padTo(n, a uint64) uint64 { return (n + a - 1) / a * a }

// writeTensorsOf turns a parsed file back into writer input (data aliases the file).
func writeTensorsOf(f *File) []WriteTensor {
	out := make([]WriteTensor, len(f.Tensors))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		out[i] = WriteTensor{Name: t.Name, Dims: t.Dims, Type: t.Type, Data: f.Data(t)}
	}
	return out
}

// raw builds GGUF bytes field by field, valid or not.
type raw struct{ b []byte }

// header starts a version-3 file with the given counts.
func header(nTensors, nKV uint64) *raw {
	r := &raw{b: []byte("GGUF")}
	return r.u32(3).u64(nTensors).u64(nKV)
}

func (r *raw) pos() int                      { return len(r.b) }
func (r *raw) u8(v uint8) *raw               { r.b = append(r.b, v); return r }
func (r *raw) u32(v uint32) *raw             { r.b = binary.LittleEndian.AppendUint32(r.b, v); return r }
func (r *raw) u64(v uint64) *raw             { r.b = binary.LittleEndian.AppendUint64(r.b, v); return r }
func (r *raw) str(s string) *raw             { r.u64(uint64(len(s))); r.b = append(r.b, s...); return r }
func (r *raw) zeros(n int) *raw              { r.b = append(r.b, make([]byte, n)...); return r }
func (r *raw) align(a int) *raw              { return r.zeros(int(padTo(uint64(len(r.b)), uint64(a))) - len(r.b)) }
func (r *raw) kvU32(k string, v uint32) *raw { return r.str(k).u32(uint32(ValueUint32)).u32(v) }

// tensor appends a tensor-info record and returns the positions of its type and offset fields.
func (r *raw) tensor(name string, dims []uint64, typ Type, off uint64) (typeAt, offAt int) {
	r.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	typeAt = r.pos()
	r.u32(uint32(typ))
	offAt = r.pos()
	r.u64(off)
	return typeAt, offAt
}
