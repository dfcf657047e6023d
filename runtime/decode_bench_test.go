package runtime_test

import (
	"os"
	"testing"

	"github.com/bankai-metal/bankai-metal/runtime"
)

func BenchmarkDecode8BFile(b *testing.B) {
	p := os.Getenv("BANKAI_8B")
	if p == "" {
		b.Skip("BANKAI_8B not set")
	}
	m, err := runtime.Load(p)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	c := m.NewKVCache(4096)
	if _, err := m.Forward(c, []int32{1, 2, 3, 4}, false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Forward(c, []int32{int32(5 + i%200)}, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}
