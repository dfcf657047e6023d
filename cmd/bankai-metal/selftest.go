package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/metal"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/shaders"
)

func init() { register(selftestCommand()) }

// Bounds of the selftest, as in internal/backendtest: one kernel against its Go twin, and a
// model's logits against the CPU backend's at every position.
const (
	selftestKernelNMSE = 1e-7
	selftestModelNMSE  = 1e-6
)

func selftestCommand() *cli.Command {
	return &cli.Command{
		Name:      "selftest",
		Usage:     "check the Metal backend against the CPU on this machine and print one verdict",
		ArgsUsage: " ",
		Description: "Runs every Metal kernel against its Go twin, then a few forward passes (a prefill, token-by-\n" +
			"token decoding, and a patch flipped on a page nothing wrote before, then reverted) of\n" +
			"builtin:tiny and of --model on Metal and on the CPU, and compares them (NMSE and argmax).\n" +
			"Prints one line per check, a bench summary and a VERDICT line; exits non-zero on a\n" +
			"mismatch. Without a Metal device (--device auto, or cpu) only the CPU-side checks run.\n\n" +
			"Examples:\n" +
			"   bankai-metal selftest\n" +
			"   bankai-metal selftest --device metal -m Bonsai-8B.gguf",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "device", Value: "auto", Usage: "auto (Metal when available), metal (fail without it) or cpu"},
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "a model to check besides builtin:tiny"},
			&cli.IntFlag{Name: "prompt", Aliases: []string{"p"}, Value: 64, Usage: "prompt tokens of the bench summary"},
			&cli.IntFlag{Name: "gen", Aliases: []string{"n"}, Value: 16, Usage: "generated tokens of the bench summary"},
		},
		Action: runSelftest,
	}
}

// selftestGPU opens the Metal side of the selftest. Tests swap in the emulator.
var selftestGPU = struct {
	available func() error
	kernels   func() (*metal.KernelRunner, error)
	backend   func(*runtime.Model) (runtime.Backend, error)
	sizes     kernelSizes
}{metal.Available, metal.NewKernelRunner, metal.New, kernelSizes{
	rows: []int{1, 33, 257, 4096}, cols: []int{128, 4096}, ctx: []int{1, 33, 257, 1024}}}

// kernelSizes are the shapes the kernel checks sweep.
type kernelSizes struct{ rows, cols, ctx []int }

// tally is one line of the report: cases run, the worst NMSE and the failures.
type tally struct {
	name  string
	cases int
	worst float64
	fails []string
}

func (t *tally) compare(where string, got, want []float32, bound float64) {
	t.cases++
	e := nmse(got, want)
	t.worst = max(t.worst, e)
	if e > bound {
		t.fails = append(t.fails, fmt.Sprintf("%s: NMSE %.3g > %.0g", where, e, bound))
	}
}

func (t *tally) fail(format string, a ...any) { t.fails = append(t.fails, fmt.Sprintf(format, a...)) }

func (t *tally) print(w io.Writer) {
	status := "ok"
	if len(t.fails) > 0 {
		status = "FAIL"
	}
	fmt.Fprintf(w, "%-34s %-4s %3d cases, worst NMSE %.2g\n", t.name, status, t.cases, t.worst)
	for i, f := range t.fails {
		if i == 5 {
			fmt.Fprintf(w, "    ... %d more\n", len(t.fails)-i)
			break
		}
		fmt.Fprintln(w, "    "+f)
	}
}

