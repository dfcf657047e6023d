package gguf

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// parser walks the input; its ctx fields name the record being read for error messages.
type parser struct {
	data    []byte
	off     int
	ctxKind string // "kv" or "tensor info" (by index), "key" or "tensor" (by name), or ""
	ctxName string
	ctxIdx  uint64
}

// fail builds a *FormatError for byte offset at, prefixed with the current record.
func (p *parser) fail(at int, sentinel error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	switch p.ctxKind {
	case "kv", "tensor info":
		msg = fmt.Sprintf("%s %d: %s", p.ctxKind, p.ctxIdx, msg)
	case "key", "tensor":
		msg = fmt.Sprintf("%s %s: %s", p.ctxKind, quote(p.ctxName), msg)
	}
	return &FormatError{Offset: int64(at), Msg: msg, Err: sentinel}
}

// quote quotes a name for a message, shortening hostile multi-megabyte names.
func quote(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q...", s[:80])
	}
	return fmt.Sprintf("%q", s)
}

func (p *parser) left() uint64 { return uint64(len(p.data) - p.off) }

// take returns the next n bytes.
func (p *parser) take(n uint64, what string) ([]byte, error) {
	if n > p.left() {
		return nil, p.fail(p.off, ErrFormat, "truncated %s: need %d bytes, %d left", what, n, p.left())
	}
	b := p.data[p.off : p.off+int(n)]
	p.off += int(n)
	return b, nil
}

