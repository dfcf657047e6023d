package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

func init() { register(testmodelCommand()) }

// presetDefault is the default text of testmodel's flags that override the --shape preset.
const presetDefault = "the preset's"

// sizeFlag is a testmodel flag overriding one size of the preset.
func sizeFlag(name, usage string) *cli.IntFlag {
	return &cli.IntFlag{Name: name, Usage: usage, DefaultText: presetDefault}
}

func testmodelCommand() *cli.Command {
	var shapes []string
	for k := range synth.Presets {
		shapes = append(shapes, k)
	}
	sort.Strings(shapes)
	return &cli.Command{
		Name:  "testmodel",
		Usage: "generate a random Bonsai-format model (GGUF or MLX directory), deterministic from a seed",
		Description: "Writes a Qwen3 model with random 1-bit weights in the exact Bonsai formats, for tests,\n" +
			"benchmarks and demos. Shapes: " + strings.Join(shapes, ", ") + "; override any size with flags.\n\n" +
			"Example: bankai-metal testmodel --shape 8b -o /tmp/synthetic-8b.gguf",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "output file (.gguf) or directory (--mlx)"},
			&cli.StringFlag{Name: "shape", Value: "tiny", Usage: "preset shape: " + strings.Join(shapes, ", ")},
			&cli.BoolFlag{Name: "mlx", Usage: "write an MLX 1-bit directory instead of GGUF"},
			&cli.Uint64Flag{Name: "seed", Usage: "random seed", DefaultText: presetDefault},
			sizeFlag("layers", "decoder layers"), sizeFlag("hidden", "hidden size"), sizeFlag("ffn", "MLP inner size"),
			sizeFlag("heads", "attention heads"), sizeFlag("kv-heads", "key/value heads"), sizeFlag("head-dim", "size of one head"),
			sizeFlag("vocab", "vocabulary size"),
			&cli.BoolFlag{Name: "tied", Usage: "tie the LM head to the embedding", DefaultText: presetDefault},
			&cli.BoolFlag{Name: "yarn", Usage: "YaRN rope scaling", DefaultText: presetDefault},
		},
		Action: func(c *cli.Context) error {
			preset, ok := synth.Presets[c.String("shape")]
			if !ok {
				return fmt.Errorf("unknown --shape %q (want one of %s)", c.String("shape"), strings.Join(shapes, ", "))
			}
			s := preset()
			for _, o := range []struct {
				flag string
				dst  *int
			}{{"layers", &s.Layers}, {"hidden", &s.Hidden}, {"ffn", &s.FFN}, {"heads", &s.Heads},
				{"kv-heads", &s.KVHeads}, {"head-dim", &s.HeadDim}, {"vocab", &s.Vocab}} {
				if c.IsSet(o.flag) {
					if c.Int(o.flag) < 1 {
						return fmt.Errorf("--%s %d: want a positive size", o.flag, c.Int(o.flag))
					}
					*o.dst = c.Int(o.flag)
				}
			}
			if c.IsSet("seed") {
				s.Seed = c.Uint64("seed")
			}
			if c.IsSet("tied") {
				s.Tied = c.Bool("tied")
			}
			if c.IsSet("yarn") {
				s.Yarn = c.Bool("yarn")
			}
			if c.Bool("mlx") {
				return s.WriteMLX(c.String("out"))
			}
			return s.WriteGGUF(c.String("out"))
		},
	}
}