func runSelftest(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", c.Args().First())
	}
	w, gpu := c.App.Writer, selftestGPU
	var useMetal bool
	var why error
	switch d := c.String("device"); d {
	case "metal":
		if err := gpu.available(); err != nil {
			return cli.Exit(fmt.Sprintf("selftest --device metal: no Metal device: %v", err), 2)
		}
		useMetal = true
	case "auto":
		why = gpu.available()
		useMetal = why == nil
	case "cpu":
		why = fmt.Errorf("--device cpu")
	default:
		return fmt.Errorf("--device %q: want auto, metal or cpu", d)
	}
	fmt.Fprintf(w, "selftest: bankai-metal %s, %s/%s, %d CPUs\n", version(), goruntime.GOOS, goruntime.GOARCH, goruntime.NumCPU())
	var all []*tally
	device := "cpu"
	if useMetal {
		device = "metal"
		if k, err := gpu.kernels(); err != nil {
			t := &tally{name: "kernels"}
			t.fail("open Metal: %v", err)
			all = append(all, t)
		} else {
			device = "metal on " + k.Name()
			all = append(all, checkKernels(k, gpu.sizes)...)
			k.Close()
		}
		fmt.Fprintln(w, "device:", device)
	} else {
		fmt.Fprintf(w, "device: cpu only (no Metal device: %v)\n", why)
	}
	paths := []string{"builtin:tiny"}
	if p := c.String("model"); p != "" {
		paths = append(paths, p)
	}
	var bench []string
	for _, p := range paths {
		m, err := loadPath(p)
		if err != nil {
			return cli.Exit(fmt.Sprintf("selftest: FAIL: load %s: %v", p, err), 1)
		}
		t, line := checkModelOn(m, p, useMetal, gpu.backend, c.Int("prompt"), c.Int("gen"))
		m.Close() // after every backend and session checkModelOn opened is closed
		all = append(all, t)
		bench = append(bench, line)
	}
	worst, fails := 0.0, 0
	for _, t := range all {
		t.print(w)
		worst, fails = max(worst, t.worst), fails+len(t.fails)
	}
	for _, b := range bench {
		fmt.Fprintln(w, b)
	}
	what := fmt.Sprintf("%d checks on %s, worst NMSE %.2g", len(all), device, worst)
	if fails > 0 {
		fmt.Fprintf(w, "VERDICT: FAIL (%d mismatches; %s)\n", fails, what)
		return cli.Exit("selftest: Metal and the CPU disagree; please report the output above", 1)
	}
	if useMetal {
		fmt.Fprintf(w, "VERDICT: PASS: Metal agrees with the CPU (%s)\n", what)
	} else {
		fmt.Fprintf(w, "VERDICT: PASS (CPU only, Metal not checked: %v; %s)\n", why, what)
	}
	return nil
}

// checkModelOn compares m on Metal (or, without it, the CPU's batch path with its token-by-
// token path) with the CPU backend, and returns the tally and a bench line.
func checkModelOn(m *runtime.Model, name string, useMetal bool, open func(*runtime.Model) (runtime.Backend, error), np, ng int) (*tally, string) {
	t := &tally{name: "model " + name}
	ref := runtime.NewCPU(m)
	defer ref.Close()
	var b runtime.Backend = ref
	if useMetal {
		var err error
		if b, err = open(m); err != nil {
			t.fail("open Metal backend: %v", err)
			return t, "bench " + name + ": not run"
		}
		defer b.Close()
		if d, ok := b.(runtime.Describer); ok {
			t.name += " (" + d.Describe() + ")"
		}
	}
	toks := benchTokens(12, m.Vocab)
	want, err := forwardSteps(ref, toks, 8, true)
	if err != nil {
		t.fail("cpu: %v", err)
		return t, ""
	}
	// Metal: the same steps. CPU only: one token at a time against the CPU's batch.
	got, err := forwardSteps(b, toks, 8, useMetal)
	if err != nil {
		t.fail("%s: %v", b.Name(), err)
		return t, ""
	}
	compareLogits(t, "prefill+decode", m.Vocab, got, want)
	checkPatchOn(t, m, b, ref, toks[:8])
	return t, benchLine(name, b, ref, useMetal, m.Vocab, np, ng)
}

// forwardSteps runs toks on a fresh session: the first pre tokens as one batch when batch is
// set, then one at a time; it returns every position's logits.
func forwardSteps(b runtime.Backend, toks []int32, pre int, batch bool) ([]float32, error) {
	s, err := b.NewSession(len(toks))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out []float32
	i := 0
	if batch {
		if out, err = s.Forward(toks[:pre], true); err != nil {
			return nil, err
		}
		i = pre
	}
	for ; i < len(toks); i++ {
		lg, err := s.Forward(toks[i:i+1], false)
		if err != nil {
			return nil, err
		}
		out = append(out, lg...)
	}
	return out, nil
}

// compareLogits checks every row by NMSE and argmax (where the CPU's top two differ by > 1e-3).
func compareLogits(t *tally, what string, vocab int, got, want []float32) {
	if len(got) != len(want) {
		t.fail("%s: %d logits, want %d", what, len(got), len(want))
		return
	}
	for r := 0; r*vocab < len(want); r++ {
		g, w := got[r*vocab:(r+1)*vocab], want[r*vocab:(r+1)*vocab]
		t.compare(fmt.Sprintf("%s row %d", what, r), g, w, selftestModelNMSE)
		if best, second := top2(w); w[best]-w[second] > 1e-3 {
			if gb, _ := top2(g); gb != best {
				t.fail("%s row %d: argmax %d, want %d", what, r, gb, best)
			}
		}
	}
}

