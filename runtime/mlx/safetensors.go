// Package mlx loads and writes MLX 1-bit (group 128) model directories.
//
// An MLX 1-bit Bonsai directory holds a Hugging Face config.json and one or more safetensors
// files. Every linear layer X is stored as three tensors (docs/FORMATS.md §8):
//
//	X.weight  U32 [out, in/32]   sign bits, LSB first; as bytes exactly the GGUF Q1_0 sign bytes
//	X.scales  F16|BF16 [out, in/128]  2d per 128-weight group
//	X.biases  F16|BF16 [out, in/128]  -d per group
//
// MLX dequantises affinely, w = scales*bit + biases. Bonsai's weights are symmetric (+d or -d),
// which makes biases exactly -scales/2, and then biases alone is -d: Open wraps the weight bytes
// and the biases bytes as a q1.Matrix without copying anything. A group whose bias is not
// exactly -scale/2 is affine: flipping one of its bits would not negate the weight, and the
// runtime's 1-bit kernels would compute a different model. Open therefore refuses such files
// with an error naming the tensor, row and group instead of silently computing something else.
package mlx

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/bankai-metal/bankai-metal/internal/atomicfile"
)

// MaxHeaderBytes bounds the JSON header of a safetensors file.
const MaxHeaderBytes = 100 << 20

// MaxDims bounds the rank of a tensor.
const MaxDims = 8

// ErrFormat is wrapped by every error about a malformed file.
var ErrFormat = errors.New("malformed file")

// ErrUnsupported is wrapped by errors about valid files this package does not load.
var ErrUnsupported = errors.New("unsupported")

// dtypeSizes maps the safetensors dtype names to their element size in bytes.
var dtypeSizes = map[string]int64{
	"F64": 8, "F32": 4, "F16": 2, "BF16": 2,
	"I64": 8, "I32": 4, "I16": 2, "I8": 1,
	"U64": 8, "U32": 4, "U16": 2, "U8": 1,
	"BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
}

// DTypeSize returns the element size of a safetensors dtype, or 0 if it is unknown.
func DTypeSize(dtype string) int64 { return dtypeSizes[dtype] }

// Tensor is one named array of a safetensors file.
type Tensor struct {
	Name  string
	DType string  // "F16", "U32", ... (safetensors spelling)
	Shape []int64 // row-major, slowest dimension first
	Data  []byte  // little-endian elements; aliases the file mapping when parsed
}

// Elements returns the product of the shape, or -1 if it overflows or a dimension is negative.
func (t *Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		if d < 0 || (d > 0 && n > math.MaxInt64/d) {
			return -1
		}
		n *= d
	}
	return n
}

// wantBytes returns the data size the dtype and shape call for, or an error.
func (t *Tensor) wantBytes() (int64, error) {
	size := dtypeSizes[t.DType]
	if size == 0 {
		return 0, fmt.Errorf("unknown dtype %q: %w", t.DType, ErrUnsupported)
	}
	if len(t.Shape) > MaxDims {
		return 0, fmt.Errorf("%d dimensions, at most %d allowed: %w", len(t.Shape), MaxDims, ErrFormat)
	}
	n := t.Elements()
	if n < 0 || n > math.MaxInt64/size {
		return 0, fmt.Errorf("bad shape %v: %w", t.Shape, ErrFormat)
	}
	return n * size, nil
}

// Safetensors is a parsed safetensors file.
type Safetensors struct {
	Tensors  map[string]*Tensor
	Names    []string // tensor names, sorted
	Metadata map[string]string
}

// headerEntry is one tensor of the JSON header.
type headerEntry struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

// ParseSafetensors parses a whole safetensors file held in data. Tensor data aliases data.
//
// Layout: a u64 little-endian header length n, n bytes of JSON mapping each name to
// {dtype, shape, data_offsets: [begin, end]} (plus an optional "__metadata__" string map),
// then the data region; offsets are relative to the start of the data region.
func ParseSafetensors(data []byte) (*Safetensors, error) {
	st, err := parseSafetensors(data)
	if err != nil {
		return nil, fmt.Errorf("mlx: safetensors: %w", err)
	}
	return st, nil
}

