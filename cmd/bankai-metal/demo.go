package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/bfs"
	"github.com/bankai-metal/bankai-metal/runtime"
)

func init() { register(demoCommand()) }

// demoIters is the demo's default search length (--iters).
const demoIters = 400

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "the whole workflow on a small model: search a patch, evaluate before and after, apply and revert",
		Description: "Runs, on builtin:tiny unless -m says otherwise:\n" +
			"  1. search: greedy patch search on the built-in math probes, protecting the knowledge probes;\n" +
			"  2. eval: every probe's log-prob gap without and with the patch, fixed/broken counts;\n" +
			"  3. apply + revert in memory, checking that the model's bits come back exactly.\n" +
			"The tiny model has random weights, so its answers are gibberish: the point is the machinery.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Value: "builtin:tiny", Usage: "model to run on"},
			&cli.StringFlag{Name: "target", Value: "math", Usage: "probes to improve"},
			&cli.StringFlag{Name: "control", Value: "knowledge", Usage: "probes to protect"},
			&cli.IntFlag{Name: "iters", Value: demoIters, Usage: "search candidates"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "where to keep the patch (default: a temporary directory)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		}, deviceFlags...),
		Action: runDemo,
	}
}

func runDemo(c *cli.Context) error {
	w := c.App.Writer
	start := time.Now()
	m, b, closeRun, err := openRun(c)
	if err != nil {
		return err
	}
	defer closeRun()
	fmt.Fprintf(w, "model: %s (%s, %d layers, hidden %d, %d-token vocab, fingerprint %s), backend %s\n\n",
		m.Source.Name, m.Source.Format, m.NumLayers(), m.Hidden, m.Vocab, m.Fingerprint(), b.Name())

	opts := bfs.DefaultSearchOptions()
	if opts.Target, err = bfs.LoadProbeList(c.String("target")); err != nil {
		return err
	}
	if err := distinctProbeSets(c.String("target"), c.String("control")); err != nil {
		return err
	}
	if opts.Control, err = bfs.LoadProbeList(c.String("control")); err != nil {
		return err
	}
	opts.Iters = c.Int("iters")
	bar := newProgressBar(c.App.ErrWriter, c.Bool("quiet"))
	opts.Callbacks.Progress = bar.search
	ctx, stop := signalContext(c.Context)
	defer stop()

	fmt.Fprintf(w, "1. search: %d candidates, gate/up rows of layers %v, target %s, control %s, lambda %g\n",
		opts.Iters, bfs.DefaultLayers(m.NumLayers()), c.String("target"), c.String("control"), opts.Lambda)
	res, err := bfs.Search(ctx, b, opts)
	bar.done()
	if err != nil {
		return err
	}
	r := res.Report
	if r.Interrupted {
		return interruptedExit(ctx, "the demo was stopped during its search")
	}
	out := c.String("out")
	if out == "" {
		dir, err := os.MkdirTemp("", "bankai-demo-")
		if err != nil {
			return err
		}
		out = filepath.Join(dir, "demo-patch.json")
	}
	if err := res.Patch.Save(out); err != nil {
		return err
	}
	fmt.Fprintf(w, "   accepted %d of %d candidates (%d screened out), fitness %+.4f, %.1fs -> %s\n\n",
		len(r.Accepted), r.Iterations, r.ScreenedOut, r.Fitness, r.Timings.Total, out)

	fmt.Fprintln(w, "2. eval: log-prob gap (correct answer minus distractor) without and with the patch")
	rep, err := bfs.Eval(ctx, b, bfs.EvalOptions{Metric: opts.Metric, Sets: append(append([]*bfs.ProbeSet{}, opts.Target...), opts.Control...), Flips: res.Patch.Flips})
	if err != nil {
		return err
	}
	printEval(w, rep)

	fmt.Fprintln(w, "\n3. apply and revert in memory (XOR is its own inverse)")
	before := m.ContentFingerprint()
	applied := runtime.NewApplied(b) // the backend follows the flips
	t0 := time.Now()
	if err := applied.Apply(res.Patch, false); err != nil {
		return err
	}
	tApply := time.Since(t0)
	patched := m.ContentFingerprint()
	t0 = time.Now()
	if err := applied.Revert(res.Patch.Name); err != nil {
		return err
	}
	tRevert := time.Since(t0)
	after := m.ContentFingerprint()
	st, err := res.Patch.Stats(m)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "   %d flips = %d sign bits: apply %s, revert %s; fingerprint %s -> %s -> %s (restored: %v)\n",
		st.Flips, st.BitsFlipped, tApply, tRevert, before, patched, after, before == after)
	fmt.Fprintf(w, "\ndone in %.1fs. Next: bankai-metal eval -m %s --patch %s --probes %s --greedy\n",
		time.Since(start).Seconds(), c.String("model"), out, c.String("target"))
	return nil
}