// checkPatchOn flips a row in the middle of the largest projection and a row of the output
// matrix in host memory (pages no probe wrote), tells both backends, compares, and reverts.
func checkPatchOn(t *tally, m *runtime.Model, b, ref runtime.Backend, toks []int32) {
	mat := m.Layers[0].Proj[0]
	for _, L := range m.Layers {
		for _, p := range L.Proj {
			if len(p.Bits) > len(mat.Bits) {
				mat = p
			}
		}
	}
	mats := []*q1.Matrix{mat, m.Output}
	flip := func() {
		mat.Flip(mat.Rows/2+1, -1, -1)
		m.Output.Flip(int(toks[0]), -1, -1)
	}
	for _, what := range []string{"patched", "reverted"} {
		flip()
		for _, be := range []runtime.Backend{b, ref} {
			if err := be.WeightsChanged(mats...); err != nil {
				t.fail("%s: WeightsChanged: %v", be.Name(), err)
			}
		}
		want, err1 := forwardSteps(ref, toks, len(toks), true)
		got, err2 := forwardSteps(b, toks, len(toks), true)
		if err1 != nil || err2 != nil {
			t.fail("%s: %v %v", what, err1, err2)
			continue
		}
		compareLogits(t, what, m.Vocab, got, want)
	}
}

// benchLine times one prefill of np tokens and ng decoded tokens on b (and on the CPU, when b
// is Metal), after a warm-up.
func benchLine(name string, b, ref runtime.Backend, useMetal bool, vocab, np, ng int) string {
	line := "bench " + name + ":"
	bes := []runtime.Backend{b}
	if useMetal {
		bes = append(bes, ref)
	}
	toks := benchTokens(max(np, ng, 1), vocab)
	for _, be := range bes {
		line += " " + be.Name()
		for _, r := range []struct {
			n     int
			batch bool
			test  string
		}{{np, true, "pp"}, {ng, false, "tg"}} {
			if r.n <= 0 {
				continue
			}
			_, _ = benchRun(be, toks[:r.n], r.batch) // warm-up
			d, err := benchRun(be, toks[:r.n], r.batch)
			if err != nil {
				line += fmt.Sprintf(" %s%d error (%v)", r.test, r.n, err)
				continue
			}
			line += fmt.Sprintf(" %s%d %.1f t/s", r.test, r.n, float64(r.n)/max(d, time.Nanosecond).Seconds())
		}
		line += ";"
	}
	return line
}

