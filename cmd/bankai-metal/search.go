package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/bfs"
)

func init() { register(searchCommand()) }

// defaultCheckpointInterval is how often a running search refreshes its checkpoint by default.
const defaultCheckpointInterval = 30 * time.Second

func searchCommand() *cli.Command {
	return &cli.Command{
		Name:  "search",
		Usage: "search for an XOR patch that improves target probes without hurting controls",
		Description: "Greedy hill climbing over sign flips. --mode greedy is the bankai research toolkit's algorithm:\n" +
			"scale-weighted random rows of gate/up in layers 1-4 and N-2, screened on the two worst target\n" +
			"probes, accepted on strict fitness improvement (fitness = mean target gain - lambda * mean\n" +
			"control loss). --mode fast ranks every candidate by its first-order estimate (one backward\n" +
			"pass per probe; --proposal scan scores them all exactly instead), evaluates the best exactly\n" +
			"in batches with the same acceptance, and re-estimates after a few acceptances: group and\n" +
			"bit granularity become practical. Each exact evaluation reruns only the layers from the\n" +
			"candidate's own on, many candidates per batch.\n" +
			"Deterministic for a seed whatever the batching or thread count.\n\n" +
			"Ctrl-C or SIGTERM stops early and still writes the patch found so far, the report and a\n" +
			"checkpoint (exit status 130 or 143); a checkpoint is also kept up to date while it runs\n" +
			"(--checkpoint-interval, --checkpoint-every). --resume continues it, writing where the first\n" +
			"run was going to, and ends with exactly the patch of an uninterrupted run.\n\n" +
			"Example: bankai-metal search -m Bonsai-8B.gguf --target calculus --control knowledge --iters 300 -o calc.json",
		Flags: append(append(append([]cli.Flag{modelFlag}, probeFlags("")...), candidateFlags()...), append([]cli.Flag{
			&cli.StringFlag{Name: "held-out", Usage: "probes measured before and after but never optimised"},
			&cli.StringFlag{Name: "mode", Value: "greedy", Usage: "greedy (upstream's) or fast (candidates proposed best first, see --proposal)"},
			&cli.StringFlag{Name: "proposal", Value: "estimate", Usage: "fast mode: order candidates by first-order estimates (estimate: one backward pass per probe) or by an exact scan (scan)"},
			&cli.IntFlag{Name: "iters", Value: bfs.DefaultIters, Usage: "candidates to try"},
			&cli.Uint64Flag{Name: "seed", Value: bfs.DefaultSeed, Usage: "random seed"},
			&cli.Int64Flag{Name: "scan-sample", Usage: "fast mode: score this many random candidates per round instead of all"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: "patch.json", Usage: "patch file to write"},
			&cli.StringFlag{Name: "report", Usage: "JSON report file (default: <out without .json>.report.json)"},
			&cli.StringFlag{Name: "checkpoint", Usage: "checkpoint file (default: <out without .json>.ckpt.json)"},
			&cli.StringFlag{Name: "resume", Usage: "continue the search saved in this checkpoint (its probe and search settings; flags that contradict them are refused)"},
			&cli.DurationFlag{Name: "checkpoint-interval", Value: defaultCheckpointInterval, Usage: "write the checkpoint at least this often while searching (0: only when stopped)"},
			&cli.IntFlag{Name: "checkpoint-every", Usage: "also write the checkpoint every N decided candidates (0: by time only)"},
			&cli.StringFlag{Name: "name", Usage: "patch name"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON on stdout"},
		}, runFlags()...)...),
		Action: runSearch,
	}
}

func runSearch(c *cli.Context) error {
	var ck *bfs.Checkpoint
	var opts bfs.SearchOptions
	var err error
	resume := c.String("resume")
	if resume != "" {
		if ck, err = bfs.LoadCheckpoint(resume); err != nil {
			return err
		}
		if err := checkResumeFlags(c, ck); err != nil {
			return err
		}
	} else if opts, err = searchOptions(c); err != nil {
		return err
	}
	files, err := searchFilesFor(c, ck, resume)
	if err != nil {
		return err
	}
	inputs, err := runInputs(c, "target", "control", "held-out")
	if err != nil {
		return err
	}
	if err := files.check(inputs); err != nil {
		return err
	}
	if c.Int("checkpoint-every") < 0 || c.Duration("checkpoint-interval") < 0 {
		return fmt.Errorf("--checkpoint-every and --checkpoint-interval must not be negative")
	}
	_, b, closeRun, err := openRun(c)
	if err != nil {
		return err
	}
	defer closeRun()

	bar := newProgressBar(c.App.ErrWriter, c.Bool("quiet"))
	cb := bfs.Callbacks{Progress: bar.search, OnCheckpoint: files.periodicSaver(c.App.ErrWriter),
		CheckpointEvery: c.Int("checkpoint-every"), CheckpointInterval: c.Duration("checkpoint-interval")}
	ctx, stop := signalContext(c.Context)
	defer stop()

	var res *bfs.Result
	if ck != nil {
		res, err = bfs.Resume(ctx, b, ck, cb)
	} else {
		opts.Callbacks = cb
		res, err = bfs.Search(ctx, b, opts)
	}
	bar.done()
	if err != nil {
		return err
	}
	if err := files.save(c.App.ErrWriter, res); err != nil {
		return err
	}
	if err := printSearchResult(c, res, files); err != nil {
		return err
	}
	if r := res.Report; r.Interrupted {
		return interruptedExit(ctx, fmt.Sprintf("stopped after %d of %d candidates; the patch so far is in %s; continue with --resume %s",
			r.Iterations, r.Iters, files.out, files.checkpoint))
	}
	return nil
}

// searchOptions builds the search from the flags.
func searchOptions(c *cli.Context) (bfs.SearchOptions, error) {
	opts := bfs.DefaultSearchOptions()
	var err error
	if opts.Target, opts.Control, err = probeSets(c); err != nil {
		return opts, err
	}
	if h := c.String("held-out"); h != "" {
		if opts.HeldOut, err = bfs.LoadProbeList(h); err != nil {
			return opts, fmt.Errorf("--held-out: %w", err)
		}
	}
	if opts.Layers, opts.Projs, opts.Granularity, opts.Metric, opts.FitnessMode, err = candidateOptions(c); err != nil {
		return opts, err
	}
	if opts.Mode, err = bfs.ParseMode(c.String("mode")); err != nil {
		return opts, fmt.Errorf("--mode: %w", err)
	}
	if opts.Iters = c.Int("iters"); opts.Iters <= 0 {
		return opts, fmt.Errorf("--iters must be positive")
	}
	opts.Seed, opts.Lambda, opts.ScanSample, opts.PatchName = c.Uint64("seed"), c.Float64("lambda"), c.Int64("scan-sample"), c.String("name")
	switch p := c.String("proposal"); {
	case p != "estimate" && p != "scan":
		return opts, fmt.Errorf("--proposal %q: want estimate or scan", p)
	case c.IsSet("proposal") && opts.Mode != bfs.ModeFast:
		return opts, fmt.Errorf("--proposal applies to --mode fast only")
	default:
		opts.Estimate = opts.Mode == bfs.ModeFast && p == "estimate"
	}
	return opts, nil
}

// printSearchResult prints the summary, or the report as JSON with --json.
func printSearchResult(c *cli.Context, res *bfs.Result, files searchFiles) error {
	r := res.Report
	if c.Bool("json") {
		e := json.NewEncoder(c.App.Writer)
		e.SetIndent("", "  ")
		return e.Encode(r)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "%s search, %s, %d candidates tried (%d screened out, %d evaluations) in %s\n",
		r.Mode, r.Metric, r.Iterations, r.ScreenedOut, r.Evaluations, time.Duration(r.Timings.Total*float64(time.Second)).Round(time.Millisecond))
	fmt.Fprintf(w, "accepted %d flips, fitness %+.4f -> %s (report %s)\n", len(r.Accepted), r.Fitness, files.out, files.report)
	printScores(w, "target", r.Target)
	printScores(w, "control", r.Control)
	printScores(w, "held-out", r.HeldOut)
	return nil
}

// printScores writes one table of probe scores before and after, titled; nothing if ps is empty.
func printScores(w io.Writer, title string, ps []bfs.ProbeScore) {
	if len(ps) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%-9s %-26s %10s %10s %10s\n", title, "probe", "before", "after", "delta")
	for _, p := range ps {
		fmt.Fprintf(w, "%-9s %-26s %+10.4f %+10.4f %+10.4f\n", p.Set, trunc(p.Name, 26), p.Base, p.Final, p.Delta)
	}
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
