package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

// Errors of scheduler.submit.
var (
	errQueueFull = errors.New("serve: the request queue is full")
	errClosed    = errors.New("serve: the server is shutting down")
)

// job is one generation request waiting for, or holding, a slot.
type job struct {
	ctx    context.Context
	stack  *stack
	prompt []int32
	opt    runtime.GenerateOptions
	emit   func(text string) error // called from the slot's goroutine
	done   chan jobResult          // buffered 1
	queued time.Time
}

type jobResult struct {
	st  runtime.GenerateStats
	err error // an error of emit (such as errStopString) is returned as is
}

// slot is one session (KV cache) and what it holds, so a request sharing a prefix with the
// slot's last one under the same stack feeds only the rest.
type slot struct {
	sess   runtime.Session
	stack  string  // key of the stack the cache was computed under
	tokens []int32 // the tokens the session holds
}

// scheduler owns the model's bits. Jobs run on up to len(slots) sessions at once, all under
// the current stack; a stack switch waits until no job runs, so no forward pass ever sees bits
// being switched. Requests are grouped by stack: jobs of the current stack are started ahead
// of older jobs of another stack, at most batch in a row, after which the oldest job's stack
// gets its turn.
type scheduler struct {
	m       *runtime.Model
	b       runtime.Backend
	tok     *tokenizer.Tokenizer
	log     *slog.Logger
	batch   int
	forward sync.Mutex // one forward pass at a time (a device backend may not be reentrant)

	submitc  chan *job
	finished chan *slot
	wake     chan struct{}
	quit     chan struct{}
	stopped  chan struct{}
	capacity chan struct{} // one token per queued or running job

	// Owned by the run goroutine.
	cur      *stack
	free     []*slot
	all      []*slot
	pending  []*job
	inflight int
	streak   int         // jobs started since the last switch
	diffBuf  []boundFlip // scratch of switchTo

	statsMu sync.Mutex
	stats   Stats
	broken  error // the bits could not be restored after a failed switch: refuse everything
}

// Stats counts what the scheduler did.
type Stats struct {
	Stack       string        `json:"stack"` // the stack applied now ("" = base)
	Switches    int           `json:"switches"`
	SwitchTotal time.Duration `json:"switch_total_ns"`
	SwitchMax   time.Duration `json:"switch_max_ns"`
	SwitchLast  time.Duration `json:"switch_last_ns"`
	Completed   int           `json:"completed"`
	Canceled    int           `json:"canceled"`
	Running     int           `json:"running"`
	Queued      int           `json:"queued"`
}

func newScheduler(b runtime.Backend, tok *tokenizer.Tokenizer, ctx, parallel, queue int, log *slog.Logger) (*scheduler, error) {
	s := &scheduler{
		m: b.Model(), b: b, tok: tok, log: log, batch: max(8, 2*parallel),
		submitc: make(chan *job), finished: make(chan *slot), wake: make(chan struct{}, 1),
		quit: make(chan struct{}), stopped: make(chan struct{}),
		capacity: make(chan struct{}, parallel+queue), cur: baseStack,
	}
	for range parallel {
		sess, err := b.NewSession(ctx)
		if err != nil {
			s.closeSessions()
			return nil, fmt.Errorf("serve: new session: %w", err)
		}
		sl := &slot{sess: &lockedSession{Session: sess, mu: &s.forward}}
		s.all = append(s.all, sl)
		s.free = append(s.free, sl)
	}
	go s.run()
	return s, nil
}

// lockedSession serialises forward passes across sessions.
type lockedSession struct {
	runtime.Session
	mu *sync.Mutex
}

func (l *lockedSession) Forward(tokens []int32, all bool) ([]float32, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Session.Forward(tokens, all)
}

// submit queues a job and waits for its result. It fails at once with errQueueFull when
// parallel+queue jobs are already queued or running, and with errClosed after close.
func (s *scheduler) submit(j *job) jobResult {
	select {
	case s.capacity <- struct{}{}:
	default:
		return jobResult{err: errQueueFull}
	}
	defer func() { <-s.capacity }()
	j.done = make(chan jobResult, 1)
	j.queued = time.Now()
	select {
	case s.submitc <- j:
	case <-s.quit:
		return jobResult{err: errClosed}
	}
	// A job canceled while queued must leave the queue without waiting for an event.
	stop := context.AfterFunc(j.ctx, func() {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	})
	defer stop()
	return <-j.done
}

// close stops the scheduler after the running jobs end (queued ones fail with errClosed),
// restores the base model's bits and closes the sessions.
func (s *scheduler) close() error {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.stopped
	err := s.switchTo(baseStack)
	s.closeSessions()
	return err
}