// checkKernels runs every kernel on k against its Go twin in runtime/cpu.
func checkKernels(k *metal.KernelRunner, sz kernelSizes) []*tally {
	rng := rand.New(rand.NewPCG(13, 1))
	tl := map[string]*tally{}
	var order []*tally
	get := func(name string) *tally {
		if tl[name] == nil {
			tl[name] = &tally{name: "kernel " + name}
			order = append(order, tl[name])
		}
		return tl[name]
	}
	check := func(name, where string, got []float32, err error, want []float32, bound float64) {
		t := get(name)
		if err != nil {
			t.fail("%s: %v", where, err)
			return
		}
		t.compare(where, got, want, bound)
	}
	for _, rows := range sz.rows {
		for _, cols := range sz.cols {
			for _, n := range []int{1, 5} {
				mat, x := selftestMatrix(rng, rows, cols), randFloats(rng, n*cols, 1)
				want := make([]float32, n*rows)
				cpu.MatMul(mat, x, n, want)
				got, err := k.MatMul(mat, x, n)
				check(shaders.KernelMatVec, fmt.Sprintf("%dx%d n=%d", rows, cols, n), got, err, want, selftestKernelNMSE)
			}
		}
		x, wt := randFloats(rng, 3*rows, 1), randFloats(rng, rows, 1)
		want := make([]float32, len(x))
		cpu.RMSNorm(want, x, wt, 1e-6)
		got, err := k.RMSNorm(x, wt, 1e-6)
		check(shaders.KernelRMSNorm, fmt.Sprintf("width %d", rows), got, err, want, selftestKernelNMSE)
		a, bb := randFloats(rng, rows, 8), randFloats(rng, rows, 1)
		sum := append([]float32(nil), a...)
		cpu.Add(sum, bb)
		got, err = k.Add(a, bb)
		check(shaders.KernelAdd, fmt.Sprintf("%d", rows), got, err, sum, 0)
		silu := make([]float32, rows)
		cpu.SiluMul(silu, a, bb)
		got, err = k.SiluMul(a, bb)
		check(shaders.KernelSiluMul, fmt.Sprintf("%d", rows), got, err, silu, selftestKernelNMSE)
	}
	for _, cols := range sz.cols {
		mat, tokens := selftestMatrix(rng, 300, cols), []int32{0, 299, 17, 17, 256}
		want := make([]float32, len(tokens)*cols)
		for j, tok := range tokens {
			mat.DequantRow(int(tok), want[j*cols:(j+1)*cols])
		}
		got, err := k.Embedding(mat, tokens)
		check(shaders.KernelEmbed, fmt.Sprintf("width %d", cols), got, err, want, 0)
	}
	for _, r := range []cpu.Rope{{Dim: 128, Base: 1e6}, {Dim: 128, Base: 1e6, Factor: 4, OrigContext: 16384, BetaFast: 32, BetaSlow: 1, AttnFactor: 1}} {
		for _, pos0 := range []int{0, 4000, 70000} {
			cos, sin := r.Tables(pos0, 3)
			x := randFloats(rng, 3*8*r.Dim, 1)
			want := append([]float32(nil), x...)
			cpu.ApplyRope(want, 3, 8, r.Dim, cos, sin)
			got, err := k.ApplyRope(x, 3, 8, r.Dim, cos, sin)
			check(shaders.KernelRope, fmt.Sprintf("pos %d factor %g", pos0, r.Factor), got, err, want, selftestKernelNMSE)
		}
	}
	for _, ctx := range sz.ctx {
		const heads, kvHeads, dim = 8, 2, 128
		n := min(ctx, 4)
		q, kk, v := randFloats(rng, n*heads*dim, 4), randFloats(rng, ctx*kvHeads*dim, 1), randFloats(rng, ctx*kvHeads*dim, 1)
		want := make([]float32, len(q))
		cpu.Attention(want, q, kk, v, n, ctx, heads, kvHeads, dim, make([]float32, ctx))
		got, err := k.Attention(q, kk, v, n, ctx, heads, kvHeads, dim)
		check(shaders.KernelAttention, fmt.Sprintf("ctx %d n %d", ctx, n), got, err, want, selftestKernelNMSE)
	}
	const rows, cols, n = 33, 384, 3
	mat, x := selftestMatrix(rng, rows, cols), randFloats(rng, n*cols, 1)
	base := make([]float32, n*rows)
	cpu.MatMul(mat, x, n, base)
	flips := []shaders.FlipDesc{{Row: 0, Group: -1, Col: -1}, {Row: 5, Group: 2, Col: -1}, {Row: 7, Group: -1, Col: 383}}
	got, err := k.FlipDelta(mat, x, n, base, flips)
	for f, fl := range flips {
		out := append([]float32(nil), base...)
		cpu.FlipDelta(mat, x, n, out, int(fl.Row), int(fl.Group), int(fl.Col))
		want := make([]float32, n)
		for i := range want {
			want[i] = out[i*rows+int(fl.Row)]
		}
		var g []float32
		if err == nil {
			g = got[f*n : (f+1)*n]
		}
		check(shaders.KernelFlipDelta, fmt.Sprintf("%+v", fl), g, err, want, selftestKernelNMSE)
	}
	return order
}

// selftestMatrix is a random rows x cols GGUF Q1_0 matrix with scales in [0.01, 0.1).
func selftestMatrix(rng *rand.Rand, rows, cols int) *q1.Matrix {
	data := make([]byte, rows*cols/q1.GroupSize*q1.BlockBytes)
	for g := 0; g < len(data); g += q1.BlockBytes {
		h := q1.F32ToF16(0.01 + 0.09*rng.Float32())
		data[g], data[g+1] = byte(h), byte(h>>8)
		for i := 2; i < q1.BlockBytes; i++ {
			data[g+i] = byte(rng.Uint32())
		}
	}
	m, err := q1.FromQ1_0("selftest", rows, cols, data)
	if err != nil {
		panic(err) // cols is a multiple of 128 by construction
	}
	return m
}

func randFloats(rng *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = scale * (2*rng.Float32() - 1)
	}
	return v
}

// nmse is Σ(got−want)² / Σwant², +Inf on a NaN or a length mismatch.
func nmse(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		num, den = num+d*d, den+float64(want[i])*float64(want[i])
	}
	if den == 0 {
		return num
	}
	return num / den
}

// top2 returns the indices of the largest and second-largest values.
func top2(v []float32) (best, second int) {
	best, second = 0, -1
	for i := 1; i < len(v); i++ {
		switch {
		case v[i] > v[best]:
			best, second = i, best
		case second < 0 || v[i] > v[second]:
			second = i
		}
	}
	return best, max(second, 0)
}
