package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/bfs"
	"github.com/bankai-metal/bankai-metal/patch"
)

func init() { register(evalCommand()) }

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "score probes without and with a patch: per-probe gaps, greedy answers, fixed/broken counts",
		Description: "For each probe: the metric gap (correct minus distractor) on the base model and with the\n" +
			"patch, and with --greedy the greedy answer before and after (up to --max-tokens, by default\n" +
			fmt.Sprintf("upstream's %d tokens, and upstream's matcher). Counts: fixed (wrong -> right), broke\n", bfs.MaxGreedyTokens) +
			"(right -> wrong), unchanged.\n\n" +
			"Example: bankai-metal eval -m Bonsai-8B.gguf --patch calc.json --probes exp12_val --greedy",
		Flags: append([]cli.Flag{modelFlag,
			&cli.StringFlag{Name: "patch", Aliases: []string{"p"}, Usage: "the patch to evaluate (omit to score the model alone)"},
			&cli.BoolFlag{Name: "force", Usage: "evaluate a patch made for another model"},
			&cli.StringSliceFlag{Name: "probes", Required: true, Usage: "built-in set (" + probeHelp() + ") or JSON file; repeatable or comma-separated"},
			&cli.StringFlag{Name: "metric", Value: "seq_logprob", Usage: "seq_logprob or token_gap"},
			&cli.BoolFlag{Name: "greedy", Usage: "also decode every prompt greedily and judge the answers"},
			&cli.IntFlag{Name: "max-tokens", Value: bfs.MaxGreedyTokens, Usage: "greedy answer length"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		}, deviceFlags...),
		Action: runEval,
	}
}

func runEval(c *cli.Context) error {
	var opts bfs.EvalOptions
	var err error
	if opts.Metric, err = bfs.ParseMetric(c.String("metric")); err != nil {
		return fmt.Errorf("--metric: %w", err)
	}
	type source struct {
		arg string // the --probes entry it came from
		set *bfs.ProbeSet
	}
	var sources []source
	for _, list := range c.StringSlice("probes") {
		for _, arg := range strings.Split(list, ",") {
			if arg = strings.TrimSpace(arg); arg == "" {
				continue
			}
			set, err := bfs.LoadProbes(arg)
			if err != nil {
				return fmt.Errorf("--probes: %w", err)
			}
			sources = append(sources, source{arg, set})
			opts.Sets = append(opts.Sets, set)
		}
	}
	if len(opts.Sets) == 0 {
		return fmt.Errorf("--probes: no probe sets given")
	}
	opts.Greedy, opts.MaxTokens = c.Bool("greedy"), c.Int("max-tokens")
	if opts.MaxTokens < 1 {
		return fmt.Errorf("--max-tokens %d: want 1 or more", opts.MaxTokens)
	}
	// --patch here names the patch under evaluation, so the model is loaded without patches.
	m, err := loadPath(c.String("model"))
	if err != nil {
		return err
	}
	defer m.Close()
	// Every probe must fit in the model's context: checked (naming the file and the probe)
	// before any work.
	tok, err := m.Tokenizer()
	if err != nil {
		return err
	}
	greedy := 0
	if opts.Greedy {
		greedy = opts.MaxTokens
	}
	for _, s := range sources {
		if _, err := bfs.CheckProbeSet(tok, s.set, m.Context, greedy); err != nil {
			return fmt.Errorf("--probes %s: %w", s.arg, err)
		}
	}
	if pf := c.String("patch"); pf != "" {
		p, err := patch.Load(pf)
		if err != nil {
			return err
		}
		if err := p.Validate(m); err != nil {
			return err
		}
		switch fp := m.Fingerprint(); {
		case p.Fingerprint == "":
			fmt.Fprintf(c.App.ErrWriter, "warning: patch %q has no model fingerprint; evaluating it anyway\n", p.Name)
		case p.Fingerprint != fp && !c.Bool("force"):
			return fmt.Errorf("patch %q was made for model %s, this model is %s (--force to evaluate anyway)", p.Name, p.Fingerprint, fp)
		}
		opts.Flips = p.Flips
	}
	b, err := newBackend(c, m)
	if err != nil {
		return err
	}
	defer b.Close()
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
	defer stop()
	rep, err := bfs.Eval(ctx, b, opts)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		e := json.NewEncoder(c.App.Writer)
		e.SetIndent("", "  ")
		return e.Encode(rep)
	}
	printEval(c.App.Writer, rep)
	return nil
}

// printEval prints the per-probe table and the counts.
func printEval(w io.Writer, rep *bfs.EvalReport) {
	fmt.Fprintf(w, "%-10s %-22s %9s %9s %9s  %s\n", "set", "probe", "base", "patched", "delta", "verdict")
	for _, p := range rep.Probes {
		fmt.Fprintf(w, "%-10s %-22s %+9.3f %+9.3f %+9.3f  %s\n", trunc(p.Set, 10), trunc(p.Name, 22), p.Base, p.Patched, p.Delta,
			verdict(p.Base > 0, p.Patched > 0))
		if rep.Greedy != nil {
			fmt.Fprintf(w, "%34s before %q -> after %q (%s)\n", "", p.BaseText, p.PatchedText, verdict(p.BaseCorrect, p.PatchedCorrect))
		}
	}
	g := rep.Gap
	fmt.Fprintf(w, "\n%s gaps (%d flips): %d/%d right before, %d/%d after: %d fixed, %d broke, %d unchanged\n",
		rep.Metric, rep.Flips, g.Before, g.Total, g.After, g.Total, g.Fixed, g.Broke, g.Unchanged)
	if gr := rep.Greedy; gr != nil {
		fmt.Fprintf(w, "greedy answers: %d/%d right before, %d/%d after: %d fixed, %d broke, %d unchanged\n",
			gr.Before, gr.Total, gr.After, gr.Total, gr.Fixed, gr.Broke, gr.Unchanged)
	}
}

func verdict(before, after bool) string {
	switch {
	case !before && after:
		return "fixed"
	case before && !after:
		return "broke"
	case before:
		return "right"
	}
	return "wrong"
}
