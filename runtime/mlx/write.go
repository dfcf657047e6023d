package mlx

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// WriteDir writes an MLX model directory: config.json (with both "quantization" and
// "quantization_config"), model.safetensors (metadata {"format": "mlx"}) and, when non-nil,
// tokenizer.json and tokenizer_config.json. Each file is written atomically. The tensors are
// written as given, without the checks Open makes, so that tests can build broken models.
func WriteDir(dir string, cfg Config, tensors []*Tensor, tokenizerJSON, tokenizerConfigJSON []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mlx: %w", err)
	}
	raw, err := MarshalConfig(cfg)
	if err != nil {
		return err
	}
	if err := writeBytes(filepath.Join(dir, ConfigFile), raw); err != nil {
		return err
	}
	if err := WriteSafetensors(filepath.Join(dir, WeightsFile), tensors, map[string]string{"format": "mlx"}); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{TokenizerFile, tokenizerJSON}, {TokenizerConfigFile, tokenizerConfigJSON}} {
		if f.data != nil {
			if err := writeBytes(filepath.Join(dir, f.name), f.data); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeBytes(path string, data []byte) error {
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// MatrixTensors encodes m as the MLX tensors prefix.weight (U32 [rows, cols/32]),
// prefix.scales (2d) and prefix.biases (-d), both [rows, cols/128] of dtype "F16" or "BF16".
// The bias is -d rounded to the dtype and the scale is exactly -2 times the rounded bias, so
// the result always passes Open's biases == -scales/2 check unless 2d overflows the dtype.
func MatrixTensors(prefix string, m *q1.Matrix, dtype string) ([]*Tensor, error) {
	var encode func(float32) uint16
	var decode func(uint16) float32
	switch dtype {
	case "F16":
		encode, decode = q1.F32ToF16, q1.F16ToF32
	case "BF16":
		encode, decode = f32ToBF16, q1.BF16ToF32
	default:
		return nil, fmt.Errorf("mlx: %s: scale dtype %q, want F16 or BF16", prefix, dtype)
	}
	bits := make([]byte, 0, m.SignBytes())       // (rows, cols/8)
	scales := make([]byte, 0, m.Rows*m.Groups*2) // (rows, groups) 16-bit
	biases := make([]byte, 0, m.Rows*m.Groups*2) // (rows, groups) 16-bit
	for r := 0; r < m.Rows; r++ {
		for g := 0; g < m.Groups; g++ {
			bits = append(bits, m.GroupSigns(r, g)...)
			b := encode(-m.Scale(r, g))
			s := encode(-2 * decode(b))
			if decode(s) != -2*decode(b) {
				return nil, fmt.Errorf("mlx: %s: row %d group %d: scale 2*%g does not fit in %s", prefix, r, g, -decode(b), dtype)
			}
			scales = binary.LittleEndian.AppendUint16(scales, s)
			biases = binary.LittleEndian.AppendUint16(biases, b)
		}
	}
	rows, groups := int64(m.Rows), int64(m.Groups)
	return []*Tensor{
		{Name: prefix + ".weight", DType: "U32", Shape: []int64{rows, int64(m.Cols) / 32}, Data: bits},
		{Name: prefix + ".scales", DType: dtype, Shape: []int64{rows, groups}, Data: scales},
		{Name: prefix + ".biases", DType: dtype, Shape: []int64{rows, groups}, Data: biases},
	}, nil
}

// VectorTensor encodes v as a 1-D tensor of dtype "F32", "F16" or "BF16" (16-bit dtypes round to nearest even).
func VectorTensor(name string, v []float32, dtype string) (*Tensor, error) {
	if dtype != "F32" && dtype != "F16" && dtype != "BF16" {
		return nil, fmt.Errorf("mlx: tensor %q: vector dtype %q, want F32, F16 or BF16", name, dtype)
	}
	data := make([]byte, 0, len(v)*int(DTypeSize(dtype))) // (len)
	for _, x := range v {
		switch dtype {
		case "F32":
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(x))
		case "F16":
			data = binary.LittleEndian.AppendUint16(data, q1.F32ToF16(x))
		default:
			data = binary.LittleEndian.AppendUint16(data, f32ToBF16(x))
		}
	}
	return &Tensor{Name: name, DType: dtype, Shape: []int64{int64(len(v))}, Data: data}, nil
}

// f32ToBF16 rounds a float32 to bfloat16, to nearest even; NaN stays NaN.
func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