// parseSafetensors is ParseSafetensors with errors that the caller prefixes.
func parseSafetensors(data []byte) (*Safetensors, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("file is %d bytes, shorter than the 8-byte header length: %w", len(data), ErrFormat)
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderBytes || n > uint64(len(data)-8) {
		return nil, fmt.Errorf("header length %d exceeds the file (%d bytes) or the limit (%d): %w",
			n, len(data), MaxHeaderBytes, ErrFormat)
	}
	header := data[8 : 8+n]
	region := data[8+n:]

	entries, meta, err := parseHeader(header)
	if err != nil {
		return nil, err
	}
	st := &Safetensors{Tensors: make(map[string]*Tensor, len(entries)), Metadata: meta}
	type span struct {
		name       string
		begin, end int64
	}
	spans := make([]span, 0, len(entries))
	for _, e := range entries {
		name, h := e.name, e.entry
		if h.DType == nil || h.Shape == nil || h.DataOffsets == nil {
			return nil, fmt.Errorf("tensor %q: dtype, shape and data_offsets are all required: %w", name, ErrFormat)
		}
		t := &Tensor{Name: name, DType: *h.DType, Shape: *h.Shape}
		want, err := t.wantBytes()
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		off := *h.DataOffsets
		if len(off) != 2 {
			return nil, fmt.Errorf("tensor %q: data_offsets has %d values, want 2: %w", name, len(off), ErrFormat)
		}
		begin, end := off[0], off[1]
		if begin < 0 || end < begin || end > int64(len(region)) {
			return nil, fmt.Errorf("tensor %q: data [%#x, %#x) outside the data region (%#x bytes): %w",
				name, begin, end, len(region), ErrFormat)
		}
		if end-begin != want {
			return nil, fmt.Errorf("tensor %q: data is %d bytes, %s %v needs %d: %w",
				name, end-begin, t.DType, t.Shape, want, ErrFormat)
		}
		t.Data = region[begin:end:end]
		st.Tensors[name] = t
		st.Names = append(st.Names, name)
		spans = append(spans, span{name, begin, end})
	}
	sort.Strings(st.Names)
	sort.Slice(spans, func(i, j int) bool { return spans[i].begin < spans[j].begin })
	var prev *span // the non-empty tensor that ends last so far
	for i := range spans {
		s := &spans[i]
		if s.end == s.begin {
			continue
		}
		if prev != nil && s.begin < prev.end {
			return nil, fmt.Errorf("tensors %q [%#x, %#x) and %q [%#x, %#x) overlap: %w",
				prev.name, prev.begin, prev.end, s.name, s.begin, s.end, ErrFormat)
		}
		prev = s
	}
	return st, nil
}

type namedEntry struct {
	name  string
	entry headerEntry
}

// parseHeader decodes the header object token by token so that duplicate names are caught.
func parseHeader(header []byte) ([]namedEntry, map[string]string, error) {
	bad := func(err error) error {
		return fmt.Errorf("header is not a JSON object of tensors: %w (%w)", err, ErrFormat)
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, bad(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, bad(fmt.Errorf("starts with %v", tok))
	}
	var entries []namedEntry
	var meta map[string]string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, bad(err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, bad(fmt.Errorf("key %v is not a string", tok))
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("name %q appears twice in the header: %w", name, ErrFormat)
		}
		seen[name] = true
		if name == "__metadata__" {
			if err := dec.Decode(&meta); err != nil {
				return nil, nil, fmt.Errorf("__metadata__ is not a map of strings: %w (%w)", err, ErrFormat)
			}
			continue
		}
		var e headerEntry
		if err := dec.Decode(&e); err != nil {
			return nil, nil, fmt.Errorf("tensor %q: bad header entry: %w (%w)", name, err, ErrFormat)
		}
		entries = append(entries, namedEntry{name, e})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, nil, bad(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, bad(fmt.Errorf("trailing data after the header object"))
	}
	return entries, meta, nil
}

// WriteSafetensors writes tensors (in name order) and metadata to path atomically: a temporary
// file in the same directory is written, synced and renamed over path.
// The header is padded with spaces so that the data region starts at a multiple of 8 bytes.
func WriteSafetensors(path string, tensors []*Tensor, metadata map[string]string) error {
	sorted := slices.Clone(tensors)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		m, err := json.Marshal(metadata) // keys sorted
		if err != nil {
			return fmt.Errorf("mlx: write %s: metadata: %w", path, err)
		}
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(m)
	}
	var off int64
	for i, t := range sorted {
		if t.Name == "" || t.Name == "__metadata__" || (i > 0 && sorted[i-1].Name == t.Name) {
			return fmt.Errorf("mlx: write %s: bad or duplicate tensor name %q", path, t.Name)
		}
		want, err := t.wantBytes()
		if err != nil {
			return fmt.Errorf("mlx: write %s: tensor %q: %w", path, t.Name, err)
		}
		if int64(len(t.Data)) != want {
			return fmt.Errorf("mlx: write %s: tensor %q: data is %d bytes, %s %v needs %d", path, t.Name, len(t.Data), t.DType, t.Shape, want)
		}
		if hdr.Len() > 1 {
			hdr.WriteByte(',')
		}
		name, _ := json.Marshal(t.Name)
		hdr.Write(name)
		hdr.WriteString(`:{"dtype":"` + t.DType + `","shape":[`)
		for k, d := range t.Shape {
			if k > 0 {
				hdr.WriteByte(',')
			}
			hdr.WriteString(strconv.FormatInt(d, 10))
		}
		hdr.WriteString(`],"data_offsets":[` + strconv.FormatInt(off, 10) + "," + strconv.FormatInt(off+want, 10) + "]}")
		off += want
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	return writeAtomic(path, func(w io.Writer) error {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(hdr.Len()))
		if _, err := w.Write(n[:]); err != nil {
			return err
		}
		if _, err := w.Write(hdr.Bytes()); err != nil {
			return err
		}
		for _, t := range sorted {
			if _, err := w.Write(t.Data); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeAtomic replaces path with what fill writes (buffered), through a temporary sibling
// that is synced and renamed over path.
func writeAtomic(path string, fill func(io.Writer) error) error {
	err := atomicfile.Write(path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := fill(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("mlx: write %s: %w", path, err)
	}
	return nil
}
