package runtime

import "github.com/bankai-metal/bankai-metal/runtime/q1"

// Backend runs a loaded Model on one device. The CPU backend (NewCPU) is the reference; the
// Metal backend lives in package metal. Extra speed paths are the optional capability
// interfaces below, found by type assertion, each with a generic fallback built on Model.
//
// Lifetimes nest: close every Session before its Backend, and the Backend before the Model
// (a device backend may wrap the model's mapped weights).
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
	// Close releases the session's state (its KV cache, on the device for Metal). The session
	// must not be used afterwards; closing twice is harmless.
	Close() error
}

// BatchEvaluator is an optional Backend capability: run decoder layers over a batch in which
// every (candidate, sequence) pair is its own sequence and each candidate's flip applies only to
// its rows. It computes what Model.RunLayers(from, to, x, seqs, hook) computes with a Hook that
// replaces, for each span, output row f.Row of f's projection on rows [Start, Start+N) by its
// value under the flipped weights; CPUBatch is exactly that. The search uses the backend's
// RunFlipped when it has one, else CPUBatch.
type BatchEvaluator interface {
	// RunFlipped runs layers [from, to) over the residual stream x (Σ seqs.N, Hidden) in place,
	// with every span's flip applied to its rows of its projection's output. Sequences may
	// continue their own KV caches exactly as in Model.RunLayers (appended, not committed).
	// Flips never change the weights. Every span passes CheckSpan before anything runs. Results
	// for a row must not depend on the other rows, the batch size or the thread count.
	RunFlipped(from, to int, x []float32, seqs []Seq, flips []FlipSpan) error
}

// Describer is an optional Backend capability: a one-line description of the device and how
// the backend uses it, for logs and --verbose output.
type Describer interface {
	Describe() string
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
func (s *cpuSession) Close() error   { s.c = nil; return nil }
