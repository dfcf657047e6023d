package mlx

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// TestOpenMalformed breaks a valid generated model in one way per case; Open must refuse it
// with an error that names what is wrong.
func TestOpenMalformed(t *testing.T) {
	const down = "model.layers.1.mlp.down_proj"
	cases := []struct {
		name   string
		break_ func(t *testing.T, m *tinyModel) // change config or tensors before writing
		after  func(t *testing.T, dir string, m *tinyModel)
		want   []string
		sent   error
	}{
		{name: "bias is not -scale/2", break_: func(t *testing.T, m *tinyModel) {
			b := m.tensor(down + ".biases")
			i := 3*2 + 1 // row 3, group 1 of 2 groups per row
			d := -q1.F16ToF32(binary.LittleEndian.Uint16(b.Data[2*i:]))
			binary.LittleEndian.PutUint16(b.Data[2*i:], q1.F32ToF16(-0.75*d))
		}, want: []string{`tensor "` + down + `.biases": row 3 group 1: bias`, "!= -scale/2", "affine"}, sent: ErrUnsupported},
		{name: "NaN scale", break_: func(t *testing.T, m *tinyModel) {
			// row 3, group 1: NaN in both, so only the finiteness check can catch it
			binary.LittleEndian.PutUint16(m.tensor(down + ".scales").Data[2*(3*2+1):], 0x7e00)
			binary.LittleEndian.PutUint16(m.tensor(down + ".biases").Data[2*(3*2+1):], 0x7e00)
		}, want: []string{`tensor "` + down + `.scales": row 3 group 1: value is NaN; every scale and bias must be finite`}, sent: ErrFormat},
		{name: "infinite bias", break_: func(t *testing.T, m *tinyModel) {
			binary.LittleEndian.PutUint16(m.tensor("lm_head.biases").Data, 0xfc00) // -Inf, row 0 group 0
		}, want: []string{`tensor "lm_head.biases": row 0 group 0: value is -Inf; every scale and bias must be finite`}, sent: ErrFormat},
		{name: "bits 2", break_: func(t *testing.T, m *tinyModel) { m.cfg.Quantization.Bits = 2 },
			want: []string{"quantization.bits is 2"}, sent: ErrUnsupported},
		{name: "group size 64", break_: func(t *testing.T, m *tinyModel) { m.cfg.Quantization.GroupSize = 64 },
			want: []string{"quantization.group_size is 64"}, sent: ErrUnsupported},
		{name: "no quantization", break_: func(t *testing.T, m *tinyModel) { m.cfg.Quantization = Quantization{} },
			want: []string{"no quantization block"}, sent: ErrUnsupported},
		{name: "hidden size disagrees", break_: func(t *testing.T, m *tinyModel) { m.cfg.HiddenSize = 256 },
			want: []string{"lm_head: weight is 12 x 128 (out x in), config.json implies 12 x 256"}, sent: ErrFormat},
		{name: "intermediate size disagrees", break_: func(t *testing.T, m *tinyModel) { m.cfg.IntermediateSize = 384 },
			want: []string{"model.layers.0.mlp.down_proj: weight is 128 x 256", "implies 128 x 384 (hidden_size x intermediate_size)"}, sent: ErrFormat},
		{name: "head dim disagrees", break_: func(t *testing.T, m *tinyModel) { m.cfg.NumAttentionHeads = 4 },
			want: []string{"model.layers.0.self_attn.o_proj: weight is 128 x 256", "implies 128 x 512"}, sent: ErrFormat},
		{name: "too many layers", break_: func(t *testing.T, m *tinyModel) { m.cfg.NumHiddenLayers = 3 },
			want: []string{"num_hidden_layers 3 needs at least 22 quantised matrices, the files hold 16"}, sent: ErrFormat},
		{name: "too few layers", break_: func(t *testing.T, m *tinyModel) { m.cfg.NumHiddenLayers = 1 },
			want: []string{`unexpected quantised linear "model.layers.1.mlp.down_proj"`}, sent: ErrFormat},
		{name: "missing scales", break_: func(t *testing.T, m *tinyModel) { m.drop("model.layers.0.self_attn.k_proj.scales") },
			want: []string{`tensor "model.layers.0.self_attn.k_proj.weight": U32 weight without both`}, sent: ErrFormat},
		{name: "orphan biases", break_: func(t *testing.T, m *tinyModel) { m.drop(down + ".weight") },
			want: []string{`tensor "` + down + `.biases": no U32 ` + down + `.weight`}, sent: ErrFormat},
		{name: "missing lm_head", break_: func(t *testing.T, m *tinyModel) {
			for _, s := range []string{".weight", ".scales", ".biases"} {
				m.drop("lm_head" + s)
			}
		}, want: []string{`quantised linear "lm_head" is missing`}, sent: ErrFormat},
		{name: "missing norm", break_: func(t *testing.T, m *tinyModel) { m.drop("model.layers.1.self_attn.k_norm.weight") },
			want: []string{`norm weight "model.layers.1.self_attn.k_norm.weight" is missing`}, sent: ErrFormat},
		{name: "norm length", break_: func(t *testing.T, m *tinyModel) {
			n := m.tensor("model.layers.0.self_attn.q_norm.weight")
			n.Shape, n.Data = []int64{64}, n.Data[:128]
		}, want: []string{"model.layers.0.self_attn.q_norm.weight: 64 values, config.json head_dim is 128"}, sent: ErrFormat},
		{name: "2-D norm", break_: func(t *testing.T, m *tinyModel) { m.tensor("model.norm.weight").Shape = []int64{2, 64} },
			want: []string{`tensor "model.norm.weight": F16 [2 64] is neither`}, sent: ErrUnsupported},
		{name: "F32 scales", break_: func(t *testing.T, m *tinyModel) {
			s := m.tensor(down + ".scales")
			s.DType, s.Shape = "F32", []int64{s.Shape[0], s.Shape[1] / 2} // same bytes
		}, want: []string{down + ": scales are F32 and biases F16"}, sent: ErrUnsupported},
		{name: "scales cover other inputs", break_: func(t *testing.T, m *tinyModel) {
			s, b := m.tensor(down+".scales"), m.tensor(down+".biases")
			s.Shape, s.Data = []int64{64, 4}, s.Data[:64*4*2]
			b.Shape, b.Data = []int64{64, 4}, b.Data[:64*4*2]
		}, want: []string{down + ": weight has 128 rows, scales 64"}, sent: ErrFormat},
		{name: "scales group count", break_: func(t *testing.T, m *tinyModel) {
			s, b := m.tensor(down+".scales"), m.tensor(down+".biases")
			s.Shape, b.Shape = []int64{64, 4}, []int64{64, 4}
			w := m.tensor(down + ".weight")
			w.Shape, w.Data = []int64{64, 4}, w.Data[:64*4*4]
		}, want: []string{down + ": weight has 4 columns (128 inputs), scales 4 groups (512 inputs)"}, sent: ErrFormat},
		{name: "empty weight", break_: func(t *testing.T, m *tinyModel) {
			for _, suf := range []string{".weight", ".scales", ".biases"} {
				x := m.tensor(down + suf)
				x.Shape[0], x.Data = 0, nil
			}
		}, want: []string{down + ": empty weight [0 8]"}, sent: ErrFormat},
		{name: "no config", after: func(t *testing.T, dir string, m *tinyModel) {
			require.NoError(t, os.Remove(filepath.Join(dir, ConfigFile)))
		}, want: []string{"mlx: open", ConfigFile}, sent: os.ErrNotExist},
		{name: "truncated weights", after: func(t *testing.T, dir string, m *tinyModel) {
			path := filepath.Join(dir, WeightsFile)
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, fi.Size()-1))
		}, want: []string{WeightsFile, "outside the data region"}, sent: ErrFormat},
		{name: "index names a missing shard", after: func(t *testing.T, dir string, m *tinyModel) {
			where := writeSharded(t, dir, m)
			require.NoError(t, os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors")))
			require.Equal(t, "model-00002-of-00002.safetensors", where["lm_head.weight"])
		}, want: []string{IndexFile + ` names shard "model-00002-of-00002.safetensors"`}, sent: os.ErrNotExist},
		{name: "index misplaces a tensor", after: func(t *testing.T, dir string, m *tinyModel) {
			where := writeSharded(t, dir, m)
			where["lm_head.weight"] = "model-00001-of-00002.safetensors"
			writeIndex(t, dir, where)
		}, want: []string{`tensor "lm_head.weight" is in model-00002-of-00002.safetensors but ` + IndexFile + ` says "model-00001-of-00002.safetensors"`}, sent: ErrFormat},
		{name: "index lists an absent tensor", after: func(t *testing.T, dir string, m *tinyModel) {
			where := writeSharded(t, dir, m)
			where["lm_head.extra"] = "model-00001-of-00002.safetensors"
			writeIndex(t, dir, where)
		}, want: []string{`puts tensor "lm_head.extra" in model-00001-of-00002.safetensors, which does not hold it`}, sent: ErrFormat},
		{name: "index escapes the directory", after: func(t *testing.T, dir string, m *tinyModel) {
			writeIndex(t, dir, map[string]string{"lm_head.weight": "../model.safetensors"})
		}, want: []string{`shard name "../model.safetensors" is not a plain file name`}, sent: ErrFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tiny := newTiny(t, "F16", 3)
			if c.break_ != nil {
				c.break_(t, tiny)
			}
			dir := t.TempDir()
			require.NoError(t, WriteDir(dir, tiny.cfg, tiny.tensors, nil, nil))
			if c.after != nil {
				c.after(t, dir, tiny)
			}
			m, err := Open(dir)
			require.Error(t, err)
			require.Nil(t, m)
			require.ErrorIs(t, err, c.sent)
			require.Contains(t, err.Error(), "mlx: ")
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestOpenBiasValues checks that the refusal names both values of the offending group.
func TestOpenBiasValues(t *testing.T) {
	tiny := newTiny(t, "BF16", 4)
	const name = "model.embed_tokens"
	s, b := tiny.tensor(name+".scales"), tiny.tensor(name+".biases")
	i := 7 // row 7, group 0 (one group per row)
	sv := q1.BF16ToF32(binary.LittleEndian.Uint16(s.Data[2*i:]))
	bad := f32ToBF16(-sv) // -scale instead of -scale/2
	binary.LittleEndian.PutUint16(b.Data[2*i:], bad)
	dir := t.TempDir()
	require.NoError(t, WriteDir(dir, tiny.cfg, tiny.tensors, nil, nil))
	_, err := Open(dir)
	require.Error(t, err)
	require.Contains(t, err.Error(), fmt.Sprintf(`tensor "%s.biases": row 7 group 0: bias %g != -scale/2 (scale %g)`,
		name, q1.BF16ToF32(bad), sv))
}
