package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

func init() { register(testmodelCommand()) }

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
			&cli.Uint64Flag{Name: "seed", Usage: "random seed (default: the preset's)"},
			&cli.IntFlag{Name: "layers"}, &cli.IntFlag{Name: "hidden"}, &cli.IntFlag{Name: "ffn"},
			&cli.IntFlag{Name: "heads"}, &cli.IntFlag{Name: "kv-heads"}, &cli.IntFlag{Name: "head-dim"},
			&cli.IntFlag{Name: "vocab"}, &cli.BoolFlag{Name: "tied"}, &cli.BoolFlag{Name: "yarn"},
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
