package bfs

import (
	"context"
	"testing"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

// benchCandidates are 24 row flips spread over gate/up of the default layers of a 4-layer model.
func benchCandidates(m *runtime.Model) []patch.Flip {
	var out []patch.Flip
	for i, l := range DefaultLayers(m.NumLayers()) {
		for _, p := range DefaultProjs() {
			for r := 0; r < 4; r++ {
				out = append(out, patch.RowFlip(l, p, 17*r+i))
			}
		}
	}
	return out
}

// BenchmarkFlipEval compares candidate flips scored per second by the evaluator (prefix cache,
// batched, LM head restricted to the answer rows) and by the naive path (apply, full forward
// with all logits, revert), on the same model, probes and candidates. Compare the flips/s
// metrics of the sub-benchmarks. "tiny" has the 264-row vocabulary, "vocab32k" the same layers
// with a 32768-row LM head, where computing logits only where needed matters (Bonsai has 151669).
func BenchmarkFlipEval(b *testing.B) {
	for _, v := range []struct {
		name  string
		vocab int
	}{{"tiny", synth.TinyVocab}, {"vocab32k", 32768}} {
		b.Run(v.name, func(b *testing.B) { benchFlipEval(b, tinyModelVocab(b, 4, v.vocab)) })
	}
}

func benchFlipEval(b *testing.B, m *runtime.Model) {
	tok := tinyTok(b)
	probes := flatten([]*ProbeSet{mustSet(b, "math"), mustSet(b, "knowledge")})
	cands := benchCandidates(m)
	all := indices(0, len(probes))
	for _, metric := range []Metric{MetricSeqLogprob, MetricTokenGap} {
		for _, delta := range []bool{false, true} {
			name := "evaluator/" + metric.String()
			if delta {
				name += "/delta"
			}
			b.Run(name, func(b *testing.B) {
				e, err := NewEvaluator(runtime.NewCPU(m), probes, EvaluatorConfig{Metric: metric, Tokenizer: tok,
					CacheLayers: DefaultLayers(m.NumLayers()), Delta: delta})
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					if _, err := e.Score(context.Background(), cands, all); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(cands)*b.N)/b.Elapsed().Seconds(), "flips/s")
			})
		}
		b.Run("naive/"+metric.String(), func(b *testing.B) {
			for range b.N {
				for _, f := range cands {
					naiveFlipScores(b, m, tok, probes, metric, f)
				}
			}
			b.ReportMetric(float64(len(cands)*b.N)/b.Elapsed().Seconds(), "flips/s")
		})
	}
}

// BenchmarkSearchDefault is one default search (upstream's settings: greedy, seq_logprob, 200
// iterations, λ = 2, gate/up rows of DefaultLayers) on the 4-layer tiny model, with the math set
// as target and code + knowledge as controls, as upstream's CLI does.
func BenchmarkSearchDefault(b *testing.B) { benchSearch(b, DefaultSearchOptions()) }

// BenchmarkSearchFast is the same search in ModeFast, scanning 400 sampled rows per round.
func BenchmarkSearchFast(b *testing.B) {
	o := DefaultSearchOptions()
	o.Mode, o.ScanSample = ModeFast, 400
	benchSearch(b, o)
}

func benchSearch(b *testing.B, o SearchOptions) {
	m := tinyModel(b, 4)
	o.Target = []*ProbeSet{mustSet(b, "math")}
	o.Control = []*ProbeSet{mustSet(b, "code"), mustSet(b, "knowledge")}
	o.Tokenizer = tinyTok(b)
	for range b.N {
		res, err := Search(context.Background(), runtime.NewCPU(m), o)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(res.Report.Accepted)), "accepted")
		b.ReportMetric(res.Report.Fitness, "fitness")
		b.ReportMetric(res.Report.Timings.Total/float64(res.Report.Iterations)*1e3, "ms/iter")
	}
}
