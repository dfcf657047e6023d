package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// recordingBackend is the CPU backend recording WeightsChanged calls and, in log, the order in
// which it and its sessions are closed.
type recordingBackend struct {
	runtime.Backend
	changed [][]*q1.Matrix
	log     *[]string
}

func (b *recordingBackend) WeightsChanged(mats ...*q1.Matrix) error {
	b.changed = append(b.changed, mats)
	return nil
}

func (b *recordingBackend) NewSession(n int) (runtime.Session, error) {
	s, err := b.Backend.NewSession(n)
	return &loggedSession{Session: s, log: b.log}, err
}

func (b *recordingBackend) Close() error {
	*b.log = append(*b.log, "backend")
	return b.Backend.Close()
}

type loggedSession struct {
	runtime.Session
	log *[]string
}

func (s *loggedSession) Close() error {
	*s.log = append(*s.log, "session")
	return s.Session.Close()
}

// recordingEnv is a genEnv over the tiny model on a recordingBackend, with its registry bound
// to the backend as openGen binds it.
func recordingEnv(t *testing.T, log *[]string) (*genEnv, *recordingBackend) {
	t.Helper()
	m, err := loadPath(synthGGUF(t))
	require.NoError(t, err)
	b := &recordingBackend{Backend: runtime.NewCPU(m), log: log}
	applied := patch.NewApplied(m)
	runtime.BindApplied(applied, b)
	env := &genEnv{model: m, patches: applied, backend: b, errOut: &bytes.Buffer{}}
	env.sess, err = b.NewSession(64)
	require.NoError(t, err)
	return env, b
}

// TestChatPatchRefreshesTouched checks that /patch apply and /patch revert tell the backend
// about exactly the matrices the patch touches, and a refused apply about none.
func TestChatPatchRefreshesTouched(t *testing.T) {
	var log []string
	env, b := recordingEnv(t, &log)
	defer env.close()
	m := env.model
	p := &patch.Patch{Name: "p", Fingerprint: m.Fingerprint(), Flips: []patch.Flip{
		patch.RowFlip(1, "up_proj", 2), patch.GroupFlip(0, "v_proj", 1, 0), patch.BitFlip(1, "up_proj", 3, 4)}}
	file := filepath.Join(t.TempDir(), "p.json")
	require.NoError(t, p.Save(file))
	up, err := m.Matrix(1, "up_proj")
	require.NoError(t, err)
	v, err := m.Matrix(0, "v_proj")
	require.NoError(t, err)
	want := []*q1.Matrix{up, v}

	ch := &chatSession{genEnv: env, out: &bytes.Buffer{}}
	require.NoError(t, chatPatch(ch, "apply "+file))
	require.Equal(t, [][]*q1.Matrix{want}, b.changed)
	require.Error(t, chatPatch(ch, "apply "+file), "already applied")
	require.Len(t, b.changed, 1)
	require.NoError(t, chatPatch(ch, "revert p"))
	require.Equal(t, [][]*q1.Matrix{want, want}, b.changed)
}

// TestGenEnvCloseOrder checks that genEnv.close closes the session before the backend (and
// both before the model, which it closes last).
func TestGenEnvCloseOrder(t *testing.T) {
	var log []string
	env, _ := recordingEnv(t, &log)
	env.close()
	require.Equal(t, []string{"session", "backend"}, log)
}
