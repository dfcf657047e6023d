package serve

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// TestServeModels lists the base model and every patch, the refused one with its error.
func TestServeModels(t *testing.T) {
	dir, _ := testPatches(t, loadTiny(t))
	s := newTestServer(t, Config{PatchDir: dir})
	resp, err := http.Get(s.url + "/v1/models")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var list modelList
	require.NoError(t, decodeJSON(resp.Body, &list))
	var ids []string
	for _, mi := range list.Data {
		ids = append(ids, mi.ID)
		if mi.ID == "bankai-tiny+alien" {
			require.False(t, mi.Ready)
			require.Contains(t, mi.Error, "made for model gguf:0000000000000000")
		} else {
			require.True(t, mi.Ready, mi.ID)
		}
	}
	require.Equal(t, []string{"bankai-tiny", "bankai-tiny+alien", "bankai-tiny+alpha", "bankai-tiny+beta"}, ids)

	resp, err = http.Get(s.url + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestServeStackIsolation runs requests for four stacks interleaved and concurrently: each
// answer is exactly the reference (what generate --patch gives with the same seed), and the
// stacks really differ.
func TestServeStackIsolation(t *testing.T) {
	m := loadTiny(t)
	dir, ps := testPatches(t, m)
	s := newTestServer(t, Config{PatchDir: dir, Parallel: 3})
	type stackCase struct {
		model   string
		patches []*patch.Patch
		extra   string
	}
	stacks := []stackCase{
		{"bankai-tiny", nil, ""},
		{"bankai-tiny+alpha", []*patch.Patch{ps["alpha"]}, ""},
		{"base+beta", []*patch.Patch{ps["beta"]}, ""},
		{"bankai-tiny+beta", []*patch.Patch{ps["alpha"], ps["beta"]}, `,"patches":["alpha"]`},
	}
	const n = 24
	want := make([]string, len(stacks))
	wantTokens := make([]int, len(stacks))
	for i, sc := range stacks {
		want[i], wantTokens[i] = reference(t, sc.patches, "hello there", false, 42, n)
	}
	require.NotEqual(t, want[0], want[1])
	require.NotEqual(t, want[1], want[2])
	require.NotEqual(t, want[2], want[3])

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := stacks[i%len(stacks)]
			status, out := s.post(t, "/v1/chat/completions", fmt.Sprintf(
				`{"model":%q,"messages":[{"role":"user","content":"hello there"}],"max_tokens":%d,"seed":42%s}`, sc.model, n, sc.extra))
			if status != http.StatusOK {
				errs <- fmt.Errorf("request %d: status %d: %v", i, status, out)
				return
			}
			if got := chatText(t, out); got != want[i%len(stacks)] {
				errs <- fmt.Errorf("request %d (%s): got %q, want %q", i, sc.model, got, want[i%len(stacks)])
			}
			u := out["usage"].(map[string]any)
			if int(u["completion_tokens"].(float64)) != wantTokens[i%len(stacks)] {
				errs <- fmt.Errorf("request %d: usage %v", i, u)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := s.Stats()
	require.Positive(t, st.Switches)
	t.Logf("%d switches, mean %v, max %v", st.Switches, st.SwitchTotal/time.Duration(st.Switches), st.SwitchMax)

	// Closing restores the base model's bits exactly.
	require.NoError(t, s.Close())
	require.Equal(t, loadTiny(t).ContentFingerprint(), m.ContentFingerprint())
}

// TestServeStreaming checks the SSE shape: a role chunk, content chunks whose concatenation is
// the non-streamed answer, a finish reason, the usage chunk, then [DONE]; and completions.
func TestServeStreaming(t *testing.T) {
	m := loadTiny(t)
	dir, ps := testPatches(t, m)
	s := newTestServer(t, Config{PatchDir: dir})
	want, wantN := reference(t, []*patch.Patch{ps["alpha"]}, "stream me", false, 7, 30)

	resp, err := http.Post(s.url+"/v1/chat/completions", "application/json", strings.NewReader(
		`{"model":"base+alpha","messages":[{"role":"user","content":"stream me"}],"max_tokens":30,"seed":7,"stream":true,"stream_options":{"include_usage":true}}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	chunks, done := streamEvents(t, resp.Body)
	require.True(t, done)
	require.GreaterOrEqual(t, len(chunks), 3)
	first := chunks[0]["choices"].([]any)[0].(map[string]any)["delta"].(map[string]any)
	require.Equal(t, "assistant", first["role"])
	var text strings.Builder
	finish := ""
	for _, c := range chunks[:len(chunks)-1] {
		require.Equal(t, "chat.completion.chunk", c["object"])
		require.Equal(t, "bankai-tiny+alpha", c["model"])
		ch := c["choices"].([]any)[0].(map[string]any)
		if d, ok := ch["delta"].(map[string]any)["content"].(string); ok {
			text.WriteString(d)
		}
		if f, ok := ch["finish_reason"].(string); ok {
			finish = f
		}
	}
	require.Equal(t, want, text.String())
	require.Equal(t, "length", finish)
	last := chunks[len(chunks)-1]
	require.Empty(t, last["choices"])
	require.Equal(t, float64(wantN), last["usage"].(map[string]any)["completion_tokens"])

	// /v1/completions: a raw prompt, as generate --raw.
	want, _ = reference(t, []*patch.Patch{ps["beta"]}, "Once upon", true, 9, 20)
	status, out := s.post(t, "/v1/completions", `{"model":"bankai-tiny","patches":["beta"],"prompt":"Once upon","max_tokens":20,"seed":9}`)
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, "text_completion", out["object"])
	require.Equal(t, want, chatText(t, out))

	resp, err = http.Post(s.url+"/v1/completions", "application/json", strings.NewReader(
		`{"model":"bankai-tiny+beta","prompt":["Once upon"],"max_tokens":20,"seed":9,"stream":true}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	chunks, done = streamEvents(t, resp.Body)
	require.True(t, done)
	text.Reset()
	for _, c := range chunks {
		text.WriteString(c["choices"].([]any)[0].(map[string]any)["text"].(string))
	}
	require.Equal(t, want, text.String())
}

// TestServeStop cuts the answer before the first stop sequence.
func TestServeStop(t *testing.T) {
	s := newTestServer(t, Config{})
	full, _ := reference(t, nil, "stop test", false, 5, 40)
	r := []rune(full)
	stop := string(r[10:12])
	cut := strings.Index(full, stop)
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"messages":[{"role":"user","content":"stop test"}],"max_tokens":40,"seed":5,"stop":[%q,"zzzzzz"],"stream":%v}`, stop, stream)
		if !stream {
			status, out := s.post(t, "/v1/chat/completions", body)
			require.Equal(t, http.StatusOK, status)
			require.Equal(t, full[:cut], chatText(t, out))
			require.Equal(t, "stop", out["choices"].([]any)[0].(map[string]any)["finish_reason"])
			continue
		}
		resp, err := http.Post(s.url+"/v1/chat/completions", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		chunks, done := streamEvents(t, resp.Body)
		resp.Body.Close()
		require.True(t, done)
		var text strings.Builder
		for _, c := range chunks {
			if d, ok := c["choices"].([]any)[0].(map[string]any)["delta"].(map[string]any)["content"].(string); ok {
				text.WriteString(d)
			}
		}
		require.Equal(t, full[:cut], text.String())
	}
}

func TestStopFilter(t *testing.T) {
	var out strings.Builder
	f := &stopFilter{stops: []string{"END", "xy"}, out: func(s string) error { out.WriteString(s); return nil }}
	for _, piece := range []string{"ab", "cE", "N", "x", "q", "E", "ND", "more"} {
		if err := f.add(piece); err != nil {
			require.ErrorIs(t, err, errStopString)
			break
		}
	}
	require.NoError(t, f.flush())
	require.Equal(t, "abcENxq", out.String())
}

// TestServeErrors checks every error status of the API.
func TestServeErrors(t *testing.T) {
	m := loadTiny(t)
	dir, _ := testPatches(t, m)
	s := newTestServer(t, Config{PatchDir: dir, Context: 64, MaxBody: 4096})
	long := strings.Repeat("word ", 100)
	cases := []struct {
		name, path, body string
		status           int
		contains         string
	}{
		{"malformed", "/v1/chat/completions", `{"messages": [`, 400, "malformed JSON"},
		{"not json", "/v1/chat/completions", `hello`, 400, "malformed JSON"},
		{"wrong type", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}`, 400, "max_tokens"},
		{"wrong content type", "/v1/chat/completions", `{"messages":[{"role":"user","content":5}]}`, 400, "content"},
		{"wrong stop type", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"stop":7}`, 400, "stop"},
		{"no messages", "/v1/chat/completions", `{"model":"bankai-tiny"}`, 400, "messages"},
		{"bad role", "/v1/chat/completions", `{"messages":[{"role":"wizard","content":"x"}]}`, 400, "wizard"},
		{"bad temperature", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"temperature":-1}`, 400, "temperature"},
		{"n", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"n":3}`, 400, "one choice"},
		{"oversized prompt", "/v1/chat/completions", `{"messages":[{"role":"user","content":"` + long + `"}]}`, 400, "context of 64"},
		{"oversized completion prompt", "/v1/completions", `{"prompt":"` + long + `"}`, 400, "context of 64"},
		{"bad token", "/v1/completions", `{"prompt":[1,2,99999]}`, 400, "out of range"},
		{"unknown model", "/v1/chat/completions", `{"model":"gpt-4","messages":[{"role":"user","content":"x"}]}`, 404, "unknown model"},
		{"unknown patch", "/v1/chat/completions", `{"model":"bankai-tiny+gamma","messages":[{"role":"user","content":"x"}]}`, 404, `"gamma"`},
		{"unknown patch field", "/v1/completions", `{"prompt":"x","patches":["gamma"]}`, 404, `"gamma"`},
		{"bad patch", "/v1/chat/completions", `{"model":"base+alien","messages":[{"role":"user","content":"x"}]}`, 400, `patch "alien"`},
		{"patch twice", "/v1/chat/completions", `{"model":"base+alpha","patches":["alpha"],"messages":[{"role":"user","content":"x"}]}`, 400, "twice"},
		{"too big", "/v1/chat/completions", `{"messages":[{"role":"user","content":"` + strings.Repeat("a", 5000) + `"}]}`, 413, "limit"},
		{"no route", "/v1/embeddings", `{}`, 404, "no route"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, out := s.post(t, c.path, c.body)
			require.Equal(t, c.status, status, "%v", out)
			e := out["error"].(map[string]any)
			require.Contains(t, e["message"], c.contains)
		})
	}
	// The server still answers after all that.
	status, _ := s.post(t, "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_tokens":2}`)
	require.Equal(t, http.StatusOK, status)
}

// TestServeQueueFull gets a 429 when the slot and the queue are taken.
func TestServeQueueFull(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	testHookStart = func(*job) { started <- struct{}{}; <-release }
	t.Cleanup(func() { testHookStart = nil })
	s := newTestServer(t, Config{Parallel: 1, Queue: 1})
	body := `{"messages":[{"role":"user","content":"x"}],"max_tokens":2}`
	results := make(chan int, 2)
	for range 2 {
		go func() { st, _ := s.post(t, "/v1/chat/completions", body); results <- st }()
	}
	<-started // one runs, one waits in the queue
	require.Eventually(t, func() bool { return s.Stats().Queued == 1 }, 5*time.Second, time.Millisecond)
	status, out := s.post(t, "/v1/chat/completions", body)
	require.Equal(t, http.StatusTooManyRequests, status, "%v", out)
	close(release)
	require.Equal(t, http.StatusOK, <-results)
	require.Equal(t, http.StatusOK, <-results)
}

// TestServeAPIKey requires the key on the API, not on /health.
func TestServeAPIKey(t *testing.T) {
	s := newTestServer(t, Config{APIKey: "sekrit"})
	for _, key := range []string{"", "wrong", "sekri", "sekrit"} {
		req, _ := http.NewRequest("GET", s.url+"/v1/models", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		want := http.StatusUnauthorized
		if key == "sekrit" {
			want = http.StatusOK
		}
		require.Equal(t, want, resp.StatusCode, "key %q", key)
	}
	resp, err := http.Get(s.url + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestServeDisconnect: a client that goes away mid-stream stops its generation.
func TestServeDisconnect(t *testing.T) {
	var tokens atomic.Int64
	testHookToken = func() { tokens.Add(1); time.Sleep(time.Millisecond) }
	t.Cleanup(func() { testHookToken = nil })
	s := newTestServer(t, Config{Context: 4096})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", s.url+"/v1/completions", strings.NewReader(
		`{"prompt":"go on and on","max_tokens":4000,"seed":1,"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	buf := make([]byte, 256)
	_, err = resp.Body.Read(buf)
	require.NoError(t, err)
	cancel()
	resp.Body.Close()
	require.Eventually(t, func() bool { return s.Stats().Canceled == 1 && s.Stats().Running == 0 }, 5*time.Second, time.Millisecond)
	require.Less(t, tokens.Load(), int64(2000), "the generation ran on after the client left")
}

// TestServeShutdownDrains: Shutdown (what SIGTERM triggers) lets a running stream finish and
// refuses new connections.
func TestServeShutdownDrains(t *testing.T) {
	testHookToken = func() { time.Sleep(time.Millisecond) }
	t.Cleanup(func() { testHookToken = nil })
	m := loadTiny(t)
	tok, err := m.Tokenizer()
	require.NoError(t, err)
	b := runtime.NewCPU(m)
	defer b.Close()
	srv, err := New(Config{Backend: b, Tokenizer: tok})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	url := "http://" + ln.Addr().String()

	resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(
		`{"prompt":"drain","max_tokens":200,"seed":1,"stream":true,"stream_options":{"include_usage":true}}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	shut := make(chan error, 1)
	go func() {
		for srv.Stats().Running == 0 {
			time.Sleep(time.Millisecond)
		}
		shut <- hs.Shutdown(context.Background())
	}()
	chunks, done := streamEvents(t, resp.Body)
	require.True(t, done, "the stream was cut")
	require.Equal(t, float64(200), chunks[len(chunks)-1]["usage"].(map[string]any)["completion_tokens"])
	require.NoError(t, <-shut)
	_, err = http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"x"}`))
	require.Error(t, err, "a new request after shutdown")
	require.NoError(t, srv.Close())
}

// recordingBackend records the matrices WeightsChanged is told about.
type recordingBackend struct {
	*runtime.CPU
	mu      sync.Mutex
	changed [][]*q1.Matrix
}

func (r *recordingBackend) WeightsChanged(mats ...*q1.Matrix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changed = append(r.changed, mats)
	return nil
}

// TestServeSwitchTouchesDifference: a switch between stacks sharing a patch flips only the
// other patches' bits and refreshes exactly their matrices.
func TestServeSwitchTouchesDifference(t *testing.T) {
	m := loadTiny(t)
	dir := t.TempDir()
	shared := randomPatch(t, m, "shared", 10, 20, 20)
	// Patches confined to one matrix each, so the touched set is known.
	only := func(name string, layer int, proj string, rows ...int) *patch.Patch {
		p := &patch.Patch{Name: name, Fingerprint: m.Fingerprint(), Metadata: map[string]any{}}
		for _, r := range rows {
			p.Flips = append(p.Flips, patch.RowFlip(layer, proj, r))
		}
		return p
	}
	// "shared" may touch every matrix: filter it away from L1.
	var keep []patch.Flip
	for _, f := range shared.Flips {
		if f.Layer == 0 {
			keep = append(keep, f)
		}
	}
	shared.Flips = keep
	a := only("a", 1, "up_proj", 1, 2, 3)
	bp := only("b", 1, "k_proj", 4, 5)
	for _, p := range []*patch.Patch{shared, a, bp} {
		require.NoError(t, p.Save(dir+"/"+p.Name+".json"))
	}
	rb := &recordingBackend{CPU: runtime.NewCPU(m)}
	s := newTestServerModel(t, m, Config{Backend: rb, PatchDir: dir, Parallel: 1})
	body := func(model string) string {
		return fmt.Sprintf(`{"model":%q,"prompt":"x","max_tokens":1}`, model)
	}
	for _, model := range []string{"base+shared+a", "base+shared+b"} {
		status, out := s.post(t, "/v1/completions", body(model))
		require.Equal(t, http.StatusOK, status, "%v", out)
	}
	up, _ := m.Matrix(1, "up_proj")
	k, _ := m.Matrix(1, "k_proj")
	rb.mu.Lock()
	require.Len(t, rb.changed, 2)
	require.ElementsMatch(t, []*q1.Matrix{up, k}, rb.changed[1], "the switch a -> b touches only L1.up_proj and L1.k_proj")
	rb.mu.Unlock()
}