func (p *parser) u32(what string) (uint32, error) {
	b, err := p.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (p *parser) u64(what string) (uint64, error) {
	b, err := p.take(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// str reads a GGUF string (u64 length, bytes) and copies it out of the input.
func (p *parser) str(what string) (string, error) {
	at := p.off
	n, err := p.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > MaxStringLen {
		return "", p.fail(at, ErrUnsupported, "%s length %d exceeds limit %d (MaxStringLen)", what, n, MaxStringLen)
	}
	if n > p.left() {
		return "", p.fail(at, ErrFormat, "%s length %d exceeds the %d bytes left", what, n, p.left())
	}
	b, _ := p.take(n, what)
	return string(b), nil
}

// Parse parses a GGUF file held in data. The File aliases data (Data returns sub-slices).
func Parse(data []byte) (*File, error) {
	p := &parser{data: data}
	f := &File{data: data, Size: int64(len(data))}
	if len(data) < 4 {
		return nil, p.fail(0, ErrFormat, "truncated magic: file has %d bytes", len(data))
	}
	if string(data[:4]) != "GGUF" {
		return nil, p.fail(0, ErrFormat, "bad magic %q (want \"GGUF\")", data[:4])
	}
	p.off = 4
	v, err := p.u32("version")
	if err != nil {
		return nil, err
	}
	if v != 2 && v != 3 {
		if bits.ReverseBytes32(v) == 2 || bits.ReverseBytes32(v) == 3 {
			return nil, p.fail(4, ErrUnsupported, "big-endian file (version %#x); only little-endian is supported", v)
		}
		return nil, p.fail(4, ErrUnsupported, "unsupported version %d (want 2 or 3)", v)
	}
	f.Version = v
	nTensors, err := p.u64("n_tensors")
	if err != nil {
		return nil, err
	}
	nKV, err := p.u64("n_kv")
	if err != nil {
		return nil, err
	}
	if nTensors > MaxTensors {
		return nil, p.fail(8, ErrUnsupported, "n_tensors %d exceeds limit %d (MaxTensors)", nTensors, MaxTensors)
	}
	if nKV > MaxKVs {
		return nil, p.fail(16, ErrUnsupported, "n_kv %d exceeds limit %d (MaxKVs)", nKV, MaxKVs)
	}
	// Both counts are at most 2^20, so these products cannot overflow.
	if nKV*minKVBytes > p.left() {
		return nil, p.fail(16, ErrFormat, "n_kv %d cannot fit in the %d bytes left (%d bytes each at least)", nKV, p.left(), minKVBytes)
	}
	if nKV*minKVBytes+nTensors*minTensorBytes > p.left() {
		return nil, p.fail(8, ErrFormat, "n_tensors %d cannot fit in the %d bytes left after %d kvs (%d bytes each at least)",
			nTensors, p.left(), nKV, minTensorBytes)
	}
	if err := p.kvs(f, int(nKV)); err != nil {
		return nil, err
	}
	if err := p.tensors(f, int(nTensors)); err != nil {
		return nil, err
	}
	return f, nil
}

// kvs reads the metadata records, rejects duplicate keys and resolves the alignment.
func (p *parser) kvs(f *File, n int) error {
	f.KV = make([]KV, 0, n)
	at := make([]int, 0, n) // (n,) byte offset of each record, for error messages
	for i := range n {
		at = append(at, p.off)
		p.ctxKind, p.ctxIdx = "kv", uint64(i)
		key, err := p.str("key")
		if err != nil {
			return err
		}
		p.ctxKind, p.ctxName = "key", key
		typeAt := p.off
		t, err := p.u32("value type")
		if err != nil {
			return err
		}
		v, err := p.value(ValueType(t), typeAt, 0)
		if err != nil {
			return err
		}
		f.KV = append(f.KV, KV{Key: key, Type: ValueType(t), Value: v})
	}
	p.ctxKind = ""
	var a, b int
	if f.keyIdx, a, b = sortedIndex(n, func(i int) string { return f.KV[i].Key }); b >= 0 {
		p.ctxKind, p.ctxName = "key", f.KV[b].Key
		return p.fail(at[b], ErrFormat, "duplicate key (first at byte %#x)", at[a])
	}
	f.Alignment = DefaultAlignment
	if kv, ok := f.Get(AlignmentKey); ok {
		i := slices.IndexFunc(f.KV, func(x KV) bool { return x.Key == AlignmentKey })
		p.ctxKind, p.ctxName = "key", AlignmentKey
		a, ok := kv.Value.(uint32)
		if !ok {
			return p.fail(at[i], ErrFormat, "type %s, want uint32", kv.Type)
		}
		if a == 0 || a&(a-1) != 0 {
			return p.fail(at[i], ErrFormat, "alignment %d is not a power of two", a)
		}
		f.Alignment = uint64(a)
	}
	p.ctxKind = ""
	return nil
}

// value reads one value of type t; typeAt is where its type id was read.
func (p *parser) value(t ValueType, typeAt, depth int) (any, error) {
	if t == ValueString {
		return p.str("string value")
	}
	if t == ValueArray {
		return p.array(depth + 1)
	}
	size := t.fixedSize()
	if size == 0 {
		return nil, p.fail(typeAt, ErrFormat, "unknown value type %d", uint32(t))
	}
	b, err := p.take(size, t.String()+" value")
	if err != nil {
		return nil, err
	}
	return scalar(t, b, p, p.off-int(size))
}

// scalar decodes one fixed-size value from b.
func scalar(t ValueType, b []byte, p *parser, at int) (any, error) {
	le := binary.LittleEndian
	switch t {
	case ValueUint8:
		return b[0], nil
	case ValueInt8:
		return int8(b[0]), nil
	case ValueUint16:
		return le.Uint16(b), nil
	case ValueInt16:
		return int16(le.Uint16(b)), nil
	case ValueUint32:
		return le.Uint32(b), nil
	case ValueInt32:
		return int32(le.Uint32(b)), nil
	case ValueFloat32:
		return math.Float32frombits(le.Uint32(b)), nil
	case ValueBool:
		if b[0] > 1 {
			return nil, p.fail(at, ErrFormat, "bool value %d is neither 0 nor 1", b[0])
		}
		return b[0] == 1, nil
	case ValueUint64:
		return le.Uint64(b), nil
	case ValueInt64:
		return int64(le.Uint64(b)), nil
	default: // ValueFloat64
		return math.Float64frombits(le.Uint64(b)), nil
	}
}

// array reads an array at the given nesting depth (1 for a top-level array value).
func (p *parser) array(depth int) (any, error) {
	at := p.off
	if depth > MaxDepth {
		return nil, p.fail(at, ErrUnsupported, "arrays nested deeper than %d (MaxDepth)", MaxDepth)
	}
	et, err := p.u32("array element type")
	if err != nil {
		return nil, err
	}
	t := ValueType(et)
	n, err := p.u64("array length")
	if err != nil {
		return nil, err
	}
	minSize := t.minSize()
	if minSize == 0 {
		return nil, p.fail(at, ErrFormat, "unknown array element type %d", et)
	}
	if n > MaxArrayLen {
		return nil, p.fail(at+4, ErrUnsupported, "array length %d exceeds limit %d (MaxArrayLen)", n, MaxArrayLen)
	}
	if n > p.left()/minSize {
		return nil, p.fail(at+4, ErrFormat, "array length %d of %s needs at least %d bytes, %d left", n, t, n*minSize, p.left())
	}
	switch t {
	case ValueString:
		out := make([]string, 0, n) // (n,) bounded by left/8
		for range n {
			s, err := p.str("string element")
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	case ValueArray:
		out := make([]any, 0, n) // (n,) bounded by left/12
		for range n {
			a, err := p.array(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
		return out, nil
	}
	start := p.off
	b, _ := p.take(n*minSize, t.String()+" elements")
	le := binary.LittleEndian
	switch t {
	case ValueUint8:
		return slices.Clone(b), nil
	case ValueInt8:
		return decode(b, 1, func(b []byte) int8 { return int8(b[0]) }), nil
	case ValueUint16:
		return decode(b, 2, le.Uint16), nil
	case ValueInt16:
		return decode(b, 2, func(b []byte) int16 { return int16(le.Uint16(b)) }), nil
	case ValueUint32:
		return decode(b, 4, le.Uint32), nil
	case ValueInt32:
		return decode(b, 4, func(b []byte) int32 { return int32(le.Uint32(b)) }), nil
	case ValueFloat32:
		return decode(b, 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) }), nil
	case ValueBool:
		if i := slices.IndexFunc(b, func(x byte) bool { return x > 1 }); i >= 0 {
			return nil, p.fail(start+i, ErrFormat, "bool element %d is %d, neither 0 nor 1", i, b[i])
		}
		return decode(b, 1, func(b []byte) bool { return b[0] == 1 }), nil
	case ValueUint64:
		return decode(b, 8, le.Uint64), nil
	case ValueInt64:
		return decode(b, 8, func(b []byte) int64 { return int64(le.Uint64(b)) }), nil
	default: // ValueFloat64
		return decode(b, 8, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) }), nil
	}
}

// decode converts len(b)/size little-endian elements.
func decode[T any](b []byte, size int, get func([]byte) T) []T {
	out := make([]T, len(b)/size) // (len(b)/size,)
	for i := range out {
		out[i] = get(b[i*size:])
	}
	return out
}

// tensors reads the tensor infos and checks names, shapes, types, offsets and overlaps.
func (p *parser) tensors(f *File, n int) error {
	f.Tensors = make([]TensorInfo, 0, n)
	at := make([]int, 0, n) // (n,) byte offset of each tensor's offset field
	for i := range n {
		p.ctxKind, p.ctxIdx = "tensor info", uint64(i)
		nameAt := p.off
		name, err := p.str("tensor name")
		if err != nil {
			return err
		}
		p.ctxKind, p.ctxName = "tensor", name
		if len(name) > MaxTensorNameLen {
			return p.fail(nameAt, ErrUnsupported, "name of %d bytes exceeds %d (MaxTensorNameLen)", len(name), MaxTensorNameLen)
		}
		t, err := p.tensorInfo(name, f.Alignment)
		if err != nil {
			return err
		}
		at = append(at, p.off-8)
		f.Tensors = append(f.Tensors, t)
	}
	p.ctxKind = ""
	var a, b int
	if f.tensorIx, a, b = sortedIndex(n, func(i int) string { return f.Tensors[i].Name }); b >= 0 {
		p.ctxKind, p.ctxName = "tensor", f.Tensors[b].Name
		return p.fail(at[b], ErrFormat, "duplicate tensor name (first offset field at byte %#x)", at[a])
	}
	f.DataOffset = alignUp(uint64(p.off), f.Alignment)
	for i := range f.Tensors {
		t := &f.Tensors[i]
		start, c1 := bits.Add64(f.DataOffset, t.Offset, 0)
		end, c2 := bits.Add64(start, t.Size, 0)
		if c1 != 0 || c2 != 0 || end > uint64(len(p.data)) {
			p.ctxKind, p.ctxName = "tensor", t.Name
			return p.fail(at[i], ErrFormat, "data [%#x, %#x) past end of file (%#x)", start, end, len(p.data))
		}
	}
	// Tensors in offset order must not overlap; ends were checked above, so no overflow here.
	order := slices.Clone(f.tensorIx) // (n,)
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(f.Tensors[a].Offset, f.Tensors[b].Offset) })
	for j := 1; j < n; j++ {
		a, b := &f.Tensors[order[j-1]], &f.Tensors[order[j]]
		if a.Offset+a.Size > b.Offset {
			p.ctxKind, p.ctxName = "tensor", b.Name
			d := f.DataOffset
			return p.fail(at[order[j]], ErrFormat, "data [%#x, %#x) overlaps tensor %s [%#x, %#x)",
				d+b.Offset, d+b.Offset+b.Size, quote(a.Name), d+a.Offset, d+a.Offset+a.Size)
		}
	}
	p.ctxKind = ""
	return nil
}

