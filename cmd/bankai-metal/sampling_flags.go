package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/runtime"
)

// defaultCtx caps the default context limit (the model's trained one can be 65,536 tokens).
const defaultCtx = 4096

// generationFlags are the flags generate and chat share: sampling, limits and chat formatting.
// Defaults are Bonsai's recommended sampling settings (runtime.DefaultSampler).
func generationFlags() []cli.Flag {
	d := runtime.DefaultSampler()
	return append([]cli.Flag{
		&cli.Float64Flag{Name: "temp", Value: float64(d.Temperature), Usage: "temperature; 0 = greedy (argmax)"},
		&cli.IntFlag{Name: "top-k", Value: d.TopK, Usage: "sample among the K most likely tokens; 0 = off"},
		&cli.Float64Flag{Name: "top-p", Value: round32(d.TopP), Usage: "nucleus sampling: smallest set of tokens with this probability mass; 1 = off"},
		&cli.Float64Flag{Name: "min-p", Value: round32(d.MinP), Usage: "drop tokens less likely than this fraction of the best one; 0 = off"},
		&cli.Float64Flag{Name: "repeat-penalty", Value: round32(d.RepeatPenalty), Usage: "penalise recently seen tokens (llama.cpp style); 1 = off"},
		&cli.IntFlag{Name: "repeat-last-n", Value: d.RepeatLastN, Usage: "how many recent tokens the repeat penalty looks at; -1 = all"},
		&cli.Uint64Flag{Name: "seed", Usage: "random seed, for reproducible sampling", DefaultText: "a random one"},
		&cli.IntFlag{Name: "max-tokens", Aliases: []string{"n"}, Usage: "stop an answer after N tokens; 0 = at the end of the turn or the context limit"},
		&cli.IntFlag{Name: "ctx", Usage: "context limit in tokens (at most the model's)",
			DefaultText: fmt.Sprintf("the model's, at most %d", defaultCtx)},
		&cli.StringFlag{Name: "system", Usage: "system message"},
		&cli.BoolFlag{Name: "think", Usage: "let the model reason in a <think> block first (off: the template's empty think block)"},
		numericsFlag,
	}, runFlags()...)
}

// round32 turns a float32 setting into the float64 a person would type (0.85, not 0.8500000238).
func round32(v float32) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
	return f
}

// samplerFromFlags reads the sampling flags; without --seed the seed is random.
func samplerFromFlags(c *cli.Context) (runtime.SamplerConfig, error) {
	cfg := runtime.SamplerConfig{
		Temperature: float32(c.Float64("temp")), TopK: c.Int("top-k"), TopP: float32(c.Float64("top-p")),
		MinP: float32(c.Float64("min-p")), RepeatPenalty: float32(c.Float64("repeat-penalty")),
		RepeatLastN: c.Int("repeat-last-n"), Seed: c.Uint64("seed"),
	}
	if !c.IsSet("seed") {
		cfg.Seed = rand.Uint64()
	}
	if c.Int("max-tokens") < 0 {
		return cfg, fmt.Errorf("--max-tokens %d: want 0 (no limit) or more", c.Int("max-tokens"))
	}
	return cfg, checkSampler(cfg)
}

// checkSampler rejects settings outside their meaningful ranges (NaN and infinities too).
func checkSampler(cfg runtime.SamplerConfig) error {
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	switch {
	case !finite(cfg.Temperature) || cfg.Temperature < 0:
		return fmt.Errorf("temperature %g: want 0 (greedy) or more", cfg.Temperature)
	case cfg.TopK < 0:
		return fmt.Errorf("top-k %d: want 0 (off) or more", cfg.TopK)
	case !finite(cfg.TopP) || cfg.TopP < 0 || cfg.TopP > 1:
		return fmt.Errorf("top-p %g: want a value in [0, 1]", cfg.TopP)
	case !finite(cfg.MinP) || cfg.MinP < 0 || cfg.MinP > 1:
		return fmt.Errorf("min-p %g: want a value in [0, 1]", cfg.MinP)
	case !finite(cfg.RepeatPenalty) || cfg.RepeatPenalty <= 0:
		return fmt.Errorf("repeat penalty %g: want a positive number (1 = off)", cfg.RepeatPenalty)
	case cfg.RepeatLastN < -1:
		return fmt.Errorf("repeat-last-n %d: want -1 (all), 0 (off) or more", cfg.RepeatLastN)
	}
	return nil
}

// modelContext is the model's trained context length, or defaultCtx when it declares none.
func modelContext(m *runtime.Model) int {
	if m.Context > 0 {
		return m.Context
	}
	return defaultCtx
}

// contextSize is --ctx, or the model's trained context capped at defaultCtx. A --ctx above the
// model's context is lowered to it, with a warning on stderr.
func contextSize(c *cli.Context, m *runtime.Model) (int, error) {
	n := c.Int("ctx")
	switch {
	case n < 0:
		return 0, fmt.Errorf("--ctx %d: want a positive number of tokens", n)
	case n == 0:
		return min(defaultCtx, modelContext(m)), nil
	case n > modelContext(m):
		limit := modelContext(m)
		fmt.Fprintf(c.App.ErrWriter, "bankai-metal: warning: --ctx %d is more than the model's context of %d tokens; using %d\n",
			n, limit, limit)
		return limit, nil
	}
	return n, nil
}

// chatSetting is one parameter that `/set NAME VALUE` changes in the chat.
type chatSetting struct {
	names []string // the first is shown in help
	help  string
	set   func(ch *chatSession, v string) error
	show  func(ch *chatSession) string
}

