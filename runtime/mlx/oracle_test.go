package mlx

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime/gguf"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// ggufName maps an MLX tensor prefix (or full norm name) to its GGUF tensor (docs/FORMATS.md §4.1).
func ggufName(mlxName string) string {
	switch mlxName {
	case "model.embed_tokens":
		return "token_embd.weight"
	case "lm_head":
		return "output.weight"
	case "model.norm.weight":
		return "output_norm.weight"
	}
	var layer int
	var rest string
	if _, err := fmt.Sscanf(strings.Replace(mlxName, ".", " ", 3), "model layers %d %s", &layer, &rest); err != nil {
		return ""
	}
	gg := map[string]string{
		"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
		"self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
		"mlp.down_proj": "ffn_down", "input_layernorm.weight": "attn_norm", "post_attention_layernorm.weight": "ffn_norm",
		"self_attn.q_norm.weight": "attn_q_norm", "self_attn.k_norm.weight": "attn_k_norm",
	}[rest]
	if gg == "" {
		return ""
	}
	return fmt.Sprintf("blk.%d.%s.weight", layer, gg)
}

// TestOracleQwen3VocabMLX opens the qwen3vocab-mlx fixture and checks it weight for weight
// against the same model's GGUF (oracle/README.md: "the same weights in MLX 1-bit layout").
func TestOracleQwen3VocabMLX(t *testing.T) {
	dir := testenv.Shared(t, "oracle", "qwen3vocab-mlx")

	raw, err := os.ReadFile(filepath.Join(dir, WeightsFile))
	require.NoError(t, err)
	st, err := ParseSafetensors(raw)
	require.NoError(t, err)
	require.Len(t, st.Names, 57)
	require.Equal(t, map[string]string{"format": "mlx"}, st.Metadata)

	m, err := Open(dir)
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, 57, 3*len(m.Matrices)+len(m.Vectors), "each matrix is weight+scales+biases, each norm one tensor")
	require.Len(t, m.Matrices, 2*7+2)
	require.Equal(t, int64(len(raw)), m.Size)

	// Values listed in oracle/README.md.
	c := m.Config
	require.Equal(t, "qwen3", c.ModelType)
	require.Equal(t, []string{"Qwen3ForCausalLM"}, c.Architectures)
	require.Equal(t, 128, c.HiddenSize)
	require.Equal(t, 384, c.IntermediateSize)
	require.Equal(t, 2, c.NumHiddenLayers)
	require.Equal(t, 2, c.NumAttentionHeads)
	require.Equal(t, 1, c.NumKeyValueHeads)
	require.Equal(t, 128, c.HeadDim)
	require.Equal(t, 1e-6, c.RMSNormEps)
	require.Equal(t, 1e6, c.RopeTheta)
	require.Equal(t, &RopeScaling{Type: "yarn", Factor: 4, OriginalMaxPositionEmbeddings: 16384}, c.RopeScaling)
	require.Equal(t, 65536, c.MaxPositionEmbeddings)
	require.Equal(t, 151669, c.VocabSize)
	require.False(t, c.TieWordEmbeddings)
	require.Equal(t, 151643, c.BOSTokenID)
	require.Equal(t, 151645, c.EOSTokenID)
	require.Equal(t, Quantization{GroupSize: 128, Bits: 1}, c.Quantization)
	tok, err := os.ReadFile(filepath.Join(dir, TokenizerFile))
	require.NoError(t, err)
	require.Equal(t, tok, m.TokenizerJSON)
	require.NotEmpty(t, m.TokenizerConfigJSON)

	g, err := gguf.Open(testenv.Shared(t, "oracle", "qwen3vocab-q1.gguf"))
	require.NoError(t, err)
	defer g.Close()
	for name, mat := range m.Matrices {
		gn := ggufName(name)
		ti, ok := g.Tensor(gn)
		require.True(t, ok, "%s -> %q", name, gn)
		require.Equal(t, gguf.TypeQ1_0, ti.Type, gn)
		require.Len(t, ti.Dims, 2, gn)
		want, err := q1.FromQ1_0(gn, int(ti.Dims[1]), int(ti.Dims[0]), g.Data(ti))
		require.NoError(t, err)
		require.Equal(t, [2]int{want.Rows, want.Cols}, [2]int{mat.Rows, mat.Cols}, name)
		require.Equal(t, q1.ScaleNegF16, mat.Kind, name)
		for r := 0; r < want.Rows; r++ {
			for gi := 0; gi < want.Groups; gi++ {
				if want.Scale(r, gi) != mat.Scale(r, gi) || string(want.GroupSigns(r, gi)) != string(mat.GroupSigns(r, gi)) {
					t.Fatalf("%s row %d group %d: mlx d=%g signs %x, gguf d=%g signs %x", name, r, gi,
						mat.Scale(r, gi), mat.GroupSigns(r, gi), want.Scale(r, gi), want.GroupSigns(r, gi))
				}
			}
		}
	}
	for name, v := range m.Vectors {
		gn := ggufName(name)
		ti, ok := g.Tensor(gn)
		require.True(t, ok, "%s -> %q", name, gn)
		require.Equal(t, gguf.TypeF32, ti.Type, gn)
		data := g.Data(ti)
		require.Len(t, data, 4*len(v), gn)
		for i, x := range v {
			require.Equal(t, math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])), x, "%s[%d]", name, i)
		}
	}
}
