package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
)

// TestLogitsContractAgainstOracle runs `logits` on the llama.cpp oracle model for the "the cats"
// sequence and compares every printed log-prob with llama.cpp's: within the float tolerance
// (0.2) by default, and within 1e-5 with --numerics llama (llama.cpp's own arithmetic).
func TestLogitsContractAgainstOracle(t *testing.T) {
	model := testenv.Shared(t, "oracle", "tiny-q1.gguf")
	var oracle struct {
		Sequences []struct {
			Name      string
			Tokens    []int32
			Positions []struct {
				Argmax   int
				Margin   float64 `json:"top2_margin"`
				LogProbs []float64
			}
		}
	}
	testenv.ReadJSON(t, testenv.Shared(t, "oracle", "tiny-q1.logprobs.json.gz"), &oracle)
	var seq = oracle.Sequences[1]
	require.Equal(t, "len7", seq.Name)
	var toks, ids []string
	for _, tk := range seq.Tokens {
		toks = append(toks, fmt.Sprint(tk))
	}
	for id := 0; id < 262; id++ {
		ids = append(ids, fmt.Sprint(id))
	}
	for _, c := range []struct {
		numerics string
		tol      float64
	}{{"float", 0.2}, {"llama", 1e-5}} {
		out, _, err := runCLI(t, "", "logits", "-m", model, "--tokens", strings.Join(toks, ","),
			"--ids", strings.Join(ids, ","), "--top", "3", "--numerics", c.numerics)
		require.NoError(t, err)
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		pos := 0
		for sc.Scan() {
			var rec struct {
				Pos    int
				Argmax int
				Top    [][2]float64
				IDs    [][2]float64
			}
			require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
			require.Equal(t, pos, rec.Pos)
			want := seq.Positions[pos]
			require.Len(t, rec.IDs, 262)
			for _, p := range rec.IDs {
				require.LessOrEqual(t, math.Abs(p[1]-want.LogProbs[int(p[0])]), c.tol, "%s pos %d id %v", c.numerics, pos, p[0])
			}
			require.Len(t, rec.Top, 3)
			require.Equal(t, rec.Argmax, int(rec.Top[0][0]))
			if want.Margin >= 0.1 || c.numerics == "llama" {
				require.Equal(t, want.Argmax, rec.Argmax, "%s pos %d", c.numerics, pos)
			}
			pos++
		}
		require.Equal(t, len(seq.Tokens), pos)
	}
}
