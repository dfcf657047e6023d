package tokenizer

import (
	"strings"
	"testing"
	"time"
)

func TestTmpPatho(t *testing.T) {
	tok := qwenFromGGUF(t)
	for _, unit := range []string{"a", " ", "\n", " \n", "1", ".", "'", "'s", "\u0301", "e\u0301", "中", "😀", "<", "<|", "\xff", " a", "  a", "\t.", "ab"} {
		s := strings.Repeat(unit, 50000/len(unit))
		st := time.Now()
		tok.Encode(s, true)
		tok.Encode(s, false)
		t.Logf("%q: %v", unit, time.Since(st))
	}
}
