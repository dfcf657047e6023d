package gguf

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Limits applied while parsing (and by Write, so that every written file parses again).
// Counts are additionally bounded by the bytes left in the input.
const (
	MaxKVs           = 1 << 20  // metadata records
	MaxTensors       = 1 << 20  // tensor-info records
	MaxStringLen     = 64 << 20 // bytes in one string (keys, values, tensor names)
	MaxArrayLen      = 1 << 26  // elements in one array
	MaxDepth         = 8        // nesting of arrays inside arrays
	MaxDims          = 4        // tensor dimensions (GGML_MAX_DIMS)
	MaxTensorNameLen = 63       // ggml keeps names in 64 bytes including the NUL
	DefaultAlignment = 32       // data alignment when "general.alignment" is absent
)

// AlignmentKey is the metadata key that sets the data alignment (u32, a power of two).
const AlignmentKey = "general.alignment"

// Smallest encodings: a KV is an empty key, a type and a 1-byte value; a tensor info is an empty
// name, n_dims = 1, one dim, a type and an offset.
const (
	minKVBytes     = 8 + 4 + 1
	minTensorBytes = 8 + 4 + 8 + 4 + 8
)

// checkDims validates a shape: 1..MaxDims dims, none zero, element count within int64 (what
// ggml requires). On failure it also returns the index of the offending dim, or -1 for n_dims.
func checkDims(dims []uint64) (int, error) {
	if len(dims) < 1 || len(dims) > MaxDims {
		return -1, fmt.Errorf("n_dims %d out of range 1..%d", len(dims), MaxDims)
	}
	elems := uint64(1)
	for j, d := range dims {
		if d == 0 {
			return j, fmt.Errorf("ne[%d] is zero", j)
		}
		hi, lo := bits.Mul64(elems, d)
		if hi != 0 || lo > math.MaxInt64 {
			return j, fmt.Errorf("dims product overflows int64 at ne[%d] = %d", j, d)
		}
		elems = lo
	}
	return 0, nil
}

// shapeError is a tensorSize failure, unsupported or malformed.
type shapeError struct {
	msg         string
	unsupported bool
}

func (e *shapeError) Error() string { return e.msg }

// Unwrap returns ErrUnsupported for an unsupported type, so that errors.Is works for Write too.
func (e *shapeError) Unwrap() error {
	if e.unsupported {
		return ErrUnsupported
	}
	return nil
}

// errSentinel classifies a tensorSize error for a FormatError.
func errSentinel(err error) error {
	if errors.Is(err, ErrUnsupported) {
		return ErrUnsupported
	}
	return ErrFormat
}

// tensorSize returns ne[0]/block_elems × block_bytes × ne[1] × ... for dims that passed checkDims.
func tensorSize(dims []uint64, t Type) (uint64, error) {
	be, bb, ok := t.BlockSize()
	if !ok {
		return 0, &shapeError{msg: fmt.Sprintf("unsupported type %d", uint32(t)), unsupported: true}
	}
	if dims[0]%uint64(be) != 0 {
		return 0, &shapeError{msg: fmt.Sprintf("ne[0] = %d is not a multiple of the %s block size %d", dims[0], t, be)}
	}
	size := dims[0] / uint64(be) * uint64(bb)
	for _, d := range dims[1:] {
		hi, lo := bits.Mul64(size, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, &shapeError{msg: fmt.Sprintf("byte size of %s %v overflows int64", t, dims)}
		}
		size = lo
	}
	if size > math.MaxInt64 {
		return 0, &shapeError{msg: fmt.Sprintf("byte size of %s %v overflows int64", t, dims)}
	}
	return size, nil
}

// alignUp rounds x up to a multiple of the power of two a.
func alignUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }
