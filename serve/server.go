// Package serve is an OpenAI-compatible HTTP server for one Bonsai model in which every request
// can name a stack of XOR patches: `"model": "base+math+calculus"` or `"patches": [...]`.
//
// One model is in memory. A scheduler goroutine owns its bits: it runs requests of the current
// stack on up to Parallel sessions and, when the next request needs another stack and nothing
// runs, XORs in only the difference between the two stacks and tells the backend which
// matrices changed (microseconds; never a reload). So no forward pass sees another stack's
// bits, and a request gives exactly what `bankai-metal generate --patch ...` gives with the
// same seed.
package serve

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

// Defaults of Config.
const (
	DefaultParallel = 2
	DefaultQueue    = 64
	DefaultMaxBody  = 4 << 20 // bytes
	// writeTimeout bounds one write to a client, so a stalled reader cannot hold a slot.
	writeTimeout = 30 * time.Second
)

// Config describes a server.
type Config struct {
	Backend   runtime.Backend // runs Backend.Model(); the server owns their bits while it runs
	Tokenizer *tokenizer.Tokenizer
	ModelID   string // the base model's name in the API; default: the model's name
	PatchDir  string // *.json patch files offered as ModelID+NAME; "" for none
	Context   int    // context limit of each session in tokens
	Parallel  int    // sequences decoded at once (each has its own KV cache)
	Queue     int    // requests waiting beyond Parallel before 429
	MaxBody   int64  // largest request body in bytes (413 beyond)
	APIKey    string // when set, requests need "Authorization: Bearer KEY"
	Logger    *slog.Logger
}

// Server serves the API. Close it (after http.Server.Shutdown) before closing the backend.
type Server struct {
	cfg     Config
	m       *runtime.Model
	cat     *catalog
	sched   *scheduler
	keyHash *[32]byte
	log     *slog.Logger
	created int64

	hard       context.Context // canceled by Abort: in-flight generations stop
	abort      context.CancelFunc
	closeOnce  sync.Once
	closeErr   error
	templateOK bool
}

// New loads the patch directory, checks every patch against the model and starts the
// scheduler. The model's fingerprint is taken now, before any bit changes.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil || cfg.Tokenizer == nil {
		return nil, errors.New("serve: a backend and a tokenizer are required")
	}
	m := cfg.Backend.Model()
	m.Fingerprint()
	if cfg.ModelID == "" {
		cfg.ModelID = strings.NewReplacer(" ", "-", "+", "-", "/", "-").Replace(m.Source.Name)
		if cfg.ModelID == "" {
			cfg.ModelID = "bonsai"
		}
	}
	if cfg.Context <= 0 {
		cfg.Context = min(4096, max(m.Context, 1))
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.Queue < 0 {
		cfg.Queue = 0
	} else if cfg.Queue == 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cat, err := loadCatalog(cfg.PatchDir, cfg.ModelID, m)
	if err != nil {
		return nil, err
	}
	for _, n := range cat.order {
		if e := cat.entries[n]; e.Err != nil {
			cfg.Logger.Warn("patch refused", "patch", n, "file", e.File, "err", e.Err)
		} else if e.Warning != "" {
			cfg.Logger.Warn("patch loaded", "patch", n, "flips", e.Flips, "warning", e.Warning)
		}
	}
	sched, err := newScheduler(cfg.Backend, cfg.Tokenizer, cfg.Context, cfg.Parallel, cfg.Queue, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, m: m, cat: cat, sched: sched, log: cfg.Logger, created: time.Now().Unix(),
		templateOK: tokenizer.IsQwen3Template(cfg.Tokenizer.ChatTemplate())}
	s.hard, s.abort = context.WithCancel(context.Background())
	if !s.templateOK {
		s.log.Warn("the model's chat template is not the Qwen3 one; formatting chats with the Qwen3 template anyway")
	}
	if cfg.APIKey != "" {
		h := sha256.Sum256([]byte(cfg.APIKey))
		s.keyHash = &h
	}
	return s, nil
}

// ModelID is the base model's name in the API.
func (s *Server) ModelID() string { return s.cfg.ModelID }

// Stats reports the scheduler's counters, the stack-switch times among them.
func (s *Server) Stats() Stats { return s.sched.snapshot() }

// Abort stops every running generation (a shutdown that ran out of time calls it).
func (s *Server) Abort() { s.abort() }

// Close stops the scheduler once no job runs (queued jobs get 503), restores the base
// model's bits and closes the sessions. Call it after http.Server.Shutdown returned (or after
// Abort), then close the backend, then the model.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.sched.close(); s.abort() })
	return s.closeErr
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /v1/models", s.auth(s.models))
	mux.HandleFunc("GET /v1/models/{id}", s.auth(s.model))
	mux.HandleFunc("POST /v1/chat/completions", s.auth(s.chat))
	mux.HandleFunc("POST /v1/completions", s.auth(s.completions))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errNotFound("not_found", "", "no route %s %s", r.Method, r.URL.Path))
	})
	return s.logRequests(mux)
}

// auth checks the API key in constant time (of the key's SHA-256, so not even its length
// leaks).
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	if s.keyHash == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], s.keyHash[:]) != 1 {
			writeError(w, &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key",
				Message: "missing or wrong API key (send Authorization: Bearer KEY)"})
			return
		}
		h(w, r)
	}
}

// statusWriter records the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("handler panic", "path", r.URL.Path, "panic", v)
				if sw.status == 0 {
					writeError(sw, &apiError{Status: 500, Type: "server_error", Message: "internal error"})
				}
			}
			s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "time", time.Since(t0))
		}()
		h.ServeHTTP(sw, r)
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	st := s.Stats()
	status, code := "ok", http.StatusOK
	if err := s.sched.brokenErr(); err != nil {
		status, code = err.Error(), http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "model": s.cfg.ModelID, "fingerprint": s.m.Fingerprint(),
		"backend": s.cfg.Backend.Name(), "context": s.cfg.Context, "parallel": s.cfg.Parallel, "stats": st})
}

func (s *Server) modelInfos() []modelInfo {
	out := []modelInfo{{ID: s.cfg.ModelID, Object: "model", Created: s.created, OwnedBy: "bankai-metal", Ready: true}}
	for _, n := range s.cat.order {
		e := s.cat.entries[n]
		mi := modelInfo{ID: s.cfg.ModelID + "+" + n, Object: "model", Created: s.created, OwnedBy: "bankai-metal",
			Ready: e.Err == nil, Patch: &patchInfo{Name: n, File: e.File, Flips: e.Flips, ID: e.ID, Warning: e.Warning}}
		if e.Err != nil {
			mi.Error = e.Err.Error()
		}
		out = append(out, mi)
	}
	return out
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, modelList{Object: "list", Data: s.modelInfos()})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, mi := range s.modelInfos() {
		if mi.ID == id {
			writeJSON(w, http.StatusOK, mi)
			return
		}
	}
	st, aerr := s.cat.resolve(id, nil)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, modelInfo{ID: s.cat.modelName(st), Object: "model", Created: s.created, OwnedBy: "bankai-metal", Ready: true})
}

// randomSeed draws a seed for a request without one.
func randomSeed() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// newID returns an id such as chatcmpl-3f2a...
func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// apiError is an error response in OpenAI's shape.
type apiError struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   string `json:"param,omitempty"`
	Code    string `json:"code,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

func errBadRequest(code, param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: code, Param: param,
		Message: fmt.Sprintf(format, args...)}
}

func errNotFound(code, param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: code, Param: param,
		Message: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.Status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"encoding the response failed","type":"server_error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