func (s *scheduler) closeSessions() {
	for _, sl := range s.all {
		sl.sess.Close()
	}
	s.all, s.free = nil, nil
}

func (s *scheduler) snapshot() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// brokenErr is the error that stopped the scheduler from restoring the bits, or nil.
func (s *scheduler) brokenErr() error {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.broken
}

func (s *scheduler) updateStats(f func(st *Stats)) {
	s.statsMu.Lock()
	f(&s.stats)
	s.statsMu.Unlock()
}

func (s *scheduler) run() {
	defer close(s.stopped)
	quitting := false
	for {
		if !quitting {
			s.dispatch()
		}
		s.updateStats(func(st *Stats) { st.Running, st.Queued = s.inflight, len(s.pending) })
		if quitting && s.inflight == 0 {
			return
		}
		select {
		case j := <-s.submitc:
			if quitting {
				j.done <- jobResult{err: errClosed}
			} else {
				s.pending = append(s.pending, j)
			}
		case sl := <-s.finished:
			s.inflight--
			s.free = append(s.free, sl)
		case <-s.wake:
		case <-s.quit:
			if !quitting {
				quitting = true
				for _, j := range s.pending {
					j.done <- jobResult{err: errClosed}
				}
				s.pending = nil
			}
		}
	}
}

// dispatch starts what can start: drops canceled jobs, runs jobs of the current stack on free
// slots, and switches the stack when nothing runs and the next job needs another one.
func (s *scheduler) dispatch() {
	s.pending = slices.DeleteFunc(s.pending, func(j *job) bool {
		if j.ctx.Err() == nil {
			return false
		}
		j.done <- jobResult{st: runtime.GenerateStats{Stop: runtime.StopCanceled}}
		s.updateStats(func(st *Stats) { st.Canceled++ })
		return true
	})
	for len(s.free) > 0 && len(s.pending) > 0 {
		i := -1
		if s.pending[0].stack.key == s.cur.key {
			i = 0
		} else if s.streak < s.batch {
			i = slices.IndexFunc(s.pending, func(j *job) bool { return j.stack.key == s.cur.key })
		}
		if i < 0 {
			if s.inflight > 0 {
				return // let the running jobs finish before switching
			}
			next := s.pending[0]
			if err := s.switchTo(next.stack); err != nil {
				s.pending = s.pending[1:]
				next.done <- jobResult{err: err}
			}
			continue
		}
		j := s.pending[i]
		s.pending = slices.Delete(s.pending, i, i+1)
		s.start(j)
	}
}

// start runs j on the free slot that holds the longest prefix of its prompt.
func (s *scheduler) start(j *job) {
	best, bestN := 0, -1
	for k, sl := range s.free {
		n := 0
		if sl.stack == s.cur.key {
			n = commonPrefix(sl.tokens, j.prompt)
		}
		if n > bestN {
			best, bestN = k, n
		}
	}
	sl := s.free[best]
	s.free = slices.Delete(s.free, best, best+1)
	if sl.stack != s.cur.key {
		sl.sess.Truncate(0)
		sl.tokens, sl.stack = sl.tokens[:0], s.cur.key
	} else {
		sl.sess.Truncate(bestN)
	}
	s.inflight++
	s.streak++
	go s.work(sl, j)
}

// work runs one job on a slot; a panic becomes the job's error, never a crash.
func (s *scheduler) work(sl *slot, j *job) {
	var res jobResult
	defer func() {
		if r := recover(); r != nil {
			res = jobResult{err: fmt.Errorf("serve: generation panicked: %v", r)}
			sl.sess.Truncate(0)
			sl.tokens = sl.tokens[:0]
		}
		s.updateStats(func(st *Stats) {
			if res.st.Stop == runtime.StopCanceled {
				st.Canceled++
			} else {
				st.Completed++
			}
		})
		j.done <- res
		s.finished <- sl
	}()
	if testHookStart != nil {
		testHookStart(j)
	}
	res.st, res.err = runtime.Generate(j.ctx, sl.sess, s.tok, j.prompt, j.opt, j.emit)
	// The session holds a prefix of prompt+generated (Generate's contract); remember it.
	full := append(append(sl.tokens[:0], j.prompt...), res.st.Tokens...)
	if n := sl.sess.Len(); n <= len(full) && (res.err == nil || errors.Is(res.err, errStopString)) {
		sl.tokens = full[:n]
	} else {
		sl.sess.Truncate(0)
		sl.tokens = full[:0]
	}
}

// testHookStart, when set by a test, runs at the start of every job.
var testHookStart func(*job)

