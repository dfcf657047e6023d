// Package gguf reads and writes GGUF v2/v3 model files with bounded, offset-reporting errors.
//
// The container (docs/FORMATS.md §2), all integers little-endian:
//
//  1. magic "GGUF", version u32 (2 or 3), n_tensors u64, n_kv u64;
//  2. n_kv records: key (string), value type u32, value;
//  3. n_tensors records: name (string), n_dims u32, n_dims × u64 dims (ne[0] first),
//     ggml type u32, offset u64 relative to the data section;
//  4. zero padding to the alignment ("general.alignment", u32, default 32), then the data section.
//
// A string is a u64 byte count and the bytes. An array is an element type u32, a count u64 and
// the elements (strings and nested arrays allowed).
//
// Every parse error is a *FormatError wrapping ErrFormat or ErrUnsupported and naming the byte
// offset it refers to. Counts read from the file are checked against named limits and against
// the bytes that remain before anything is allocated, so hostile input cannot force large
// allocations.
package gguf

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Type is a ggml tensor type id.
type Type uint32

// The tensor types this package accepts. Bonsai files use only Q1_0 and F32.
const (
	TypeF32  Type = 0
	TypeF16  Type = 1
	TypeBF16 Type = 30
	TypeQ1_0 Type = 41 // 128 sign bits and an fp16 scale in 18 bytes (docs/FORMATS.md §3)
)

// String returns the ggml name of t ("F32", "F16", "BF16", "Q1_0"), or "type(N)" for other ids.
func (t Type) String() string {
	switch t {
	case TypeF32:
		return "F32"
	case TypeF16:
		return "F16"
	case TypeBF16:
		return "BF16"
	case TypeQ1_0:
		return "Q1_0"
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize returns how many elements one block of t holds and how many bytes it takes.
// ok is false for types this package does not support.
func (t Type) BlockSize() (elems, bytes int, ok bool) {
	switch t {
	case TypeF32:
		return 1, 4, true
	case TypeF16, TypeBF16:
		return 1, 2, true
	case TypeQ1_0:
		return 128, 18, true
	}
	return 0, 0, false
}

// ValueType is the type id of a metadata value.
type ValueType uint32

// Metadata value types (docs/FORMATS.md §2.1).
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
)

// valueTypeInvalid marks a KV whose Go value has no GGUF type (see NewKV).
const valueTypeInvalid ValueType = math.MaxUint32

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32",
	"float32", "bool", "string", "array", "uint64", "int64", "float64"}

// String returns the lowercase name of v ("uint32", "array", ...), or "valuetype(N)".
func (v ValueType) String() string {
	if int(v) < len(valueTypeNames) {
		return valueTypeNames[v]
	}
	return fmt.Sprintf("valuetype(%d)", uint32(v))
}

// fixedSize returns the encoded size of a scalar of type v, or 0 for strings, arrays and unknown ids.
func (v ValueType) fixedSize() uint64 {
	switch v {
	case ValueUint8, ValueInt8, ValueBool:
		return 1
	case ValueUint16, ValueInt16:
		return 2
	case ValueUint32, ValueInt32, ValueFloat32:
		return 4
	case ValueUint64, ValueInt64, ValueFloat64:
		return 8
	}
	return 0
}

// minSize is the smallest number of bytes one value of type v can occupy.
func (v ValueType) minSize() uint64 {
	switch v {
	case ValueString:
		return 8 // length only
	case ValueArray:
		return 12 // element type and count
	}
	return v.fixedSize()
}

// KV is one metadata record. Value holds a Go value matching Type: uint8, int8, uint16, int16,
// uint32, int32, float32, bool, string, uint64, int64 or float64; arrays (Type ValueArray) are
// typed slices ([]uint8 ... []float64, []bool, []string), and arrays of arrays are []any whose
// elements are again typed slices or []any.
type KV struct {
	Key   string
	Type  ValueType
	Value any
}

// NewKV returns a KV whose Type is derived from the Go type of value. A value with no GGUF
// equivalent gets an invalid type that Write rejects.
func NewKV(key string, value any) KV {
	return KV{Key: key, Type: valueTypeOf(value), Value: value}
}

// valueTypeOf maps a Go value to its GGUF value type.
func valueTypeOf(v any) ValueType {
	switch v.(type) {
	case uint8:
		return ValueUint8
	case int8:
		return ValueInt8
	case uint16:
		return ValueUint16
	case int16:
		return ValueInt16
	case uint32:
		return ValueUint32
	case int32:
		return ValueInt32
	case float32:
		return ValueFloat32
	case bool:
		return ValueBool
	case string:
		return ValueString
	case uint64:
		return ValueUint64
	case int64:
		return ValueInt64
	case float64:
		return ValueFloat64
	case []uint8, []int8, []uint16, []int16, []uint32, []int32, []float32, []bool, []string,
		[]uint64, []int64, []float64, []any:
		return ValueArray
	}
	return valueTypeInvalid
}

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name   string
	Dims   []uint64 // ne order, ne[0] fastest
	Type   Type
	Offset uint64 // relative to the data section
	Size   uint64 // bytes, computed from Dims and Type
}

// File is a parsed GGUF file. Bytes and Data alias the underlying bytes (a copy-on-write
// mapping when the file came from Open); KV values and tensor infos are copies that stay valid
// after Close.
type File struct {
	Version    uint32
	Alignment  uint64
	KV         []KV         // in file order
	Tensors    []TensorInfo // in file order
	DataOffset uint64       // absolute start of the data section (past EOF if there are no tensors)
	Size       int64        // file size

	data     []byte // the whole file
	unmap    func([]byte) error
	keyIdx   []int32 // indices into KV, sorted by key
	tensorIx []int32 // indices into Tensors, sorted by name
}

