package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/bfs"
	"github.com/bankai-metal/bankai-metal/internal/atomicfile"
)

func init() { register(searchCommand()) }

func searchCommand() *cli.Command {
	return &cli.Command{
		Name:  "search",
		Usage: "search for an XOR patch that improves target probes without hurting controls",
		Description: "Greedy hill climbing over sign flips. --mode greedy is the bankai research toolkit's algorithm:\n" +
			"scale-weighted random rows of gate/up in layers 1-4 and N-2, screened on the two worst target\n" +
			"probes, accepted on strict fitness improvement (fitness = mean target gain - lambda * mean\n" +
			"control loss). --mode fast scores every candidate exactly (a BFS scan) and tries them best\n" +
			"first. Each candidate reruns only the layers from its own on, many candidates per batch.\n" +
			"Deterministic for a seed whatever the batching or thread count.\n\n" +
			"Ctrl-C stops early and still writes the patch found so far plus a checkpoint; --resume\n" +
			"continues it and ends with exactly the patch of an uninterrupted run.\n\n" +
			"Example: bankai-metal search -m Bonsai-8B.gguf --target calculus --control knowledge --iters 300 -o calc.json",
		Flags: append(append(append([]cli.Flag{modelFlag}, probeFlags("")...), candidateFlags()...), append([]cli.Flag{
			&cli.StringFlag{Name: "held-out", Usage: "probes measured before and after but never optimised"},
			&cli.StringFlag{Name: "mode", Value: "greedy", Usage: "greedy (upstream's) or fast (scan-guided)"},
			&cli.IntFlag{Name: "iters", Value: 200, Usage: "candidates to try"},
			&cli.Uint64Flag{Name: "seed", Value: 42, Usage: "random seed"},
			&cli.Int64Flag{Name: "scan-sample", Usage: "fast mode: score this many random candidates per round instead of all"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: "patch.json", Usage: "patch file to write"},
			&cli.StringFlag{Name: "report", Usage: "JSON report file (default: <out without .json>.report.json)"},
			&cli.StringFlag{Name: "checkpoint", Usage: "checkpoint file (default: <out without .json>.ckpt.json)"},
			&cli.StringFlag{Name: "resume", Usage: "continue the search saved in this checkpoint (probe and search flags are taken from it)"},
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
	if p := c.String("resume"); p != "" {
		if ck, err = bfs.LoadCheckpoint(p); err != nil {
			return err
		}
	} else if opts, err = searchOptions(c); err != nil {
		return err
	}
	_, b, closeRun, err := openRun(c)
	if err != nil {
		return err
	}
	defer closeRun()

	out := c.String("out")
	stem := strings.TrimSuffix(out, ".json")
	ckPath := c.String("checkpoint")
	if ckPath == "" {
		ckPath = stem + ".ckpt.json"
	}
	reportPath := c.String("report")
	if reportPath == "" {
		reportPath = stem + ".report.json"
	}
	bar := newProgressBar(c.App.ErrWriter, c.Bool("quiet"))
	cb := bfs.Callbacks{Progress: bar.search}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
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
	return writeSearchResult(c, res, out, reportPath, ckPath)
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
	return opts, nil
}

// writeSearchResult writes the patch, the report and, if interrupted, the checkpoint, and
// prints a summary.
func writeSearchResult(c *cli.Context, res *bfs.Result, out, reportPath, ckPath string) error {
	if err := res.Patch.Save(out); err != nil {
		return err
	}
	if err := writeJSONFile(reportPath, res.Report); err != nil {
		return err
	}
	r := res.Report
	if r.Interrupted {
		if err := bfs.SaveCheckpoint(ckPath, res.Checkpoint); err != nil {
			return err
		}
		fmt.Fprintf(c.App.ErrWriter, "interrupted after %d candidates: partial patch in %s; continue with --resume %s\n", r.Iterations, out, ckPath)
	} else {
		os.Remove(ckPath) // a finished search leaves no stale checkpoint behind
	}
	if c.Bool("json") {
		e := json.NewEncoder(c.App.Writer)
		e.SetIndent("", "  ")
		return e.Encode(r)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "%s search, %s, %d candidates tried (%d screened out, %d evaluations) in %s\n",
		r.Mode, r.Metric, r.Iterations, r.ScreenedOut, r.Evaluations, time.Duration(r.Timings.Total*float64(time.Second)).Round(time.Millisecond))
	fmt.Fprintf(w, "accepted %d flips, fitness %+.4f -> %s (report %s)\n", len(r.Accepted), r.Fitness, out, reportPath)
	printScores(w, "target", r.Target)
	printScores(w, "control", r.Control)
	printScores(w, "held-out", r.HeldOut)
	return nil
}

func printScores(w interface{ Write([]byte) (int, error) }, title string, ps []bfs.ProbeScore) {
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

// writeJSONFile writes v as indented JSON, atomically.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(b, '\n'))
}