// switchTo makes the model's bits those of next: it XORs in the symmetric difference of the
// current stack's flips and next's and tells the backend which matrices changed. It runs only
// while no forward pass runs.
func (s *scheduler) switchTo(next *stack) error {
	if err := s.brokenErr(); err != nil {
		return err
	}
	if next.key == s.cur.key {
		return nil
	}
	t0 := time.Now()
	diff := switchFlips(s.cur, next, s.diffBuf)
	s.diffBuf = diff[:0]
	if err := s.flip(diff); err != nil {
		return fmt.Errorf("serve: switch to %q: %w", next.key, err)
	}
	d := time.Since(t0)
	s.cur, s.streak = next, 0
	s.updateStats(func(st *Stats) {
		st.Stack = next.key
		st.Switches++
		st.SwitchTotal += d
		st.SwitchMax = max(st.SwitchMax, d)
		st.SwitchLast = d
	})
	s.log.Debug("stack switch", "to", next.key, "flips", len(diff), "time", d)
	return nil
}

// switchFlips returns the flips that turn stack a's bits into stack b's: the flips in exactly
// one of the two (a flip in both cancels; XOR is its own inverse), by merging the stacks'
// sorted flip lists into buf.
func switchFlips(a, b *stack, buf []boundFlip) []boundFlip {
	x, y := a.flips, b.flips
	out := buf[:0]
	for len(x) > 0 && len(y) > 0 {
		switch kx, ky := x[0].key, y[0].key; {
		case kx < ky:
			out, x = append(out, x[0]), x[1:]
		case kx > ky:
			out, y = append(out, y[0]), y[1:]
		default:
			x, y = x[1:], y[1:]
		}
	}
	return append(append(out, x...), y...)
}

// flip XORs flips into the model and refreshes exactly the matrices they touch on the
// backend. If the backend fails, the bits are flipped back; if that fails too the scheduler
// refuses all further work.
func (s *scheduler) flip(flips []boundFlip) error {
	if len(flips) == 0 {
		return nil
	}
	var mats []*q1.Matrix // flips are sorted by matrix: each one's flips are contiguous
	for _, f := range flips {
		f.mat.Flip(f.row(), f.group(), f.col())
		if len(mats) == 0 || mats[len(mats)-1] != f.mat {
			mats = append(mats, f.mat)
		}
	}
	if err := s.b.WeightsChanged(mats...); err != nil {
		for _, f := range flips {
			f.mat.Flip(f.row(), f.group(), f.col())
		}
		if s.b.WeightsChanged(mats...) == nil {
			return err
		}
		broken := fmt.Errorf("serve: the device copy of the weights could not be refreshed: %w", err)
		s.updateStats(func(*Stats) { s.broken = broken })
		return broken
	}
	return nil
}

// boundFlip is a validated flip bound to its matrix. key packs its address so that flips sort
// by (layer, projection, row, group, col) and compare as integers.
type boundFlip struct {
	key uint64 // layer:12 proj:3 row:24 group+1:8 col+1:17
	mat *q1.Matrix
}

// Field widths of boundFlip.key; bindFlips refuses addresses beyond them.
const (
	colBits, groupBits, rowBits, projBits, layerBits = 17, 8, 24, 3, 12
)

func (f boundFlip) row() int   { return int(f.key>>(colBits+groupBits)) & (1<<rowBits - 1) }
func (f boundFlip) group() int { return int(f.key>>colBits)&(1<<groupBits-1) - 1 }
func (f boundFlip) col() int   { return int(f.key)&(1<<colBits-1) - 1 }

// bindFlips resolves flips (already validated against m) to their matrices, sorted by key.
func bindFlips(m *runtime.Model, flips []patch.Flip) ([]boundFlip, error) {
	out := make([]boundFlip, len(flips))
	for i, f := range flips {
		p, err := runtime.ParseProj(f.Proj)
		if err != nil {
			return nil, err
		}
		mat, err := m.Matrix(f.Layer, f.Proj)
		if err != nil {
			return nil, err
		}
		if err := mat.CheckFlip(f.Row, f.Group, f.Col); err != nil {
			return nil, err
		}
		if f.Layer >= 1<<layerBits || f.Row >= 1<<rowBits || f.Group+1 >= 1<<groupBits || f.Col+1 >= 1<<colBits {
			return nil, fmt.Errorf("flip %v: address beyond what the server indexes", f)
		}
		key := uint64(f.Layer)<<(projBits+rowBits+groupBits+colBits) | uint64(p)<<(rowBits+groupBits+colBits) |
			uint64(f.Row)<<(groupBits+colBits) | uint64(f.Group+1)<<colBits | uint64(f.Col+1)
		out[i] = boundFlip{key: key, mat: mat}
	}
	slices.SortFunc(out, func(a, b boundFlip) int { return cmp.Compare(a.key, b.key) })
	return out, nil
}

func commonPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