// Sentinel errors; every parse error wraps one of them.
var (
	// ErrFormat marks malformed or truncated input.
	ErrFormat = errors.New("gguf: malformed file")
	// ErrUnsupported marks well-formed input outside what this package handles (a version,
	// a tensor type, a limit).
	ErrUnsupported = errors.New("gguf: unsupported file")
)

// FormatError is a parse error that points into the file.
type FormatError struct {
	Offset int64  // byte offset the problem refers to, or -1
	Msg    string // what is wrong, with context such as `tensor "x": `
	Err    error  // ErrFormat or ErrUnsupported
}

// Error returns "gguf: <msg> at byte 0x<offset>".
func (e *FormatError) Error() string {
	if e.Offset < 0 {
		return "gguf: " + e.Msg
	}
	return fmt.Sprintf("gguf: %s at byte %#x", e.Msg, e.Offset)
}

// Unwrap returns the sentinel (ErrFormat or ErrUnsupported).
func (e *FormatError) Unwrap() error { return e.Err }

// Bytes returns the whole file (the mapping when opened with Open). It is nil after Close.
func (f *File) Bytes() []byte { return f.data }

// Get returns the record with the given key.
func (f *File) Get(key string) (KV, bool) {
	i, ok := slices.BinarySearchFunc(f.keyIdx, key, func(i int32, k string) int {
		return strings.Compare(f.KV[i].Key, k)
	})
	if !ok {
		return KV{}, false
	}
	return f.KV[f.keyIdx[i]], true
}

// Tensor returns the tensor with the given name.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := slices.BinarySearchFunc(f.tensorIx, name, func(i int32, n string) int {
		return strings.Compare(f.Tensors[i].Name, n)
	})
	if !ok {
		return nil, false
	}
	return &f.Tensors[f.tensorIx[i]], true
}

// Data returns the bytes of t inside the file, aliasing them (writes go to the private
// mapping, never to the file). It returns nil if t does not lie inside the file or after Close.
func (f *File) Data(t *TensorInfo) []byte {
	if t == nil {
		return nil
	}
	start := f.DataOffset + t.Offset
	end := start + t.Size
	if start < f.DataOffset || end < start || end > uint64(len(f.data)) {
		return nil
	}
	return f.data[start:end:end]
}

// Uint returns an integer value (any integer type, signed ones only when non-negative).
func (f *File) Uint(key string) (uint64, bool) {
	kv, ok := f.Get(key)
	if !ok {
		return 0, false
	}
	switch v := kv.Value.(type) {
	case uint8:
		return uint64(v), true
	case uint16:
		return uint64(v), true
	case uint32:
		return uint64(v), true
	case uint64:
		return v, true
	}
	if i, ok := asInt(kv.Value); ok && i >= 0 {
		return uint64(i), true
	}
	return 0, false
}

// Int returns an integer value (any integer type, unsigned ones only when they fit in int64).
func (f *File) Int(key string) (int64, bool) {
	kv, ok := f.Get(key)
	if !ok {
		return 0, false
	}
	if i, ok := asInt(kv.Value); ok {
		return i, true
	}
	switch v := kv.Value.(type) {
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), true
		}
	}
	return 0, false
}

// asInt converts the signed integer types.
func asInt(v any) (int64, bool) {
	switch v := v.(type) {
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	}
	return 0, false
}

// Float returns a float32 or float64 value, or an integer value converted to float64.
func (f *File) Float(key string) (float64, bool) {
	kv, ok := f.Get(key)
	if !ok {
		return 0, false
	}
	switch v := kv.Value.(type) {
	case float32:
		return float64(v), true
	case float64:
		return v, true
	}
	if i, ok := f.Int(key); ok {
		return float64(i), true
	}
	if u, ok := f.Uint(key); ok {
		return float64(u), true
	}
	return 0, false
}

// Bool returns a bool value.
func (f *File) Bool(key string) (bool, bool) {
	kv, ok := f.Get(key)
	if !ok {
		return false, false
	}
	b, ok := kv.Value.(bool)
	return b, ok
}

// String returns a string value.
func (f *File) String(key string) (string, bool) {
	kv, ok := f.Get(key)
	if !ok {
		return "", false
	}
	s, ok := kv.Value.(string)
	return s, ok
}

// Strings returns an array of strings (the slice is shared with the File).
func (f *File) Strings(key string) ([]string, bool) {
	kv, ok := f.Get(key)
	if !ok {
		return nil, false
	}
	s, ok := kv.Value.([]string)
	return s, ok
}

// Int32s returns an integer array of any element type as a new []int32; ok is false if the
// value is not an integer array or an element does not fit in int32.
func (f *File) Int32s(key string) ([]int32, bool) {
	kv, ok := f.Get(key)
	if !ok {
		return nil, false
	}
	switch v := kv.Value.(type) {
	case []int32:
		return slices.Clone(v), true
	case []uint8:
		return convertInts(v)
	case []int8:
		return convertInts(v)
	case []uint16:
		return convertInts(v)
	case []int16:
		return convertInts(v)
	case []uint32:
		return convertInts(v)
	case []uint64:
		return convertInts(v)
	case []int64:
		return convertInts(v)
	}
	return nil, false
}

// convertInts converts integers to int32, failing on the first that does not fit.
func convertInts[T uint8 | int8 | uint16 | int16 | uint32 | uint64 | int64](s []T) ([]int32, bool) {
	out := make([]int32, len(s)) // (len(s),)
	for i, x := range s {
		if T(int32(x)) != x || (x < 0) != (int32(x) < 0) {
			return nil, false
		}
		out[i] = int32(x)
	}
	return out, true
}
