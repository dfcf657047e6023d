package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/bfs"
	"github.com/bankai-metal/bankai-metal/internal/atomicfile"
	"github.com/bankai-metal/bankai-metal/internal/fileid"
)

func init() { register(scanCommand()) }

func scanCommand() *cli.Command {
	return &cli.Command{
		Name:  "scan",
		Usage: "exact bit-flip sensitivity of every candidate flip over a calibration probe set",
		Description: "For every candidate m (rows, groups or bits of the chosen layers and projections) computes\n" +
			"S = L(W xor m) - L(W) exactly, with L = -fitness over the probes (negative S helps). Only the\n" +
			"layers from the candidate's own on are recomputed, many candidates per batch. --budget k also\n" +
			"writes a patch of the k best and greedily verifies the combination (flips interact).\n" +
			"--estimate first ranks every candidate by its first-order effect (one backward pass per probe\n" +
			"sequence, docs/SENSITIVITY.md) and measures only the --exact-top best exactly: rows, groups and\n" +
			"even single bits of whole layers in the time of a few forward passes plus the exact top.\n\n" +
			"Example: bankai-metal scan -m Bonsai-1.7B.gguf --target math --layers 26 --budget 8 -o top8.json --scores s.csv\n" +
			"         bankai-metal scan -m Bonsai-1.7B.gguf --target math --estimate --exact-top 256 --scores s.csv",
		Flags: append(append(append([]cli.Flag{modelFlag}, probeFlags("none")...), candidateFlags()...), append([]cli.Flag{
			&cli.Int64Flag{Name: "sample", Usage: "score this many random candidates instead of all"},
			&cli.BoolFlag{Name: "estimate", Usage: "rank every candidate by a first-order estimate (one backward pass per probe), then score only the --exact-top best exactly"},
			&cli.IntFlag{Name: "exact-top", Value: 256, Usage: "with --estimate: candidates scored exactly, best estimates first (-1: all, and report how well estimates agree)"},
			&cli.Uint64Flag{Name: "seed", Value: bfs.DefaultSeed, Usage: "seed for --sample"},
			&cli.IntFlag{Name: "budget", Aliases: []string{"k"}, Usage: "write a patch of the top k and verify it greedily"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "patch file for --budget (default top<k>.json)"},
			&cli.StringFlag{Name: "scores", Usage: "write every score: .csv or .json"},
			&cli.StringFlag{Name: "sort", Value: "signed", Usage: "order of the printed and written rows: signed (most helpful first) or abs"},
			&cli.IntFlag{Name: "top", Value: 20, Usage: "rows to print"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		}, runFlags()...)...),
		Action: runScan,
	}
}

func runScan(c *cli.Context) error {
	var opts bfs.ScanOptions
	var err error
	if opts.Target, opts.Control, err = probeSets(c); err != nil {
		return err
	}
	if opts.Layers, opts.Projs, opts.Granularity, opts.Metric, opts.FitnessMode, err = candidateOptions(c); err != nil {
		return err
	}
	by := bfs.BySigned
	switch c.String("sort") {
	case "abs":
		by = bfs.ByAbs
	case "signed":
	default:
		return fmt.Errorf("--sort %q: want signed or abs", c.String("sort"))
	}
	opts.Lambda, opts.Sample, opts.Seed, opts.Budget = c.Float64("lambda"), c.Int64("sample"), c.Uint64("seed"), c.Int("budget")
	opts.Estimate, opts.ExactTop = c.Bool("estimate"), c.Int("exact-top")
	if c.IsSet("exact-top") && !opts.Estimate {
		return fmt.Errorf("--exact-top needs --estimate")
	}
	if opts.ExactTop == 0 || opts.ExactTop < -1 {
		return fmt.Errorf("--exact-top %d: want a positive count, or -1 for all", opts.ExactTop)
	}
	out := c.String("out")
	if out == "" && opts.Budget > 0 {
		out = fmt.Sprintf("top%d.json", opts.Budget)
	}
	if err := checkScanOutputs(c, out, c.String("scores")); err != nil {
		return err
	}
	m, b, closeRun, err := openRun(c)
	if err != nil {
		return err
	}
	defer closeRun()
	bar := newProgressBar(c.App.ErrWriter, c.Bool("quiet"))
	opts.Progress = func(pr bfs.Progress) { bar.count(pr.Phase, int64(pr.Iteration), int64(pr.Iters), pr.Elapsed) }
	ctx, stop := signalContext(c.Context)
	defer stop()
	res, err := bfs.Scan(ctx, b, opts)
	bar.done()
	if err != nil {
		if ctx.Err() != nil {
			return interruptedExit(ctx, "the scan was stopped before it finished; nothing was written")
		}
		return err
	}
	rows := res.Sorted(by)
	if p := c.String("scores"); p != "" {
		var sb strings.Builder
		if strings.HasSuffix(p, ".json") {
			err = bfs.WriteScanJSON(&sb, &bfs.ScanResult{Metric: res.Metric, Granularity: res.Granularity, Layers: res.Layers,
				Projs: res.Projs, Lambda: res.Lambda, PoolSize: res.PoolSize, Sample: res.Sample, Seed: res.Seed,
				Seconds: res.Seconds, Rows: rows, TopK: res.TopK, Estimates: res.Estimates, Agreement: res.Agreement,
				EstimateSeconds: res.EstimateSeconds})
		} else if opts.Estimate {
			err = bfs.WriteEstimateCSV(&sb, res)
		} else {
			err = bfs.WriteScanCSV(&sb, rows)
		}
		if err == nil {
			if err = atomicfile.WriteBytes(p, []byte(sb.String())); err != nil {
				err = fmt.Errorf("--scores: could not write %s: %w", p, atomicfile.PlainError(err))
			}
		}
		if err != nil {
			return err
		}
	}
	w := c.App.Writer
	if opts.Estimate {
		fmt.Fprintf(w, "estimated %d of %d candidates in %.2fs, then scored the best %d exactly (%s, %s); %.2fs in all\n",
			len(res.Estimates), res.PoolSize, res.EstimateSeconds, len(res.Rows), res.Granularity, res.Metric, res.Seconds)
		if a := res.Agreement; a != nil {
			fmt.Fprintf(w, "estimate vs exact over %d candidates: Spearman %.3f, sign agreement %.3f", a.N, a.Spearman, a.SignAgreement)
			for _, k := range []int{10, 100} {
				if v, ok := a.TopOverlap[k]; ok {
					fmt.Fprintf(w, ", top-%d overlap %.2f", k, v)
				}
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%-5s %-10s %6s %6s %6s %12s %12s\n", "layer", "proj", "row", "group", "col", "S", "estimate")
		for _, r := range rows[:min(len(rows), c.Int("top"))] {
			fmt.Fprintf(w, "%-5d %-10s %6d %6s %6s %+12.5f %+12.5f\n", r.Layer, r.Proj, r.Row, optInt(r.Group), optInt(r.Col), r.S, *r.Est)
		}
	} else {
		fmt.Fprintf(w, "scanned %d of %d candidates (%s, %s) in %.2fs: %.0f flips/s\n", len(res.Rows), res.PoolSize,
			res.Granularity, res.Metric, res.Seconds, float64(len(res.Rows))/max(res.Seconds, 1e-9))
		fmt.Fprintf(w, "%-5s %-10s %6s %6s %6s %12s\n", "layer", "proj", "row", "group", "col", "S")
		for _, r := range rows[:min(len(rows), c.Int("top"))] {
			fmt.Fprintf(w, "%-5d %-10s %6d %6s %6s %+12.5f\n", r.Layer, r.Proj, r.Row, optInt(r.Group), optInt(r.Col), r.S)
		}
	}
	if tk := res.TopK; tk != nil {
		p := bfs.ScanPatch(strings.TrimSuffix(out, ".json"), tk.Greedy, map[string]any{
			"scan_metric": res.Metric.String(), "budget": tk.K, "loss_all_top_k": tk.Loss, "loss_kept": tk.GreedyLoss})
		p.Fingerprint = m.Fingerprint()
		if err := p.Save(out); err != nil {
			return err
		}
		fmt.Fprintf(w, "\ntop %d together: loss %+.5f; greedily kept %d of them: loss %+.5f -> %s\n", len(tk.Flips), tk.Loss, len(tk.Greedy), tk.GreedyLoss, out)
	}
	return nil
}

// checkScanOutputs refuses, before the scan, a --budget patch or --scores file that is one of
// the scan's inputs (by file identity), the same file as the other output, or not writable.
func checkScanOutputs(c *cli.Context, out, scores string) error {
	inputs, err := runInputs(c, "target", "control")
	if err != nil {
		return err
	}
	var checked []string
	for _, o := range []struct{ flag, path string }{{"-o", out}, {"--scores", scores}} {
		if o.path == "" {
			continue
		}
		if err := fileid.CheckOutput(o.flag, o.path, inputs...); err != nil {
			return err
		}
		abs, _ := filepath.Abs(o.path)
		for _, p := range checked {
			if p == abs || fileid.Same(p, abs) {
				return fmt.Errorf("-o and --scores are both %s: give them different files", o.path)
			}
		}
		if err := checkWritable(o.flag, o.path); err != nil {
			return err
		}
		checked = append(checked, abs)
	}
	return nil
}

func optInt(v int) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprint(v)
}
