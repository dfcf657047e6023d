package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/bankai-metal/bankai-metal/internal/atomicfile"
)

// WriteTensor is a tensor to write: its shape (ne order), type and raw bytes.
type WriteTensor struct {
	Name string
	Dims []uint64 // ne order, ne[0] fastest
	Type Type
	Data []byte // exactly the size implied by Dims and Type
}

// layout is a validated file ready to be encoded.
type layout struct {
	kvs       []KV
	tensors   []WriteTensor
	alignment uint64
	offsets   []uint64 // (n_tensors,) relative to the data section
}

// Write writes a version-3 GGUF file. The alignment is the "general.alignment" KV (uint32, a
// power of two) if present, else 32. Tensor data is contiguous in the given order and every
// tensor is padded to the alignment, so each offset is the sum of the padded sizes before it
// (what ggml requires); without tensors the header is not padded. Everything is validated,
// with the same limits as Parse, before the first byte is written.
func Write(w io.Writer, kvs []KV, tensors []WriteTensor) error {
	l, err := plan(kvs, tensors)
	if err != nil {
		return err
	}
	return l.write(w)
}

// WriteFile writes a GGUF file atomically: into a temporary file in the same directory, then
// fsync, rename over path and fsync the directory (best effort). On any error the temporary
// file is removed and path is left as it was.
func WriteFile(path string, kvs []KV, tensors []WriteTensor) error {
	return writeFile(path, kvs, tensors, nil)
}

// writeFile is WriteFile with an optional wrapper around the file writer (tests inject failures).
func writeFile(path string, kvs []KV, tensors []WriteTensor, wrap func(io.Writer) io.Writer) error {
	l, err := plan(kvs, tensors)
	if err != nil {
		return err
	}
	err = atomicfile.Write(path, func(w io.Writer) error {
		if wrap != nil {
			w = wrap(w)
		}
		return l.write(w)
	})
	if err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	return nil
}

// plan validates kvs and tensors and computes the alignment and offsets.
func plan(kvs []KV, tensors []WriteTensor) (*layout, error) {
	if len(kvs) > MaxKVs {
		return nil, fmt.Errorf("gguf: %d kvs exceed limit %d (MaxKVs)", len(kvs), MaxKVs)
	}
	if len(tensors) > MaxTensors {
		return nil, fmt.Errorf("gguf: %d tensors exceed limit %d (MaxTensors)", len(tensors), MaxTensors)
	}
	l := &layout{kvs: kvs, tensors: tensors, alignment: DefaultAlignment}
	seen := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		if len(kv.Key) > MaxStringLen {
			return nil, fmt.Errorf("gguf: key of %d bytes exceeds %d (MaxStringLen)", len(kv.Key), MaxStringLen)
		}
		if seen[kv.Key] {
			return nil, fmt.Errorf("gguf: key %s: duplicate key", quote(kv.Key))
		}
		seen[kv.Key] = true
		if err := checkValue(kv.Type, kv.Value, 0); err != nil {
			return nil, fmt.Errorf("gguf: key %s: %w", quote(kv.Key), err)
		}
		if kv.Key == AlignmentKey {
			a, ok := kv.Value.(uint32)
			if !ok {
				return nil, fmt.Errorf("gguf: key %s: type %s, want uint32", AlignmentKey, kv.Type)
			}
			if a == 0 || a&(a-1) != 0 {
				return nil, fmt.Errorf("gguf: key %s: alignment %d is not a power of two", AlignmentKey, a)
			}
			l.alignment = uint64(a)
		}
	}
	names := make(map[string]bool, len(tensors))
	l.offsets = make([]uint64, len(tensors))
	var off uint64
	for i, t := range tensors {
		if err := checkTensor(&t); err != nil {
			return nil, fmt.Errorf("gguf: tensor %s: %w", quote(t.Name), err)
		}
		if names[t.Name] {
			return nil, fmt.Errorf("gguf: tensor %s: duplicate tensor name", quote(t.Name))
		}
		names[t.Name] = true
		l.offsets[i] = off
		next, carry := bits.Add64(off, alignUp(uint64(len(t.Data)), l.alignment), 0)
		if carry != 0 || next > math.MaxInt64 {
			return nil, fmt.Errorf("gguf: tensor %s: data section exceeds int64", quote(t.Name))
		}
		off = next
	}
	return l, nil
}

// checkTensor validates a tensor's name, shape, type and data length.
func checkTensor(t *WriteTensor) error {
	if len(t.Name) > MaxTensorNameLen {
		return fmt.Errorf("name of %d bytes exceeds %d (MaxTensorNameLen)", len(t.Name), MaxTensorNameLen)
	}
	if _, err := checkDims(t.Dims); err != nil {
		return err
	}
	size, err := tensorSize(t.Dims, t.Type)
	if err != nil {
		return err
	}
	if uint64(len(t.Data)) != size {
		return fmt.Errorf("data has %d bytes, want %d for %s %v", len(t.Data), size, t.Type, t.Dims)
	}
	return nil
}

// checkValue checks that v is the Go representation of type t and within the limits;
// depth counts the arrays enclosing v.
func checkValue(t ValueType, v any, depth int) error {
	got := valueTypeOf(v)
	if got == valueTypeInvalid {
		return fmt.Errorf("Go type %T has no GGUF value type", v)
	}
	if got != t {
		return fmt.Errorf("value of Go type %T does not match declared type %s", v, t)
	}
	switch v := v.(type) {
	case string:
		return checkString(v)
	case []string:
		for _, s := range v {
			if err := checkString(s); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if valueTypeOf(e) != ValueArray {
				return fmt.Errorf("nested array element of Go type %T is not an array", e)
			}
			if err := checkValue(ValueArray, e, depth+1); err != nil {
				return err
			}
		}
	}
	if t == ValueArray {
		if depth+1 > MaxDepth {
			return fmt.Errorf("arrays nested deeper than %d (MaxDepth)", MaxDepth)
		}
		if n := arrayLen(v); n > MaxArrayLen {
			return fmt.Errorf("array length %d exceeds limit %d (MaxArrayLen)", n, MaxArrayLen)
		}
	}
	return nil
}

