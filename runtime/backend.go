package runtime

import "github.com/bankai-metal/bankai-metal/runtime/q1"

// Backend runs a loaded Model on one device. The CPU backend (NewCPU) is the reference; the
// Metal backend lives in package metal. Extra speed paths are optional interfaces found by type
// assertion (bfs.BatchEvaluator, for instance), with generic fallbacks built on these methods.
type Backend interface {
	// Name is "cpu" or "metal".
	Name() string
	// Model is the model the backend runs; its matrices are the ones patches flip.
	Model() *Model
	// NewSession allocates the state (KV cache) of one sequence of at most maxCtx tokens.
	NewSession(maxCtx int) (Session, error)
	// WeightsChanged tells the backend that sign bits of these matrices changed in host memory
	// (a patch was applied or reverted), so device copies, if any, must be refreshed.
	WeightsChanged(mats ...*q1.Matrix) error
	// Close releases device resources (not the model).
	Close() error
}

// Session is one sequence being decoded.
type Session interface {
	// Forward appends tokens and returns the logits of the last one (Vocab), or of every new
	// token (len(tokens), Vocab) when all is true.
	Forward(tokens []int32, all bool) ([]float32, error)
	// Len is the number of tokens in the cache; Max is the context limit.
	Len() int
	Max() int
	// Truncate forgets every token from position n on (n <= Len).
	Truncate(n int)
}

// CPU is the pure-Go backend.
type CPU struct{ m *Model }

// NewCPU returns the CPU backend for m.
func NewCPU(m *Model) *CPU { return &CPU{m: m} }

// Name implements Backend.
func (b *CPU) Name() string { return "cpu" }

// Model implements Backend.
func (b *CPU) Model() *Model { return b.m }

// NewSession implements Backend.
func (b *CPU) NewSession(maxCtx int) (Session, error) {
	return &cpuSession{m: b.m, c: b.m.NewKVCache(maxCtx)}, nil
}

// WeightsChanged implements Backend: the CPU reads the host bits directly.
func (b *CPU) WeightsChanged(...*q1.Matrix) error { return nil }

// Close implements Backend.
func (b *CPU) Close() error { return nil }

type cpuSession struct {
	m *Model
	c *KVCache
}

func (s *cpuSession) Forward(tokens []int32, all bool) ([]float32, error) {
	return s.m.Forward(s.c, tokens, all)
}
func (s *cpuSession) Len() int       { return s.c.Len() }
func (s *cpuSession) Max() int       { return s.c.Max }
func (s *cpuSession) Truncate(n int) { s.c.Truncate(n) }
