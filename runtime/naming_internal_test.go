package runtime

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNaming checks the one per-format table: every tensor of the layout under its GGUF name
// (docs/FORMATS.md §4.1) and its MLX name (§8.2).
func TestNaming(t *testing.T) {
	cases := []struct {
		w          weight
		gguf, mlxN string
	}{
		{weight{layer: -1, role: roleEmbed}, "token_embd.weight", "model.embed_tokens.weight"},
		{weight{layer: 3, role: roleAttnNorm}, "blk.3.attn_norm.weight", "model.layers.3.input_layernorm.weight"},
		{weight{layer: 3, role: roleProj, proj: ProjQ}, "blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight"},
		{weight{layer: 3, role: roleProj, proj: ProjK}, "blk.3.attn_k.weight", "model.layers.3.self_attn.k_proj.weight"},
		{weight{layer: 3, role: roleProj, proj: ProjV}, "blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight"},
		{weight{layer: 3, role: roleQNorm}, "blk.3.attn_q_norm.weight", "model.layers.3.self_attn.q_norm.weight"},
		{weight{layer: 3, role: roleKNorm}, "blk.3.attn_k_norm.weight", "model.layers.3.self_attn.k_norm.weight"},
		{weight{layer: 3, role: roleProj, proj: ProjO}, "blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"},
		{weight{layer: 3, role: roleFFNNorm}, "blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"},
		{weight{layer: 3, role: roleProj, proj: ProjGate}, "blk.3.ffn_gate.weight", "model.layers.3.mlp.gate_proj.weight"},
		{weight{layer: 3, role: roleProj, proj: ProjUp}, "blk.3.ffn_up.weight", "model.layers.3.mlp.up_proj.weight"},
		{weight{layer: 3, role: roleProj, proj: ProjDown}, "blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight"},
		{weight{layer: -1, role: roleOutNorm}, "output_norm.weight", "model.norm.weight"},
		{weight{layer: -1, role: roleOutput}, "output.weight", "lm_head.weight"},
	}
	for _, c := range cases {
		require.Equal(t, c.gguf, ggufTensors{}.name(c.w))
		require.Equal(t, c.mlxN, mlxTensors{}.name(c.w))
	}
}
