package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/runtime"
)

func init() { register(logitsCommand()) }

func logitsCommand() *cli.Command {
	return &cli.Command{
		Name:  "logits",
		Usage: "print log-probabilities at every position of a token sequence (JSON lines)",
		Description: "One JSON object per position: {\"pos\":i,\"argmax\":id,\"top\":[[id,logprob],...],\"ids\":[[id,logprob],...]}\n" +
			"with log-softmax values over the whole vocabulary. This output is a stable contract.\n" +
			"The sequence is --tokens, or --tokens-file (a file of ids, or - for stdin: commas, white\n" +
			"space or tokenize's JSON array); it must fit in the model's context.\n\n" +
			"Examples:\n" +
			"   bankai-metal logits -m builtin:tiny --tokens 116,257,32,99 --ids 97,98 --top 3\n" +
			"   bankai-metal tokenize -m builtin:tiny \"the cats\" | bankai-metal logits -m builtin:tiny --tokens-file -",
		Flags: append([]cli.Flag{
			modelFlag,
			&cli.StringFlag{Name: "tokens", Usage: "comma-separated token ids"},
			&cli.StringFlag{Name: "tokens-file", Usage: "read the token ids from this file (- for stdin)"},
			&cli.StringFlag{Name: "ids", Usage: "comma-separated ids whose log-probs to print at every position"},
			&cli.IntFlag{Name: "top", Value: 5, Usage: "how many best ids to print"},
			numericsFlag,
		}, runFlags()...),
		Action: runLogits,
	}
}

// logitsBudget bounds the bytes of logits computed at once: the sequence runs in chunks of
// positions (results are the same as in one batch), so a long one needs no (n, Vocab) buffer.
var logitsBudget = 64 << 20

func runLogits(c *cli.Context) error {
	var toks []int32
	var err error
	switch file := c.String("tokens-file"); {
	case c.IsSet("tokens") && c.IsSet("tokens-file"):
		return fmt.Errorf("--tokens and --tokens-file: give one of them")
	case c.IsSet("tokens-file"):
		if toks, err = readIDs(file, c.App.Reader, 0); err != nil {
			return fmt.Errorf("--tokens-file: %w", err)
		}
	case c.IsSet("tokens"):
		if toks, err = parseIDs(c.String("tokens"), 0); err != nil {
			return fmt.Errorf("--tokens: %w", err)
		}
	default:
		return fmt.Errorf("no tokens: give them with --tokens 1,2,3 or --tokens-file FILE (- for stdin)")
	}
	if len(toks) == 0 {
		return fmt.Errorf("no tokens: the list is empty")
	}
	ids, err := parseIDs(c.String("ids"), 1<<20)
	if err != nil {
		return fmt.Errorf("--ids: %w", err)
	}
	if c.Int("top") < 0 {
		return fmt.Errorf("--top %d: want 0 or more", c.Int("top"))
	}
	m, b, closeRun, err := openRun(c)
	if err != nil {
		return err
	}
	defer closeRun()
	if limit := modelContext(m); len(toks) > limit {
		return fmt.Errorf("%d tokens: more than the model's context of %d", len(toks), limit)
	}
	for i, id := range toks {
		if int(id) >= m.Vocab {
			return fmt.Errorf("token %d (position %d) out of the vocabulary [0,%d)", id, i, m.Vocab)
		}
	}
	for _, id := range ids {
		if int(id) >= m.Vocab {
			return fmt.Errorf("--ids: id %d out of the vocabulary [0,%d)", id, m.Vocab)
		}
	}
	sess, err := b.NewSession(len(toks))
	if err != nil {
		return err
	}
	defer sess.Close() // before closeRun: deferred calls run last first
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	enc := json.NewEncoder(w)
	top := min(c.Int("top"), m.Vocab)
	chunk := max(1, logitsBudget/(4*m.Vocab))
	for from := 0; from < len(toks); from += chunk {
		to := min(from+chunk, len(toks))
		logits, err := sess.Forward(toks[from:to], true)
		if err != nil {
			return err
		}
		for i := range to - from {
			lp := runtime.LogSoftmax(logits[i*m.Vocab : (i+1)*m.Vocab])
			if err := enc.Encode(logitsRecord(from+i, lp, top, ids)); err != nil {
				return err
			}
		}
	}
	return nil
}

// logitsRec is one line of logits' output.
type logitsRec struct {
	Pos    int          `json:"pos"`
	Argmax int          `json:"argmax"`
	Top    [][2]float64 `json:"top"`
	IDs    [][2]float64 `json:"ids"`
}

// logitsRecord is position pos with log-probs lp: the top best ids and the requested ones.
func logitsRecord(pos int, lp []float64, top int, ids []int32) logitsRec {
	order := topK(lp, max(top, 1))
	rec := logitsRec{Pos: pos, Argmax: order[0], Top: [][2]float64{}, IDs: [][2]float64{}}
	for _, id := range order[:top] {
		rec.Top = append(rec.Top, [2]float64{float64(id), round6(lp[id])})
	}
	for _, id := range ids {
		rec.IDs = append(rec.IDs, [2]float64{float64(id), round6(lp[id])})
	}
	return rec
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// topK returns the k ids with the largest values, best first (ties: lower id first).
func topK(v []float64, k int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] > v[idx[b]] })
	return idx[:k]
}
