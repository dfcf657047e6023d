package serve

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime"
)

// BenchmarkStackSwitch measures one stack switch as the scheduler does it between requests:
// the symmetric difference of two stacks' flips, the XOR into the model and WeightsChanged for
// the touched matrices. The two stacks share one patch (whose bits stay put) and differ by one
// patch each; flips counts the flips of each patch (a tenth of them row flips).
func BenchmarkStackSwitch(b *testing.B) {
	for _, flips := range []int{10, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("flips=%d", flips), func(b *testing.B) {
			m := loadTiny(b)
			dir := b.TempDir()
			for i, n := range []string{"shared", "a", "b"} {
				p := randomPatch(b, m, n, uint64(20+i), flips/10, flips-flips/10)
				require.NoError(b, p.Save(filepath.Join(dir, n+".json")))
			}
			tok, err := m.Tokenizer()
			require.NoError(b, err)
			be := runtime.NewCPU(m)
			defer be.Close()
			cat, err := loadCatalog(dir, "tiny", m)
			require.NoError(b, err)
			x, aerr := cat.resolve("base+shared+a", nil)
			require.Nil(b, aerr)
			y, aerr := cat.resolve("base+shared+b", nil)
			require.Nil(b, aerr)
			s, err := newScheduler(be, tok, 64, 1, 0, slog.New(slog.DiscardHandler))
			require.NoError(b, err)
			close(s.quit)
			<-s.stopped // the benchmark owns the model now
			defer s.closeSessions()
			require.NoError(b, s.switchTo(x))
			diff := len(switchFlips(x, y, nil))
			b.ResetTimer()
			for i := range b.N {
				next := y
				if i%2 == 1 {
					next = x
				}
				if err := s.switchTo(next); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(diff), "flips/switch")
			require.NoError(b, s.switchTo(baseStack))
		})
	}
}
