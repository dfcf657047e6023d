package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/cpu"
)

func init() { register(benchCommand()) }

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:      "bench",
		Usage:     "measure prompt processing (pp) and generation (tg) speed, like llama-bench",
		ArgsUsage: " ",
		Description: "Runs, after one warm-up, -r repetitions of two tests on fresh sessions: pp, one batch of\n" +
			"-p prompt tokens, and tg, -n tokens decoded one by one from an empty context (the tokens\n" +
			"are pseudo-random ids, as llama-bench's are). Prints tokens/s as mean ± standard deviation\n" +
			"over the repetitions, the load time, the peak resident memory, the device, the SIMD level\n" +
			"of the CPU kernels ($BANKAI_SIMD forces one) and the numerics. -p 0 or -n 0 skips a test.\n\n" +
			"Examples:\n" +
			"   bankai-metal bench -m Bonsai-8B.gguf --threads 2\n" +
			"   bankai-metal bench -m Bonsai-1.7B.gguf -p 128 -n 64 -r 3 --numerics llama --json",
		Flags: append([]cli.Flag{
			modelFlag,
			&cli.IntFlag{Name: "prompt", Aliases: []string{"p"}, Value: 128, Usage: "prompt tokens of the pp test (0: skip it)"},
			&cli.IntFlag{Name: "gen", Aliases: []string{"n"}, Value: 64, Usage: "generated tokens of the tg test (0: skip it)"},
			&cli.IntFlag{Name: "repetitions", Aliases: []string{"r"}, Value: 3, Usage: "repetitions of each test"},
			&cli.BoolFlag{Name: "no-warmup", Usage: "skip the warm-up run"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of a table"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a Go CPU profile of the timed runs to this file"},
			numericsFlag,
		}, runFlags()...),
		Action: runBench,
	}
}

// benchResult is one test of bench: its speed over the repetitions.
type benchResult struct {
	Test    string    `json:"test"` // "pp128", "tg64"
	NPrompt int       `json:"n_prompt"`
	NGen    int       `json:"n_gen"`
	Samples []float64 `json:"samples_ts"` // tokens/s of each repetition
	Mean    float64   `json:"avg_ts"`
	SD      float64   `json:"stddev_ts"`
}

// benchReport is what bench prints (as JSON with --json).
type benchReport struct {
	Model       string        `json:"model"`
	FileBytes   int64         `json:"file_bytes"`
	Params      int64         `json:"params"`
	Device      string        `json:"device"`
	SIMD        string        `json:"simd"`
	Numerics    string        `json:"numerics"`
	Threads     int           `json:"threads"`
	LoadSeconds float64       `json:"load_seconds"`
	PeakRSS     int64         `json:"peak_rss_bytes"`
	Results     []benchResult `json:"results"`
}

func runBench(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", c.Args().First())
	}
	np, ng, reps := c.Int("prompt"), c.Int("gen"), c.Int("repetitions")
	switch {
	case np < 0 || np > 1<<20:
		return fmt.Errorf("-p %d: want 0 to %d prompt tokens", np, 1<<20)
	case ng < 0 || ng > 1<<20:
		return fmt.Errorf("-n %d: want 0 to %d generated tokens", ng, 1<<20)
	case reps < 1 || reps > 1000:
		return fmt.Errorf("-r %d: want 1 to 1000 repetitions", reps)
	case np == 0 && ng == 0:
		return fmt.Errorf("-p 0 and -n 0: nothing to measure")
	}
	start := time.Now()
	m, err := loadModel(c)
	if err != nil {
		return err
	}
	defer m.Close() // deferred first, so it runs last: after b.Close
	load := time.Since(start)
	b, err := newBackend(c, m)
	if err != nil {
		return err
	}
	defer b.Close()

	rep := benchReport{Model: filepath.Base(m.Source.Path), FileBytes: m.Source.Size, Params: m.Params(),
		Device: b.Name(), SIMD: cpu.SIMD().String(), Numerics: m.Numerics.String(),
		Threads: m.Threads, LoadSeconds: load.Seconds()}
	if rep.Threads <= 0 {
		rep.Threads = goruntime.GOMAXPROCS(0)
	}
	if b.Name() != "cpu" {
		rep.SIMD = "-" // the kernels run on the GPU
	}
	toks := benchTokens(max(np, ng), m.Vocab)
	if !c.Bool("no-warmup") {
		if np > 0 {
			if _, err := benchRun(b, toks[:np], true); err != nil {
				return err
			}
		}
		if _, err := benchRun(b, toks[:1], false); err != nil {
			return err
		}
	}
	if p := c.String("cpuprofile"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	for _, t := range []struct {
		name  string
		n     int
		batch bool
	}{{"pp", np, true}, {"tg", ng, false}} {
		if t.n == 0 {
			continue
		}
		r := benchResult{Test: fmt.Sprintf("%s%d", t.name, t.n)}
		if t.batch {
			r.NPrompt = t.n
		} else {
			r.NGen = t.n
		}
		for range reps {
			d, err := benchRun(b, toks[:t.n], t.batch)
			if err != nil {
				return err
			}
			r.Samples = append(r.Samples, float64(t.n)/d.Seconds())
		}
		r.Mean, r.SD = meanSD(r.Samples)
		rep.Results = append(rep.Results, r)
	}
	rep.PeakRSS = peakRSS()
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printBench(c.App.Writer, rep)
	return nil
}

// benchRun runs toks on a fresh session, as one batch or one token at a time, and returns the
// time the forward passes took. The session is closed before it returns.
func benchRun(b runtime.Backend, toks []int32, batch bool) (time.Duration, error) {
	s, err := b.NewSession(len(toks))
	if err != nil {
		return 0, err
	}
	defer s.Close()
	start := time.Now()
	if batch {
		if _, err := s.Forward(toks, false); err != nil {
			return 0, err
		}
	} else {
		for i := range toks {
			if _, err := s.Forward(toks[i:i+1], false); err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start), nil
}

// benchTokens returns n pseudo-random token ids below vocab, the same on every run.
func benchTokens(n, vocab int) []int32 {
	toks := make([]int32, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range toks {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		toks[i] = int32(x % uint64(vocab))
	}
	return toks
}

// meanSD returns the mean and the sample standard deviation (0 for one sample) of xs.
func meanSD(xs []float64) (mean, sd float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)-1))
}

// printBench writes rep as a llama-bench style table and a summary line.
func printBench(w io.Writer, rep benchReport) {
	fmt.Fprintf(w, "| model | size | params | device | simd | numerics | threads | test | t/s |\n")
	fmt.Fprintf(w, "| --- | ---: | ---: | --- | --- | --- | ---: | ---: | ---: |\n")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %d | %s | %.2f ± %.2f |\n",
			rep.Model, humanBytes(rep.FileBytes), humanCount(rep.Params), rep.Device, rep.SIMD,
			rep.Numerics, rep.Threads, r.Test, r.Mean, r.SD)
	}
	fmt.Fprintf(w, "\nload %.2f s, peak memory %.1f MiB\n", rep.LoadSeconds, float64(rep.PeakRSS)/(1<<20))
}

// humanBytes is n in GiB, or MiB below 1 GiB.
func humanBytes(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
}

// humanCount is n in billions, or millions below a billion.
func humanCount(n int64) string {
	if n >= 1e9 {
		return fmt.Sprintf("%.2f B", float64(n)/1e9)
	}
	return fmt.Sprintf("%.2f M", float64(n)/1e6)
}
