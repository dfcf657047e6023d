package mlx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// File names inside a model directory.
const (
	ConfigFile          = "config.json"
	WeightsFile         = "model.safetensors"
	IndexFile           = "model.safetensors.index.json"
	TokenizerFile       = "tokenizer.json"
	TokenizerConfigFile = "tokenizer_config.json"
)

// maxSideFile bounds config.json, the index and the tokenizer files, which are read into memory.
const maxSideFile = 256 << 20

// Model is an opened MLX 1-bit model directory. Matrices alias private copy-on-write mappings
// of the weight files: flipping their bits changes this process's pages, never the files.
// Nothing obtained from a Model may be used after Close.
type Model struct {
	Dir      string
	Config   Config
	Matrices map[string]*q1.Matrix // by HF module prefix: "model.embed_tokens", "model.layers.0.mlp.up_proj", "lm_head"
	Vectors  map[string][]float32  // norm weights by full tensor name, e.g. "model.norm.weight"; (len)

	TokenizerJSON       []byte // tokenizer.json, nil if absent
	TokenizerConfigJSON []byte // tokenizer_config.json, nil if absent
	Size                int64  // total bytes of the weight files

	maps  [][]byte // one mapping per weight file
	files []string // the weight files' names in Dir, parallel to maps
}

// WeightFiles returns the name (relative to Dir) and the mapped bytes of every weight file.
// The bytes include any sign bits flipped in memory, so writing them out saves a patched copy.
func (m *Model) WeightFiles() (names []string, data [][]byte) { return m.files, m.maps }

