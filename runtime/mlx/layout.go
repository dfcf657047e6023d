package mlx

import (
	"fmt"
	"github.com/bankai-metal/bankai-metal/patch"
	"sort"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// linearsPerLayer is the number of quantised linears in one Qwen3 layer (q, k, v, o, gate, up, down).
const linearsPerLayer = 7

// wantMatrix is the shape config.json implies for one linear; rows < 0 means any.
type wantMatrix struct {
	rows, cols int
	from       string // the config keys the shape comes from, for error messages
}

// wantVector is the length config.json implies for one norm vector.
type wantVector struct {
	n    int
	from string
}

// ModulePrefix is the Hugging Face module holding projection i (patch's order): "self_attn."
// for q, k, v and o, "mlp." for gate, up and down.
func ModulePrefix(i int) string {
	if i < 4 {
		return "self_attn."
	}
	return "mlp."
}

// checkLayout checks that the matrices and vectors are exactly the Qwen3 tensors cfg calls for
// (docs/FORMATS.md §8.2), with the shapes it implies. The vocabulary is sized by the embedding rows.
func checkLayout(c Config, mats map[string]*q1.Matrix, vecs map[string][]float32) error {
	// Bound the loop below by what the files hold, not by the config's number.
	if need := c.NumHiddenLayers*linearsPerLayer + 1; need > len(mats) {
		return fmt.Errorf("mlx: config.json num_hidden_layers %d needs at least %d quantised matrices, the files hold %d: %w",
			c.NumHiddenLayers, need, len(mats), ErrFormat)
	}
	h, hd, ff := c.HiddenSize, c.HeadDim, c.IntermediateSize
	q, kv := c.NumAttentionHeads*hd, c.NumKeyValueHeads*hd
	const (
		attnQ  = "num_attention_heads*head_dim x hidden_size"
		attnKV = "num_key_value_heads*head_dim x hidden_size"
		attnO  = "hidden_size x num_attention_heads*head_dim"
		ffnIn  = "intermediate_size x hidden_size"
		ffnOut = "hidden_size x intermediate_size"
	)
	projs := [patch.NumProj]wantMatrix{ // in patch's projection order: q k v o gate up down
		{q, h, attnQ}, {kv, h, attnKV}, {kv, h, attnKV}, {h, q, attnO}, {ff, h, ffnIn}, {ff, h, ffnIn}, {h, ff, ffnOut}}
	wantM := map[string]wantMatrix{"model.embed_tokens": {-1, h, "vocabulary x hidden_size"}}
	wantV := map[string]wantVector{"model.norm.weight": {h, "hidden_size"}}
	for l := 0; l < c.NumHiddenLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		for i, w := range projs {
			wantM[p+ModulePrefix(i)+patch.ProjName(i)] = w
		}
		wantV[p+"input_layernorm.weight"] = wantVector{h, "hidden_size"}
		wantV[p+"post_attention_layernorm.weight"] = wantVector{h, "hidden_size"}
		wantV[p+"self_attn.q_norm.weight"] = wantVector{hd, "head_dim"}
		wantV[p+"self_attn.k_norm.weight"] = wantVector{hd, "head_dim"}
	}
	vocab := -1
	if e := mats["model.embed_tokens"]; e != nil {
		vocab = e.Rows
	}
	// A tied model may still carry an lm_head; then it must look like the embedding.
	if _, ok := mats["lm_head"]; ok || !c.TieWordEmbeddings {
		wantM["lm_head"] = wantMatrix{vocab, h, "embedding rows x hidden_size"}
	}

	for _, name := range sortedKeys(wantM) {
		w := wantM[name]
		m := mats[name]
		if m == nil {
			return fmt.Errorf("mlx: quantised linear %q is missing (config.json: num_hidden_layers %d, tie_word_embeddings %v): %w",
				name, c.NumHiddenLayers, c.TieWordEmbeddings, ErrFormat)
		}
		if (w.rows >= 0 && m.Rows != w.rows) || m.Cols != w.cols {
			return fmt.Errorf("mlx: %s: weight is %d x %d (out x in), config.json implies %s x %d (%s): %w",
				name, m.Rows, m.Cols, rowsText(w.rows), w.cols, w.from, ErrFormat)
		}
	}
	for _, name := range sortedKeys(mats) {
		if _, ok := wantM[name]; !ok {
			return fmt.Errorf("mlx: unexpected quantised linear %q (config.json: num_hidden_layers %d): %w", name, c.NumHiddenLayers, ErrFormat)
		}
	}
	for _, name := range sortedKeys(wantV) {
		w := wantV[name]
		v, ok := vecs[name]
		if !ok {
			return fmt.Errorf("mlx: norm weight %q is missing (config.json: num_hidden_layers %d): %w", name, c.NumHiddenLayers, ErrFormat)
		}
		if len(v) != w.n {
			return fmt.Errorf("mlx: %s: %d values, config.json %s is %d: %w", name, len(v), w.from, w.n, ErrFormat)
		}
	}
	for _, name := range sortedKeys(vecs) {
		if _, ok := wantV[name]; !ok {
			return fmt.Errorf("mlx: unexpected tensor %q (config.json: num_hidden_layers %d): %w", name, c.NumHiddenLayers, ErrFormat)
		}
	}
	return nil
}

func rowsText(rows int) string {
	if rows < 0 {
		return "any"
	}
	return fmt.Sprint(rows)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