func checkString(s string) error {
	if len(s) > MaxStringLen {
		return fmt.Errorf("string of %d bytes exceeds %d (MaxStringLen)", len(s), MaxStringLen)
	}
	return nil
}

// encoder writes little-endian values and counts bytes; bufio keeps the first error.
type encoder struct {
	w   *bufio.Writer
	n   uint64
	buf [8]byte
}

func (e *encoder) bytes(b []byte) { n, _ := e.w.Write(b); e.n += uint64(n) }
func (e *encoder) str(s string)   { e.u64(uint64(len(s))); n, _ := e.w.WriteString(s); e.n += uint64(n) }
func (e *encoder) u8(v uint8)     { e.buf[0] = v; e.bytes(e.buf[:1]) }
func (e *encoder) u16(v uint16)   { e.bytes(binary.LittleEndian.AppendUint16(e.buf[:0], v)) }
func (e *encoder) u32(v uint32)   { e.bytes(binary.LittleEndian.AppendUint32(e.buf[:0], v)) }
func (e *encoder) u64(v uint64)   { e.bytes(binary.LittleEndian.AppendUint64(e.buf[:0], v)) }

// pad writes zeros up to the next multiple of a.
func (e *encoder) pad(a uint64) {
	var zeros [64]byte
	for k := alignUp(e.n, a) - e.n; k > 0; {
		c := min(k, uint64(len(zeros)))
		e.bytes(zeros[:c])
		k -= c
	}
}

// write encodes a planned file.
func (l *layout) write(w io.Writer) error {
	e := &encoder{w: bufio.NewWriterSize(w, 1<<16)}
	e.bytes([]byte("GGUF"))
	e.u32(3)
	e.u64(uint64(len(l.tensors)))
	e.u64(uint64(len(l.kvs)))
	for _, kv := range l.kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Type))
		e.value(kv.Value)
	}
	for i, t := range l.tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(l.offsets[i])
	}
	if len(l.tensors) > 0 {
		// Without tensors there is no data section to align (ggml seeks past EOF happily),
		// and padding would let a 2 GiB alignment inflate an empty file.
		e.pad(l.alignment)
	}
	for _, t := range l.tensors {
		e.bytes(t.Data)
		e.pad(l.alignment)
	}
	return e.w.Flush()
}

// value encodes a value already checked by checkValue.
func (e *encoder) value(v any) {
	switch v := v.(type) {
	case uint8:
		e.u8(v)
	case int8:
		e.u8(uint8(v))
	case uint16:
		e.u16(v)
	case int16:
		e.u16(uint16(v))
	case uint32:
		e.u32(v)
	case int32:
		e.u32(uint32(v))
	case float32:
		e.u32(math.Float32bits(v))
	case bool:
		e.u8(boolByte(v))
	case string:
		e.str(v)
	case uint64:
		e.u64(v)
	case int64:
		e.u64(uint64(v))
	case float64:
		e.u64(math.Float64bits(v))
	default:
		e.array(v)
	}
}

// array encodes element type, count and elements of a typed slice or []any.
func (e *encoder) array(v any) {
	switch v := v.(type) {
	case []uint8:
		e.u32(uint32(ValueUint8))
		e.u64(uint64(len(v)))
		e.bytes(v)
	case []any:
		e.u32(uint32(ValueArray))
		e.u64(uint64(len(v)))
		for _, x := range v {
			e.array(x)
		}
	case []int8:
		arrayOf(e, ValueInt8, v, func(x int8) { e.u8(uint8(x)) })
	case []uint16:
		arrayOf(e, ValueUint16, v, e.u16)
	case []int16:
		arrayOf(e, ValueInt16, v, func(x int16) { e.u16(uint16(x)) })
	case []uint32:
		arrayOf(e, ValueUint32, v, e.u32)
	case []int32:
		arrayOf(e, ValueInt32, v, func(x int32) { e.u32(uint32(x)) })
	case []float32:
		arrayOf(e, ValueFloat32, v, func(x float32) { e.u32(math.Float32bits(x)) })
	case []bool:
		arrayOf(e, ValueBool, v, func(x bool) { e.u8(boolByte(x)) })
	case []string:
		arrayOf(e, ValueString, v, e.str)
	case []uint64:
		arrayOf(e, ValueUint64, v, e.u64)
	case []int64:
		arrayOf(e, ValueInt64, v, func(x int64) { e.u64(uint64(x)) })
	case []float64:
		arrayOf(e, ValueFloat64, v, func(x float64) { e.u64(math.Float64bits(x)) })
	}
}

func arrayOf[T any](e *encoder, t ValueType, v []T, put func(T)) {
	e.u32(uint32(t))
	e.u64(uint64(len(v)))
	for _, x := range v {
		put(x)
	}
}

// arrayLen returns the length of a typed slice or []any.
func arrayLen(v any) int {
	switch v := v.(type) {
	case []uint8:
		return len(v)
	case []int8:
		return len(v)
	case []uint16:
		return len(v)
	case []int16:
		return len(v)
	case []uint32:
		return len(v)
	case []int32:
		return len(v)
	case []float32:
		return len(v)
	case []bool:
		return len(v)
	case []string:
		return len(v)
	case []uint64:
		return len(v)
	case []int64:
		return len(v)
	case []float64:
		return len(v)
	case []any:
		return len(v)
	}
	return 0
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