// chatSettings lists the parameters /set knows, in the order /set shows them.
var chatSettings = []chatSetting{
	floatSetting([]string{"temp", "temperature"}, "temperature; 0 = greedy", func(c *runtime.SamplerConfig) *float32 { return &c.Temperature }),
	intSetting([]string{"top-k", "topk"}, "sample among the K most likely tokens; 0 = off", func(c *runtime.SamplerConfig) *int { return &c.TopK }),
	floatSetting([]string{"top-p", "topp"}, "nucleus mass; 1 = off", func(c *runtime.SamplerConfig) *float32 { return &c.TopP }),
	floatSetting([]string{"min-p", "minp"}, "minimum probability relative to the best token; 0 = off", func(c *runtime.SamplerConfig) *float32 { return &c.MinP }),
	floatSetting([]string{"repeat-penalty"}, "repetition penalty; 1 = off", func(c *runtime.SamplerConfig) *float32 { return &c.RepeatPenalty }),
	intSetting([]string{"repeat-last-n"}, "tokens the repetition penalty looks at; -1 = all", func(c *runtime.SamplerConfig) *int { return &c.RepeatLastN }),
	{names: []string{"seed"}, help: "random seed (restarts the random stream)",
		set: func(ch *chatSession, v string) error {
			s, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return fmt.Errorf("seed %q: want a non-negative integer", v)
			}
			ch.cfg.Seed = s
			return nil
		},
		show: func(ch *chatSession) string { return strconv.FormatUint(ch.cfg.Seed, 10) }},
	{names: []string{"max-tokens", "max", "n"}, help: "answer length limit; 0 = none",
		set: func(ch *chatSession, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("max tokens %q: want 0 (no limit) or more", v)
			}
			ch.maxTokens = n
			return nil
		},
		show: func(ch *chatSession) string { return strconv.Itoa(ch.maxTokens) }},
	{names: []string{"think"}, help: "on: the model reasons in a <think> block first",
		set: func(ch *chatSession, v string) error {
			b, err := parseOnOff(v)
			if err == nil && b != ch.think {
				ch.think, ch.appendOK = b, false
			}
			return err
		},
		show: func(ch *chatSession) string { return map[bool]string{true: "on", false: "off"}[ch.think] }},
	{names: []string{"system"}, help: "system message (the rest of the line; empty: none)",
		set: func(ch *chatSession, v string) error {
			if v != ch.system {
				ch.system, ch.appendOK = v, false
			}
			return nil
		},
		show: func(ch *chatSession) string { return strconv.Quote(ch.system) }},
}

func floatSetting(names []string, help string, field func(*runtime.SamplerConfig) *float32) chatSetting {
	return chatSetting{names: names, help: help,
		set: func(ch *chatSession, v string) error {
			f, err := strconv.ParseFloat(v, 32)
			if err != nil {
				return fmt.Errorf("%s %q: not a number", names[0], v)
			}
			cfg := ch.cfg
			*field(&cfg) = float32(f)
			if err := checkSampler(cfg); err != nil {
				return err
			}
			ch.cfg = cfg
			return nil
		},
		show: func(ch *chatSession) string { return strconv.FormatFloat(float64(*field(&ch.cfg)), 'g', -1, 32) }}
}

func intSetting(names []string, help string, field func(*runtime.SamplerConfig) *int) chatSetting {
	return chatSetting{names: names, help: help,
		set: func(ch *chatSession, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s %q: not an integer", names[0], v)
			}
			cfg := ch.cfg
			*field(&cfg) = n
			if err := checkSampler(cfg); err != nil {
				return err
			}
			ch.cfg = cfg
			return nil
		},
		show: func(ch *chatSession) string { return strconv.Itoa(*field(&ch.cfg)) }}
}

func parseOnOff(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "true", "yes", "1":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q: want on or off", v)
}

// findSetting looks a /set parameter up by any of its names ("max tokens" works as "max-tokens").
func findSetting(name string) (chatSetting, bool) {
	name = strings.ReplaceAll(strings.ToLower(name), "_", "-")
	for _, s := range chatSettings {
		for _, n := range s.names {
			if n == name {
				return s, true
			}
		}
	}
	return chatSetting{}, false
}

// chatSet shows every setting, or changes one: "/set NAME VALUE" (two-word names such as
// "max tokens" work too).
func chatSet(ch *chatSession, args string) error {
	if args == "" {
		tw := tabwriter.NewWriter(ch.out, 0, 0, 2, ' ', 0)
		for _, s := range chatSettings {
			fmt.Fprintf(tw, "  %s\t%s\n", s.names[0], s.show(ch))
		}
		return tw.Flush()
	}
	name, value, _ := strings.Cut(args, " ")
	value = strings.TrimSpace(value)
	s, ok := findSetting(name)
	if w, rest, _ := strings.Cut(value, " "); w != "" {
		if s2, ok2 := findSetting(name + "-" + w); ok2 {
			s, ok, value = s2, true, strings.TrimSpace(rest)
		}
	}
	if !ok {
		return fmt.Errorf("unknown parameter %q (/set lists them)", name)
	}
	if value == "" && s.names[0] != "system" {
		return fmt.Errorf("/set %s needs a value", s.names[0])
	}
	if err := s.set(ch, value); err != nil {
		return err
	}
	ch.sampler = runtime.NewSampler(ch.cfg)
	ch.note("%s = %s", s.names[0], s.show(ch))
	return nil
}