// Open loads the model in dir: config.json, then model.safetensors.index.json and the shards it
// names if it exists, else model.safetensors. Every weight file is mapped MAP_PRIVATE with
// PROT_READ|PROT_WRITE. Quantised linears are checked (bits 1, group 128, biases == -scales/2 in
// every group, shapes consistent with config.json) and wrapped as q1.Matrix without copying.
func Open(dir string) (_ *Model, err error) {
	raw, err := readSide(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	switch q := cfg.Quantization; {
	case q == Quantization{}:
		return nil, fmt.Errorf("mlx: config.json: no quantization block; only 1-bit quantised models load: %w", ErrUnsupported)
	case q.Bits != 1:
		return nil, fmt.Errorf("mlx: config.json: quantization.bits is %d, only 1 is supported: %w", q.Bits, ErrUnsupported)
	case q.GroupSize != q1.GroupSize:
		return nil, fmt.Errorf("mlx: config.json: quantization.group_size is %d, only %d is supported: %w", q.GroupSize, q1.GroupSize, ErrUnsupported)
	}

	model := &Model{Dir: dir, Config: cfg, Matrices: map[string]*q1.Matrix{}, Vectors: map[string][]float32{}}
	defer func() {
		if err != nil {
			model.Close()
		}
	}()
	tensors, err := model.mapWeights()
	if err != nil {
		return nil, err
	}
	if err := model.bind(tensors); err != nil {
		return nil, err
	}
	if err := checkLayout(cfg, model.Matrices, model.Vectors); err != nil {
		return nil, err
	}
	if model.TokenizerJSON, err = readOptional(filepath.Join(dir, TokenizerFile)); err != nil {
		return nil, err
	}
	if model.TokenizerConfigJSON, err = readOptional(filepath.Join(dir, TokenizerConfigFile)); err != nil {
		return nil, err
	}
	return model, nil
}

// Close unmaps the weight files. It is safe to call more than once.
func (m *Model) Close() error {
	var first error
	for _, b := range m.maps {
		if err := unix.Munmap(b); err != nil && first == nil {
			first = fmt.Errorf("mlx: unmap: %w", err)
		}
	}
	m.maps = nil
	return first
}

// mapWeights maps the weight files and returns their tensors by name.
func (m *Model) mapWeights() (map[string]*Tensor, error) {
	files := []string{WeightsFile}
	var where map[string]string // tensor -> file, from the index
	indexPath := filepath.Join(m.Dir, IndexFile)
	if raw, err := readOptional(indexPath); err != nil {
		return nil, err
	} else if raw != nil {
		if where, files, err = parseIndex(raw); err != nil {
			return nil, fmt.Errorf("mlx: %s: %w", indexPath, err)
		}
	}
	tensors := map[string]*Tensor{}
	for _, f := range files {
		path := filepath.Join(m.Dir, f)
		data, err := mapFile(path)
		if err != nil {
			if where != nil {
				return nil, fmt.Errorf("mlx: %s names shard %q: %w", IndexFile, f, err)
			}
			return nil, fmt.Errorf("mlx: %w", err)
		}
		m.maps = append(m.maps, data)
		m.files = append(m.files, f)
		m.Size += int64(len(data))
		st, err := parseSafetensors(data)
		if err != nil {
			return nil, fmt.Errorf("mlx: %s: %w", path, err)
		}
		for _, name := range st.Names {
			if where != nil && where[name] != f {
				return nil, fmt.Errorf("mlx: %s: tensor %q is in %s but %s says %q: %w", m.Dir, name, f, IndexFile, where[name], ErrFormat)
			}
			if _, dup := tensors[name]; dup {
				return nil, fmt.Errorf("mlx: %s: tensor %q appears in two files: %w", m.Dir, name, ErrFormat)
			}
			tensors[name] = st.Tensors[name]
		}
	}
	for _, name := range sortedKeys(where) {
		if f := where[name]; tensors[name] == nil {
			return nil, fmt.Errorf("mlx: %s: %s puts tensor %q in %s, which does not hold it: %w", m.Dir, IndexFile, name, f, ErrFormat)
		}
	}
	return tensors, nil
}

// parseIndex returns the weight_map of an index file and the sorted set of shard names.
func parseIndex(raw []byte) (map[string]string, []string, error) {
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, nil, fmt.Errorf("%w (%w)", err, ErrFormat)
	}
	if len(idx.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("empty or missing weight_map: %w", ErrFormat)
	}
	seen := map[string]bool{}
	var files []string
	for _, name := range sortedKeys(idx.WeightMap) {
		f := idx.WeightMap[name]
		if f == "" || f == "." || f == ".." || strings.ContainsAny(f, `/\`) {
			return nil, nil, fmt.Errorf("tensor %q: shard name %q is not a plain file name: %w", name, f, ErrFormat)
		}
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	sort.Strings(files)
	return idx.WeightMap, files, nil
}

// mapFile maps a whole regular file copy-on-write.
func mapFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if !fi.Mode().IsRegular() || size < 8 || size > math.MaxInt {
		return nil, fmt.Errorf("%s: not a regular file of at least 8 bytes (%d bytes): %w", path, size, ErrFormat)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return data, nil
}

// readSide reads a small side file (config, index, tokenizer), bounded by maxSideFile.
func readSide(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mlx: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSideFile+1))
	if err != nil {
		return nil, fmt.Errorf("mlx: read %s: %w", path, err)
	}
	if len(data) > maxSideFile {
		return nil, fmt.Errorf("mlx: %s is larger than %d bytes: %w", path, maxSideFile, ErrFormat)
	}
	return data, nil
}

// readOptional is readSide that returns nil, nil for a missing file.
func readOptional(path string) ([]byte, error) {
	data, err := readSide(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// bind turns the tensors into matrices (U32 X.weight with X.scales and X.biases) and vectors.
func (m *Model) bind(tensors map[string]*Tensor) error {
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := tensors[name]
		if prefix, ok := cutAny(name, ".scales", ".biases"); ok {
			if w := tensors[prefix+".weight"]; w == nil || w.DType != "U32" {
				return fmt.Errorf("mlx: tensor %q: no U32 %s.weight to go with it: %w", name, prefix, ErrFormat)
			}
			continue
		}
		if prefix, ok := strings.CutSuffix(name, ".weight"); ok && t.DType == "U32" {
			mat, err := bindMatrix(prefix, t, tensors[prefix+".scales"], tensors[prefix+".biases"])
			if err != nil {
				return err
			}
			m.Matrices[prefix] = mat
			continue
		}
		v, err := toFloat32(t)
		if err != nil {
			return err
		}
		m.Vectors[name] = v
	}
	return nil
}

func cutAny(s string, suffixes ...string) (string, bool) {
	for _, suf := range suffixes {
		if p, ok := strings.CutSuffix(s, suf); ok {
			return p, true
		}
	}
	return s, false
}

// bindMatrix checks one quantised linear and wraps it without copying.
func bindMatrix(prefix string, w, s, b *Tensor) (*q1.Matrix, error) {
	if s == nil || b == nil {
		return nil, fmt.Errorf("mlx: tensor %q: U32 weight without both %s.scales and %s.biases: %w", w.Name, prefix, prefix, ErrFormat)
	}
	if s.DType != b.DType || (s.DType != "F16" && s.DType != "BF16") {
		return nil, fmt.Errorf("mlx: %s: scales are %s and biases %s, want both F16 or both BF16: %w", prefix, s.DType, b.DType, ErrUnsupported)
	}
	if len(w.Shape) != 2 || len(s.Shape) != 2 || len(b.Shape) != 2 {
		return nil, fmt.Errorf("mlx: %s: weight %v, scales %v and biases %v must all be 2-D: %w", prefix, w.Shape, s.Shape, b.Shape, ErrFormat)
	}
	if s.Shape[0] != b.Shape[0] || s.Shape[1] != b.Shape[1] {
		return nil, fmt.Errorf("mlx: %s: scales shape %v != biases shape %v: %w", prefix, s.Shape, b.Shape, ErrFormat)
	}
	if w.Shape[0] != s.Shape[0] {
		return nil, fmt.Errorf("mlx: %s: weight has %d rows, scales %d: %w", prefix, w.Shape[0], s.Shape[0], ErrFormat)
	}
	if w.Shape[0] <= 0 || w.Shape[1] <= 0 {
		return nil, fmt.Errorf("mlx: %s: empty weight %v: %w", prefix, w.Shape, ErrFormat)
	}
	// Both sizes are now bounded by the file size, so the products cannot overflow.
	if w.Shape[1]*32 != s.Shape[1]*q1.GroupSize {
		return nil, fmt.Errorf("mlx: %s: weight has %d columns (%d inputs), scales %d groups (%d inputs): %w",
			prefix, w.Shape[1], w.Shape[1]*32, s.Shape[1], s.Shape[1]*q1.GroupSize, ErrFormat)
	}
	rows, cols := int(w.Shape[0]), int(w.Shape[1])*32
	decode, kind := q1.F16ToF32, q1.ScaleNegF16
	if s.DType == "BF16" {
		decode, kind = q1.BF16ToF32, q1.ScaleNegBF16
	}
	groups := cols / q1.GroupSize
	for i := 0; i < rows*groups; i++ {
		sv := decode(uint16(s.Data[2*i]) | uint16(s.Data[2*i+1])<<8)
		bv := decode(uint16(b.Data[2*i]) | uint16(b.Data[2*i+1])<<8)
		for _, v := range []struct {
			t *Tensor
			x float32
		}{{s, sv}, {b, bv}} {
			if v.x-v.x != 0 { // NaN or ±Inf
				return nil, fmt.Errorf("mlx: tensor %q: row %d group %d: value is %g; every scale and bias must be finite: %w",
					v.t.Name, i/groups, i%groups, v.x, ErrFormat)
			}
		}
		// Halving a 16-bit float is exact in float32, so this is an exact comparison.
		if bv != -sv/2 {
			return nil, fmt.Errorf("mlx: tensor %q: row %d group %d: bias %g != -scale/2 (scale %g); "+
				"affine 1-bit groups are refused because flipping their bits does not negate the weight: %w",
				b.Name, i/groups, i%groups, bv, sv, ErrUnsupported)
		}
	}
	mat, err := q1.FromSplit(prefix, rows, cols, w.Data, b.Data, kind)
	if err != nil {
		return nil, fmt.Errorf("mlx: %w", err)
	}
	return mat, nil
}

// toFloat32 converts a 1-D F16, BF16 or F32 tensor.
func toFloat32(t *Tensor) ([]float32, error) {
	if len(t.Shape) != 1 {
		return nil, fmt.Errorf("mlx: tensor %q: %s %v is neither a quantised U32 weight nor a 1-D vector: %w", t.Name, t.DType, t.Shape, ErrUnsupported)
	}
	n := int(t.Shape[0])    // bounded by the file size
	v := make([]float32, n) // (n)
	switch t.DType {
	case "F32":
		for i := range v {
			d := t.Data[4*i:]
			v[i] = math.Float32frombits(uint32(d[0]) | uint32(d[1])<<8 | uint32(d[2])<<16 | uint32(d[3])<<24)
		}
	case "F16", "BF16":
		decode := q1.F16ToF32
		if t.DType == "BF16" {
			decode = q1.BF16ToF32
		}
		for i := range v {
			v[i] = decode(uint16(t.Data[2*i]) | uint16(t.Data[2*i+1])<<8)
		}
	default:
		return nil, fmt.Errorf("mlx: tensor %q: dtype %s, want F16, BF16 or F32 for a vector: %w", t.Name, t.DType, ErrUnsupported)
	}
	return v, nil
}
