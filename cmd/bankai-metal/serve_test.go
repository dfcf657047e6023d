package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeMatchesGenerate runs `serve` in-process and checks that a request naming a patch
// answers exactly what `generate --patch` prints with the same seed, then that cancelling
// (what SIGTERM does) stops the server cleanly.
func TestServeMatchesGenerate(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.gguf")
	require.NoError(t, synth.Tiny().WriteGGUF(model))
	m, err := runtime.Load(model)
	require.NoError(t, err)
	p := &patch.Patch{Name: "rows", Fingerprint: m.Fingerprint(), Metadata: map[string]any{}}
	for r := range 40 {
		p.Flips = append(p.Flips, patch.RowFlip(r%2, patch.Projections()[r%7], r))
	}
	m.Close()
	patches := filepath.Join(dir, "patches")
	require.NoError(t, os.Mkdir(patches, 0o755))
	require.NoError(t, p.Save(filepath.Join(patches, "rows.json")))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app := newApp()
	errOut := &syncBuffer{}
	app.Writer, app.ErrWriter = &bytes.Buffer{}, errOut
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, app, []string{"bankai-metal", "serve", "-m", model, "--patches", patches, "--port", "0"})
	}()
	addr := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+)`)
	var url string
	require.Eventually(t, func() bool {
		if m := addr.FindStringSubmatch(errOut.String()); m != nil {
			url = m[1]
		}
		return url != ""
	}, 10*time.Second, 5*time.Millisecond, "serve did not start: %s", errOut.String())

	var answers []string
	for _, c := range []struct{ model, patch string }{{"bankai-tiny", ""}, {"bankai-tiny+rows", "rows"}} {
		args := []string{"generate", "-m", model, "-p", "hello", "--seed", "11", "-n", "20"}
		if c.patch != "" {
			args = append(args, "--patch", filepath.Join(patches, c.patch+".json"))
		}
		want, _ := mustRun(t, "", args...)
		resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(
			`{"model":%q,"messages":[{"role":"user","content":"hello"}],"max_tokens":20,"seed":11}`, c.model)))
		require.NoError(t, err)
		var out struct {
			Choices []struct {
				Message struct{ Content string }
			}
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, strings.TrimSuffix(want, "\n"), out.Choices[0].Message.Content, c.model)
		answers = append(answers, want)
	}
	require.NotEqual(t, answers[0], answers[1], "the patch should change the answer")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	require.Contains(t, errOut.String(), "stopped after 2 requests")
}

// TestServeFlags refuses bad flag values before loading anything.
func TestServeFlags(t *testing.T) {
	_, _, err := runCLI(t, "", "serve", "-m", "builtin:tiny", "--port", "70000")
	require.ErrorContains(t, err, "--port 70000")
	_, _, err = runCLI(t, "", "serve", "-m", "builtin:tiny", "--parallel", "0")
	require.ErrorContains(t, err, "--parallel 0")
}
