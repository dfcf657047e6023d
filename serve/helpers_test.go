package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

// modelPath is the synthetic tiny model, written once per test binary.
var modelPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "serve-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	modelPath = filepath.Join(dir, "tiny.gguf")
	if err := synth.Tiny().WriteGGUF(modelPath); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// loadTiny loads a fresh copy of the tiny model (its own copy-on-write mapping, so flips in one
// test never leak into another).
func loadTiny(t testing.TB) *runtime.Model {
	t.Helper()
	m, err := runtime.Load(modelPath)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// randomPatch makes a patch of rows row flips and bits bit flips spread over every matrix,
// deterministic from seed, for the model m.
func randomPatch(t testing.TB, m *runtime.Model, name string, seed uint64, rows, bits int) *patch.Patch {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	type key struct {
		l    int
		proj string
		r, c int
	}
	seen := map[key]bool{}
	var flips []patch.Flip
	projs := patch.Projections()
	for len(flips) < rows+bits {
		l, proj := rng.IntN(m.NumLayers()), projs[rng.IntN(len(projs))]
		mat, err := m.Matrix(l, proj)
		require.NoError(t, err)
		k := key{l, proj, rng.IntN(mat.Rows), -1}
		if len(flips) >= rows {
			k.c = rng.IntN(mat.Cols)
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		if k.c < 0 {
			flips = append(flips, patch.RowFlip(l, proj, k.r))
		} else {
			flips = append(flips, patch.BitFlip(l, proj, k.r, k.c))
		}
	}
	return &patch.Patch{Name: name, BaseModel: "bankai-tiny", Fingerprint: m.Fingerprint(), Flips: flips, Metadata: map[string]any{}}
}

// testPatches writes patches A and B (and a patch for another model, "alien") to a temp dir.
func testPatches(t testing.TB, m *runtime.Model) (dir string, ps map[string]*patch.Patch) {
	t.Helper()
	dir = t.TempDir()
	ps = map[string]*patch.Patch{
		"alpha": randomPatch(t, m, "alpha", 1, 40, 200),
		"beta":  randomPatch(t, m, "beta", 2, 40, 200),
	}
	for n, p := range ps {
		require.NoError(t, p.Save(filepath.Join(dir, n+".json")))
	}
	alien := randomPatch(t, m, "alien", 3, 4, 4)
	alien.Fingerprint = "gguf:0000000000000000"
	require.NoError(t, alien.Save(filepath.Join(dir, "alien.json")))
	return dir, ps
}

// testServer is a Server on httptest over its own copy of the tiny model.
type testServer struct {
	*Server
	m   *runtime.Model
	ts  *httptest.Server
	url string
}

func newTestServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	m := loadTiny(t)
	return newTestServerModel(t, m, cfg)
}

func newTestServerModel(t testing.TB, m *runtime.Model, cfg Config) *testServer {
	t.Helper()
	tok, err := m.Tokenizer()
	require.NoError(t, err)
	b := runtime.NewCPU(m)
	if cfg.Backend == nil {
		cfg.Backend = b
	}
	cfg.Tokenizer = tok
	srv, err := New(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		require.NoError(t, srv.Close())
		b.Close()
	})
	return &testServer{Server: srv, m: m, ts: ts, url: ts.URL}
}

// post sends a JSON body and returns the status and the decoded response.
func (s *testServer) post(t testing.TB, path, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(s.url+path, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &out), "body: %s", data)
	return resp.StatusCode, out
}

// chatText is the content of a non-streamed chat completion.
func chatText(t testing.TB, out map[string]any) string {
	t.Helper()
	ch := out["choices"].([]any)[0].(map[string]any)
	if msg, ok := ch["message"].(map[string]any); ok {
		return msg["content"].(string)
	}
	return ch["text"].(string)
}

// streamEvents reads server-sent events until [DONE] and returns the decoded chunks.
func streamEvents(t testing.TB, r io.Reader) (chunks []map[string]any, done bool) {
	t.Helper()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		require.True(t, ok, "not an SSE data line: %q", line)
		if data == "[DONE]" {
			return chunks, true
		}
		var c map[string]any
		require.NoError(t, json.Unmarshal([]byte(data), &c))
		chunks = append(chunks, c)
	}
	return chunks, false
}

// reference is what `bankai-metal generate --patch P... --seed S -n N -p PROMPT` prints (without
// the newline): a fresh model with the patches applied through patch.Applied, the prompt in the
// Qwen3 chat template with thinking off (or raw), Bonsai's default sampler with the seed.
func reference(t testing.TB, ps []*patch.Patch, prompt string, raw bool, seed uint64, n int) (string, int) {
	t.Helper()
	m := loadTiny(t)
	a := patch.NewApplied(m)
	for _, p := range ps {
		require.NoError(t, a.Apply(p, false))
	}
	tok, err := m.Tokenizer()
	require.NoError(t, err)
	text := prompt
	if !raw {
		think := false
		text, err = tokenizer.RenderChat([]tokenizer.Message{{Role: "user", Content: prompt}},
			tokenizer.ChatOptions{AddGenerationPrompt: true, EnableThinking: &think})
		require.NoError(t, err)
	}
	ids := tok.Encode(text, true)
	if tok.AddBOS() && tok.BOS() >= 0 {
		ids = append([]int32{tok.BOS()}, ids...)
	}
	b := runtime.NewCPU(m)
	defer b.Close()
	sess, err := b.NewSession(4096)
	require.NoError(t, err)
	defer sess.Close()
	cfg := runtime.DefaultSampler()
	cfg.Seed = seed
	var out bytes.Buffer
	st, err := runtime.Generate(context.Background(), sess, tok, ids, runtime.GenerateOptions{MaxTokens: n, Sampler: runtime.NewSampler(cfg)},
		func(s string) error { out.WriteString(s); return nil })
	require.NoError(t, err)
	return out.String(), st.GenTokens
}

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
