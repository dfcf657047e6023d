package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/runtime"
)

func init() { register(logitsCommand()) }

func logitsCommand() *cli.Command {
	return &cli.Command{
		Name:  "logits",
		Usage: "print log-probabilities at every position of a token sequence (JSON lines)",
		Description: "One JSON object per position: {\"pos\":i,\"argmax\":id,\"top\":[[id,logprob],...],\"ids\":[[id,logprob],...]}\n" +
			"with log-softmax values over the whole vocabulary. This output is a stable contract.\n\n" +
			"Example: bankai-metal logits -m builtin:tiny --tokens 116,257,32,99 --ids 97,98 --top 3",
		Flags: append([]cli.Flag{
			modelFlag,
			&cli.StringFlag{Name: "tokens", Usage: "comma-separated token ids", Required: true},
			&cli.StringFlag{Name: "ids", Usage: "comma-separated ids whose log-probs to print at every position"},
			&cli.IntFlag{Name: "top", Value: 5, Usage: "how many best ids to print"},
			numericsFlag,
		}, runFlags()...),
		Action: func(c *cli.Context) error {
			toks, err := parseIDs(c.String("tokens"))
			if err != nil {
				return fmt.Errorf("--tokens: %w", err)
			}
			if len(toks) == 0 {
				return fmt.Errorf("--tokens: no tokens")
			}
			ids, err := parseIDs(c.String("ids"))
			if err != nil {
				return fmt.Errorf("--ids: %w", err)
			}
			m, b, closeRun, err := openRun(c)
			if err != nil {
				return err
			}
			defer closeRun()
			for _, id := range ids {
				if int(id) >= m.Vocab || id < 0 {
					return fmt.Errorf("--ids: id %d out of range [0,%d)", id, m.Vocab)
				}
			}
			sess, err := b.NewSession(len(toks))
			if err != nil {
				return err
			}
			logits, err := sess.Forward(toks, true)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(c.App.Writer)
			defer w.Flush()
			enc := json.NewEncoder(w)
			top := min(max(c.Int("top"), 0), m.Vocab)
			for i := range toks {
				lp := runtime.LogSoftmax(logits[i*m.Vocab : (i+1)*m.Vocab])
				order := topK(lp, max(top, 1))
				rec := struct {
					Pos    int          `json:"pos"`
					Argmax int          `json:"argmax"`
					Top    [][2]float64 `json:"top"`
					IDs    [][2]float64 `json:"ids"`
				}{Pos: i, Argmax: order[0], Top: [][2]float64{}, IDs: [][2]float64{}}
				for _, id := range order[:top] {
					rec.Top = append(rec.Top, [2]float64{float64(id), round6(lp[id])})
				}
				for _, id := range ids {
					rec.IDs = append(rec.IDs, [2]float64{float64(id), round6(lp[id])})
				}
				if err := enc.Encode(rec); err != nil {
					return err
				}
			}
			return nil
		},
	}
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

// parseIDs parses "1,2,3" (spaces allowed); "" is an empty list.
func parseIDs(s string) ([]int32, error) {
	var out []int32
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("bad token id %q", f)
		}
		out = append(out, int32(v))
	}
	return out, nil
}
