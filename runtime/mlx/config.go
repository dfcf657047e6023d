package mlx

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// maxDim bounds every size in config.json so that products of two sizes cannot overflow.
const maxDim = 1 << 24

// Config holds the fields of a Hugging Face Qwen3 config.json that the runtime uses.
type Config struct {
	ModelType             string
	Architectures         []string
	HiddenSize            int
	IntermediateSize      int
	NumHiddenLayers       int
	NumAttentionHeads     int
	NumKeyValueHeads      int
	HeadDim               int // hidden_size / num_attention_heads when absent
	RMSNormEps            float64
	RopeTheta             float64
	MaxPositionEmbeddings int // 0 when absent
	VocabSize             int // as declared; may exceed the embedding rows (Bonsai says 151936 for 151669 rows)
	TieWordEmbeddings     bool
	RopeScaling           *RopeScaling // nil when absent or null
	Quantization          Quantization // zero when absent
	BOSTokenID            int          // -1 when absent or null
	EOSTokenID            int          // -1 when absent or null; the first id when config.json gives a list
}

// RopeScaling is the rope_scaling object. Zero numbers mean the key was absent.
type RopeScaling struct {
	Type                          string  `json:"-"` // "rope_type", or the older "type"
	Factor                        float64 `json:"factor,omitempty"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings,omitempty"`
	BetaFast                      float64 `json:"beta_fast,omitempty"`
	BetaSlow                      float64 `json:"beta_slow,omitempty"`
	AttentionFactor               float64 `json:"attention_factor,omitempty"`
}

// Quantization is the "quantization" (or "quantization_config") object of an MLX config.
type Quantization struct {
	GroupSize int `json:"group_size"`
	Bits      int `json:"bits"`
}

// configJSON is config.json as read and written; the field order is the order written.
type configJSON struct {
	Architectures         []string         `json:"architectures,omitempty"`
	ModelType             string           `json:"model_type"`
	HiddenSize            int              `json:"hidden_size"`
	IntermediateSize      int              `json:"intermediate_size"`
	NumHiddenLayers       int              `json:"num_hidden_layers"`
	NumAttentionHeads     int              `json:"num_attention_heads"`
	NumKeyValueHeads      int              `json:"num_key_value_heads"`
	HeadDim               int              `json:"head_dim,omitempty"`
	RMSNormEps            float64          `json:"rms_norm_eps"`
	RopeTheta             float64          `json:"rope_theta"`
	RopeScaling           *ropeScalingJSON `json:"rope_scaling,omitempty"`
	MaxPositionEmbeddings int              `json:"max_position_embeddings,omitempty"`
	VocabSize             int              `json:"vocab_size,omitempty"`
	TieWordEmbeddings     bool             `json:"tie_word_embeddings"`
	BOSTokenID            json.RawMessage  `json:"bos_token_id,omitempty"`
	EOSTokenID            json.RawMessage  `json:"eos_token_id,omitempty"`
	Quantization          *Quantization    `json:"quantization,omitempty"`
	QuantizationConfig    *Quantization    `json:"quantization_config,omitempty"`
}

// ropeScalingJSON spells the type both ways, as recent transformers versions write it.
type ropeScalingJSON struct {
	RopeType string `json:"rope_type,omitempty"`
	Type     string `json:"type,omitempty"`
	RopeScaling
}

