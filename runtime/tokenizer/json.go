package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
)

// qwen2Pattern is the Split regex of Qwen2/Qwen3 tokenizer.json files, which nextPiece implements.
const qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// hfTokenizer is the part of a Hugging Face tokenizer.json this package reads.
type hfTokenizer struct {
	AddedTokens []struct {
		ID      int64  `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer   *struct{ Type string } `json:"normalizer"`
	PreTokenizer json.RawMessage        `json:"pre_tokenizer"`
	Model        struct {
		Type         string           `json:"type"`
		Vocab        map[string]int64 `json:"vocab"`
		Merges       json.RawMessage  `json:"merges"`
		ByteFallback bool             `json:"byte_fallback"`
	} `json:"model"`
}

// hfConfig is the part of a tokenizer_config.json this package reads.
type hfConfig struct {
	ChatTemplate json.RawMessage `json:"chat_template"` // a string or [{"name", "template"}]
	BOS          json.RawMessage `json:"bos_token"`     // null, a string or {"content": ...}
	EOS          json.RawMessage `json:"eos_token"`
	PAD          json.RawMessage `json:"pad_token"`
	AddBOS       bool            `json:"add_bos_token"`
}

// FromJSON builds a tokenizer from a Hugging Face tokenizer.json and, optionally (nil), its
// tokenizer_config.json, as shipped in MLX model directories. Added tokens become control tokens
// when they are marked special or look like "<|...|>" (as llama.cpp's GGUF converter types
// them, which makes the FIM tokens control although HF marks them special=false), and
// user-defined tokens otherwise. Without a config, EOS is <|im_end|> (else <|endoftext|>) and
// BOS and PAD are absent.
func FromJSON(tokenizerJSON, configJSON []byte) (*Tokenizer, error) {
	var hf hfTokenizer
	if err := json.Unmarshal(tokenizerJSON, &hf); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json: %w", err)
	}
	if err := checkPipeline(&hf); err != nil {
		return nil, err
	}
	n := len(hf.Model.Vocab) + len(hf.AddedTokens) // the id space must be dense: ids < n
	tokens := make([]string, n)                    // (n,)
	types := make([]int32, n)                      // (n,)
	maxID := int64(-1)
	for s, id := range hf.Model.Vocab {
		if id < 0 || id >= int64(n) {
			return nil, fmt.Errorf("tokenizer: tokenizer.json: vocab %q: id %d outside [0, %d)", s, id, n)
		}
		if types[id] != int32(TypeUndefined) {
			a, b := min(s, tokens[id]), max(s, tokens[id]) // map order is random; the message is not
			return nil, fmt.Errorf("tokenizer: tokenizer.json: vocab %q and %q both have id %d", a, b, id)
		}
		tokens[id], types[id] = s, int32(TypeNormal)
		maxID = max(maxID, id)
	}
	for _, a := range hf.AddedTokens {
		if a.ID < 0 || a.ID >= int64(n) {
			return nil, fmt.Errorf("tokenizer: tokenizer.json: added token %q: id %d outside [0, %d)", a.Content, a.ID, n)
		}
		// An added token may repeat a vocab entry (same id, same text); any other reuse of an
		// id would silently replace a token.
		if types[a.ID] != int32(TypeUndefined) && tokens[a.ID] != a.Content {
			return nil, fmt.Errorf("tokenizer: tokenizer.json: added token %q has id %d, which %q already has",
				a.Content, a.ID, tokens[a.ID])
		}
		ty := TypeUserDefined
		if a.Special || (strings.HasPrefix(a.Content, "<|") && strings.HasSuffix(a.Content, "|>")) {
			ty = TypeControl
		}
		tokens[a.ID], types[a.ID] = a.Content, int32(ty)
		maxID = max(maxID, a.ID)
	}
	tokens, types = tokens[:maxID+1], types[:maxID+1]
	for i := range types {
		if types[i] == int32(TypeUndefined) {
			types[i] = int32(TypeUnused) // a hole in the id space
		}
	}
	merges, err := parseMerges(hf.Model.Merges)
	if err != nil {
		return nil, err
	}

	opt := Options{BOS: -1, EOS: -1, PAD: -1, Pre: "qwen2"}
	lookup := func(s string) int32 {
		for i, tok := range tokens {
			if tok == s && s != "" && types[i] != int32(TypeUnused) {
				return int32(i)
			}
		}
		return -1
	}
	if configJSON == nil {
		if opt.EOS = lookup("<|im_end|>"); opt.EOS < 0 {
			opt.EOS = lookup("<|endoftext|>")
		}
		return build(tokens, types, merges, opt)
	}
	var cfg hfConfig
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer_config.json: %w", err)
	}
	opt.AddBOS = cfg.AddBOS
	if opt.ChatTemplate, err = chatTemplate(cfg.ChatTemplate); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *int32
	}{{"bos_token", cfg.BOS, &opt.BOS}, {"eos_token", cfg.EOS, &opt.EOS}, {"pad_token", cfg.PAD, &opt.PAD}} {
		s, err := tokenContent(f.raw)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: tokenizer_config.json: %s: %w", f.name, err)
		}
		if s == "" {
			continue
		}
		if *f.dst = lookup(s); *f.dst < 0 {
			return nil, fmt.Errorf("tokenizer: tokenizer_config.json: %s %q is not in the vocabulary", f.name, s)
		}
	}
	return build(tokens, types, merges, opt)
}

// checkPipeline rejects tokenizer.json files whose pipeline differs from the one implemented here.
func checkPipeline(hf *hfTokenizer) error {
	if hf.Model.Type != "" && hf.Model.Type != "BPE" {
		return fmt.Errorf("tokenizer: tokenizer.json: model type %q not supported (want BPE)", hf.Model.Type)
	}
	if hf.Model.ByteFallback {
		return fmt.Errorf("tokenizer: tokenizer.json: byte_fallback BPE not supported")
	}
	if hf.Normalizer == nil || hf.Normalizer.Type != "NFC" {
		return fmt.Errorf("tokenizer: tokenizer.json: only the NFC normalizer is supported")
	}
	var pre any
	if err := json.Unmarshal(hf.PreTokenizer, &pre); err != nil {
		return fmt.Errorf("tokenizer: tokenizer.json: pre_tokenizer: %w", err)
	}
	if !hasRegex(pre, qwen2Pattern) {
		return fmt.Errorf("tokenizer: tokenizer.json: pre-tokenizer is not the Qwen2 split pattern")
	}
	return nil
}

// hasRegex reports whether a decoded JSON value holds {"Regex": pattern} at any depth.
func hasRegex(v any, pattern string) bool {
	switch v := v.(type) {
	case map[string]any:
		if v["Regex"] == pattern {
			return true
		}
		for _, x := range v {
			if hasRegex(x, pattern) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if hasRegex(x, pattern) {
				return true
			}
		}
	}
	return false
}

// parseMerges accepts merges as ["left right", ...] or [["left", "right"], ...].
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err == nil {
		return pairs, nil
	}
	var joined []string
	if err := json.Unmarshal(raw, &joined); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json: merges: %w", err)
	}
	pairs = make([][2]string, len(joined)) // (n_merges, 2)
	for i, m := range joined {
		l, r, ok := strings.Cut(m, " ")
		if !ok {
			return nil, fmt.Errorf("tokenizer: tokenizer.json: merge %d %q: no space between the two parts", i, m)
		}
		pairs[i] = [2]string{l, r}
	}
	return pairs, nil
}

// chatTemplate reads chat_template: a string, or a list of named templates ("default" wins).
func chatTemplate(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var named []struct{ Name, Template string }
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", fmt.Errorf("tokenizer: tokenizer_config.json: chat_template: %w", err)
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	if len(named) > 0 {
		return named[0].Template, nil
	}
	return "", nil
}

// tokenContent reads a special-token field: null, a string or {"content": ...}.
func tokenContent(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct{ Content string }
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", err
	}
	return obj.Content, nil
}
