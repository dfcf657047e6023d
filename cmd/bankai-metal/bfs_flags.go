package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/bfs"
	"github.com/bankai-metal/bankai-metal/internal/fileid"
	"github.com/bankai-metal/bankai-metal/patch"
)

// probeHelp lists the built-in probe sets for --help.
func probeHelp() string { return strings.Join(bfs.BuiltinSets(), ", ") }

// candidateFlags choose the candidate flips: layers, projections, granularity.
func candidateFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "layers", Usage: "comma-separated layers (default: upstream's 1,2,3,4 and N-2, clamped to the model)"},
		&cli.StringFlag{Name: "proj", Value: strings.Join(bfs.DefaultProjs(), ","), Usage: "projections: " + strings.Join(patch.Projections(), " ") + " (or GGUF names)"},
		&cli.StringFlag{Name: "granularity", Value: "row", Usage: "flip unit: row, group (128 weights) or bit"},
		&cli.StringFlag{Name: "metric", Value: "seq_logprob", Usage: "seq_logprob (whole-answer log-prob gap) or token_gap (logit gap at the first differing token)"},
		&cli.Float64Flag{Name: "lambda", Value: bfs.DefaultLambda, Usage: "control penalty: fitness = target gain - lambda * control loss"},
		&cli.StringFlag{Name: "fitness", Value: "mean", Usage: "mean or min over the target probes"},
	}
}

// probeFlags name the target and control probe sets. controlDefault is --control's default:
// "" for upstream's (the built-in math, code and knowledge sets other than the target), or a
// value such as "none" that help then shows as it is.
func probeFlags(controlDefault string) []cli.Flag {
	control := &cli.StringFlag{Name: "control", Aliases: []string{"c"}, Value: controlDefault,
		Usage: "probes to protect, penalised with --lambda: built-in sets or JSON files, comma-separated; \"none\" for none"}
	if controlDefault == "" {
		control.DefaultText = "the other built-in sets of math, code, knowledge"
	}
	return []cli.Flag{
		&cli.StringFlag{Name: "target", Aliases: []string{"t"},
			Usage: "probes to improve (required): a built-in set (" + probeHelp() + ") or a JSON file; comma-separated for several"},
		control,
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
	if err := distinctProbeSets(c.String("target"), ctl); err != nil {
		return nil, nil, err
	}
	if ctl != "none" && ctl != "" {
		if control, err = bfs.LoadProbeList(ctl); err != nil {
			return nil, nil, fmt.Errorf("--control: %w", err)
		}
	}
	return target, control, nil
}

// distinctProbeSets refuses a probe set named in both lists (the same built-in name, or files
// that are the same file): a set cannot be improved and protected at once.
func distinctProbeSets(target, control string) error {
	for _, t := range strings.Split(target, ",") {
		for _, c := range strings.Split(control, ",") {
			t, c := strings.TrimSpace(t), strings.TrimSpace(c)
			if t == "" || c == "" || c == "none" {
				continue
			}
			builtinT, builtinC := slices.Contains(bfs.BuiltinSets(), t), slices.Contains(bfs.BuiltinSets(), c)
			switch {
			case t == c:
				return fmt.Errorf("--target and --control both name %s: a probe set cannot be improved and protected at once", t)
			case !builtinT && !builtinC && fileid.Same(t, c):
				return fmt.Errorf("--target %s and --control %s are the same file: a probe set cannot be improved and protected at once", t, c)
			}
		}
	}
	return nil
}
