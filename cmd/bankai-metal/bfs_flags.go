package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/bfs"
)

// probeHelp lists the built-in probe sets for --help.
func probeHelp() string { return strings.Join(bfs.BuiltinSets(), ", ") }

// candidateFlags choose the candidate flips: layers, projections, granularity.
func candidateFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "layers", Usage: "comma-separated layers (default: upstream's 1,2,3,4 and N-2, clamped to the model)"},
		&cli.StringFlag{Name: "proj", Value: "gate_proj,up_proj", Usage: "projections: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj (or GGUF names)"},
		&cli.StringFlag{Name: "granularity", Value: "row", Usage: "flip unit: row, group (128 weights) or bit"},
		&cli.StringFlag{Name: "metric", Value: "seq_logprob", Usage: "seq_logprob (whole-answer log-prob gap) or token_gap (logit gap at the first differing token)"},
		&cli.Float64Flag{Name: "lambda", Value: bfs.DefaultLambda, Usage: "control penalty: fitness = target gain - lambda * control loss"},
		&cli.StringFlag{Name: "fitness", Value: "mean", Usage: "mean or min over the target probes"},
	}
}

// probeFlags name the target and control probe sets.
func probeFlags(controlDefault string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "target", Aliases: []string{"t"},
			Usage: "probes to improve (required): a built-in set (" + probeHelp() + ") or a JSON file; comma-separated for several"},
		&cli.StringFlag{Name: "control", Aliases: []string{"c"}, Value: controlDefault,
			Usage: "probes to protect (default: the other built-in sets of math, code, knowledge); \"none\" for none"},
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

// candidateOptions reads candidateFlags.
func candidateOptions(c *cli.Context) (layers []int, projs []string, g bfs.Granularity, m bfs.Metric, f bfs.FitnessMode, err error) {
	if layers, err = parseInts(c.String("layers")); err != nil {
		return nil, nil, 0, 0, 0, fmt.Errorf("--layers: %w", err)
	}
	projs = splitList(c.String("proj"))
	if g, err = bfs.ParseGranularity(c.String("granularity")); err != nil {
		return nil, nil, 0, 0, 0, fmt.Errorf("--granularity: %w", err)
	}
	if m, err = bfs.ParseMetric(c.String("metric")); err != nil {
		return nil, nil, 0, 0, 0, fmt.Errorf("--metric: %w", err)
	}
	if f, err = bfs.ParseFitnessMode(c.String("fitness")); err != nil {
		return nil, nil, 0, 0, 0, fmt.Errorf("--fitness: %w", err)
	}
	return layers, projs, g, m, f, nil
}

// probeSets reads --target and --control.
func probeSets(c *cli.Context) (target, control []*bfs.ProbeSet, err error) {
	if c.String("target") == "" {
		return nil, nil, fmt.Errorf("--target is required (a built-in set: %s, or a probe file)", probeHelp())
	}
	if target, err = bfs.LoadProbeList(c.String("target")); err != nil {
		return nil, nil, fmt.Errorf("--target: %w", err)
	}
	ctl := c.String("control")
	if ctl == "" {
		ctl = strings.Join(bfs.DefaultControls(c.String("target")), ",")
	}
	if ctl != "none" && ctl != "" {
		if control, err = bfs.LoadProbeList(ctl); err != nil {
			return nil, nil, fmt.Errorf("--control: %w", err)
		}
	}
	return target, control, nil
}