// ParseConfig parses and checks config.json.
func ParseConfig(data []byte) (Config, error) {
	var j configJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return Config{}, fmt.Errorf("mlx: config.json: %w (%w)", err, ErrFormat)
	}
	c := Config{
		ModelType: j.ModelType, Architectures: j.Architectures,
		HiddenSize: j.HiddenSize, IntermediateSize: j.IntermediateSize,
		NumHiddenLayers: j.NumHiddenLayers, NumAttentionHeads: j.NumAttentionHeads,
		NumKeyValueHeads: j.NumKeyValueHeads, HeadDim: j.HeadDim,
		RMSNormEps: j.RMSNormEps, RopeTheta: j.RopeTheta,
		MaxPositionEmbeddings: j.MaxPositionEmbeddings, VocabSize: j.VocabSize,
		TieWordEmbeddings: j.TieWordEmbeddings,
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"num_key_value_heads", c.NumKeyValueHeads},
	} {
		if f.v <= 0 || f.v > maxDim {
			return Config{}, fmt.Errorf("mlx: config.json: %s is %d, want 1..%d: %w", f.key, f.v, maxDim, ErrFormat)
		}
	}
	for _, f := range []struct {
		key string
		v   int
	}{{"head_dim", c.HeadDim}, {"max_position_embeddings", c.MaxPositionEmbeddings}, {"vocab_size", c.VocabSize}} {
		if f.v < 0 || f.v > maxDim {
			return Config{}, fmt.Errorf("mlx: config.json: %s is %d, want 0..%d: %w", f.key, f.v, maxDim, ErrFormat)
		}
	}
	if c.HeadDim == 0 {
		if c.HiddenSize%c.NumAttentionHeads != 0 {
			return Config{}, fmt.Errorf("mlx: config.json: no head_dim and hidden_size %d is not a multiple of num_attention_heads %d: %w",
				c.HiddenSize, c.NumAttentionHeads, ErrFormat)
		}
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return Config{}, fmt.Errorf("mlx: config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d: %w",
			c.NumAttentionHeads, c.NumKeyValueHeads, ErrFormat)
	}
	if !(c.RMSNormEps > 0) || !(c.RopeTheta > 0) {
		return Config{}, fmt.Errorf("mlx: config.json: rms_norm_eps %g and rope_theta %g must both be present and positive: %w",
			c.RMSNormEps, c.RopeTheta, ErrFormat)
	}
	if rs := j.RopeScaling; rs != nil {
		if rs.RopeType != "" && rs.Type != "" && rs.RopeType != rs.Type {
			return Config{}, fmt.Errorf("mlx: config.json: rope_scaling.rope_type %q disagrees with rope_scaling.type %q: %w",
				rs.RopeType, rs.Type, ErrFormat)
		}
		r := rs.RopeScaling
		r.Type = rs.RopeType
		if r.Type == "" {
			r.Type = rs.Type
		}
		c.RopeScaling = &r
	}
	q, qc := j.Quantization, j.QuantizationConfig
	if q != nil && qc != nil && *q != *qc {
		return Config{}, fmt.Errorf("mlx: config.json: quantization %+v disagrees with quantization_config %+v: %w", *q, *qc, ErrFormat)
	}
	if q == nil {
		q = qc
	}
	if q != nil {
		c.Quantization = *q
	}
	var err error
	if c.BOSTokenID, err = tokenID("bos_token_id", j.BOSTokenID); err != nil {
		return Config{}, err
	}
	if c.EOSTokenID, err = tokenID("eos_token_id", j.EOSTokenID); err != nil {
		return Config{}, err
	}
	return c, nil
}

// tokenID decodes an absent or null id as -1, a number, or a list of numbers (first one).
func tokenID(key string, raw json.RawMessage) (int, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return -1, nil
	}
	var id int
	if err := json.Unmarshal(raw, &id); err == nil && id >= 0 {
		return id, nil
	}
	var ids []int
	if err := json.Unmarshal(raw, &ids); err == nil && len(ids) > 0 && ids[0] >= 0 {
		return ids[0], nil
	}
	return 0, fmt.Errorf("mlx: config.json: %s is %s, want a token id or a list of them: %w", key, raw, ErrFormat)
}

// MarshalConfig encodes c as config.json, writing the quantisation block under both
// "quantization" and "quantization_config" and the rope type as both "rope_type" and "type".
func MarshalConfig(c Config) ([]byte, error) {
	j := configJSON{
		Architectures: c.Architectures, ModelType: c.ModelType,
		HiddenSize: c.HiddenSize, IntermediateSize: c.IntermediateSize,
		NumHiddenLayers: c.NumHiddenLayers, NumAttentionHeads: c.NumAttentionHeads,
		NumKeyValueHeads: c.NumKeyValueHeads, HeadDim: c.HeadDim,
		RMSNormEps: c.RMSNormEps, RopeTheta: c.RopeTheta,
		MaxPositionEmbeddings: c.MaxPositionEmbeddings, VocabSize: c.VocabSize,
		TieWordEmbeddings: c.TieWordEmbeddings,
	}
	if c.RopeScaling != nil {
		j.RopeScaling = &ropeScalingJSON{RopeType: c.RopeScaling.Type, Type: c.RopeScaling.Type, RopeScaling: *c.RopeScaling}
	}
	if c.BOSTokenID >= 0 {
		j.BOSTokenID = json.RawMessage(fmt.Sprint(c.BOSTokenID))
	}
	if c.EOSTokenID >= 0 {
		j.EOSTokenID = json.RawMessage(fmt.Sprint(c.EOSTokenID))
	}
	if c.Quantization != (Quantization{}) {
		q := c.Quantization
		j.Quantization, j.QuantizationConfig = &q, &q
	}
	out, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("mlx: config.json: %w", err)
	}
	return append(out, '\n'), nil
}
