package mlx

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

const baseConfig = `{"model_type":"qwen3","hidden_size":256,"intermediate_size":512,"num_hidden_layers":1,
"num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-6,"rope_theta":1e6`

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(baseConfig + `,"eos_token_id":[151645,151643],"bos_token_id":null}`))
	require.NoError(t, err)
	require.Equal(t, 256/4, c.HeadDim, "head_dim defaults to hidden_size / num_attention_heads")
	require.Equal(t, -1, c.BOSTokenID)
	require.Equal(t, 151645, c.EOSTokenID, "a list of eos ids gives the first")
	require.Nil(t, c.RopeScaling)
	require.Equal(t, Quantization{}, c.Quantization)

	c, err = ParseConfig([]byte(baseConfig + `,"quantization_config":{"group_size":128,"bits":1},
		"rope_scaling":{"type":"yarn","factor":4.0,"beta_fast":32,"beta_slow":1}}`))
	require.NoError(t, err)
	require.Equal(t, Quantization{GroupSize: 128, Bits: 1}, c.Quantization, "quantization_config alone is accepted")
	require.Equal(t, &RopeScaling{Type: "yarn", Factor: 4, BetaFast: 32, BetaSlow: 1}, c.RopeScaling)
	require.Equal(t, -1, c.EOSTokenID)
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ name, json, want string }{
		{"not json", `{`, "mlx: config.json: "},
		{"zero hidden", `{"hidden_size":0}`, "hidden_size is 0"},
		{"quantization disagrees", baseConfig + `,"quantization":{"group_size":128,"bits":1},"quantization_config":{"group_size":64,"bits":1}}`,
			"disagrees with quantization_config"},
		{"rope types disagree", baseConfig + `,"rope_scaling":{"type":"yarn","rope_type":"linear"}}`, `rope_type "linear" disagrees`},
		{"gqa", `{"hidden_size":256,"intermediate_size":512,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":3,"rms_norm_eps":1e-6,"rope_theta":1e6}`,
			"num_attention_heads 4 is not a multiple of num_key_value_heads 3"},
		{"no eps", `{"hidden_size":256,"intermediate_size":512,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"rope_theta":1e6}`,
			"rms_norm_eps 0"},
		{"bad eos", baseConfig + `,"eos_token_id":"x"}`, `eos_token_id is "x"`},
		{"huge dim", baseConfig + `,"head_dim":1099511627776}`, "head_dim is 1099511627776"},
	} {
		_, err := ParseConfig([]byte(c.json))
		require.Error(t, err, c.name)
		require.ErrorIs(t, err, ErrFormat, c.name)
		require.Contains(t, err.Error(), c.want, c.name)
	}
}

func TestMarshalConfig(t *testing.T) {
	c := tinyConfig()
	raw, err := MarshalConfig(c)
	require.NoError(t, err)
	var keys map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &keys))
	require.JSONEq(t, `{"group_size":128,"bits":1}`, string(keys["quantization"]))
	require.JSONEq(t, `{"group_size":128,"bits":1}`, string(keys["quantization_config"]))
	require.JSONEq(t, `{"rope_type":"yarn","type":"yarn","factor":4,"original_max_position_embeddings":16384}`, string(keys["rope_scaling"]))
	back, err := ParseConfig(raw)
	require.NoError(t, err)
	require.Equal(t, c, back)
}