// tensorInfo reads the part of a tensor-info record after the name.
func (p *parser) tensorInfo(name string, alignment uint64) (TensorInfo, error) {
	t := TensorInfo{Name: name}
	ndAt := p.off
	nd, err := p.u32("n_dims")
	if err != nil {
		return t, err
	}
	if nd < 1 || nd > MaxDims {
		return t, p.fail(ndAt, ErrFormat, "n_dims %d out of range 1..%d", nd, MaxDims)
	}
	dimsAt := p.off
	b, err := p.take(8*uint64(nd), "dimensions")
	if err != nil {
		return t, err
	}
	t.Dims = decode(b, 8, binary.LittleEndian.Uint64) // (n_dims,)
	// n_dims is already in range, so checkDims names a dim (j >= 0).
	if j, err := checkDims(t.Dims); err != nil {
		return t, p.fail(dimsAt+8*j, ErrFormat, "%v", err)
	}
	typeAt := p.off
	ty, err := p.u32("tensor type")
	if err != nil {
		return t, err
	}
	t.Type = Type(ty)
	size, err := tensorSize(t.Dims, t.Type)
	if err != nil {
		return t, p.fail(typeAt, errSentinel(err), "%v", err)
	}
	t.Size = size
	offAt := p.off
	if t.Offset, err = p.u64("tensor offset"); err != nil {
		return t, err
	}
	if t.Offset%alignment != 0 {
		return t, p.fail(offAt, ErrFormat, "offset %#x is not a multiple of the alignment %d", t.Offset, alignment)
	}
	return t, nil
}

// sortedIndex returns 0..n-1 sorted by key, ties in index order. When keys repeat, dupA < dupB
// are the indices of the first repeated pair in sorted order; otherwise both are -1.
func sortedIndex(n int, key func(int) string) (idx []int32, dupA, dupB int) {
	idx = make([]int32, n) // (n,)
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return strings.Compare(key(int(a)), key(int(b))) })
	for j := 1; j < n; j++ {
		if a, b := int(idx[j-1]), int(idx[j]); key(a) == key(b) {
			return idx, a, b
		}
	}
	return idx, -1, -1
}

// withPath prefixes a parse error's message with the file name, keeping its type.
func withPath(path string, err error) error {
	if fe, ok := err.(*FormatError); ok {
		e := *fe
		e.Msg = path + ": " + e.Msg
		return &e
	}
	return fmt.Errorf("gguf: %s: %w", path, err)
}
