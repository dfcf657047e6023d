//go:build unix

package atomicfile

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// interruptDuring sends sig to this process and keeps writing until the write is stopped.
func interruptDuring(t *testing.T, sig syscall.Signal, w io.Writer) error {
	require.NoError(t, syscall.Kill(os.Getpid(), sig))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := w.Write([]byte("more")); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the write was not interrupted")
	return nil
}

// TestWriteInterrupted: SIGINT or SIGTERM during a write removes the temporary file and leaves
// the target as it was (before, the signal killed the process and left the temporary file).
func TestWriteInterrupted(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.gguf")
			require.NoError(t, WriteBytes(path, []byte("old")))
			err := Write(path, func(w io.Writer) error {
				_, _ = w.Write([]byte("partial"))
				return interruptDuring(t, sig, w)
			})
			require.ErrorIs(t, err, ErrInterrupted)
			noTemp(t, dir)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, "old", string(got))
		})
	}
}

func TestWriteDirInterrupted(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "model")
	err := WriteDir(out, false, func(ctx context.Context, tmp string) error {
		require.NoError(t, WriteFileIn(ctx, tmp, "config.json", []byte("{}")))
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("not interrupted")
		}
		return WriteFileIn(ctx, tmp, "model.safetensors", make([]byte, 1<<20))
	})
	require.ErrorIs(t, err, ErrInterrupted)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "neither the output nor the temporary directory is left")
}

func TestWriteDir(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "model")
	require.NoError(t, WriteDir(out, false, func(ctx context.Context, tmp string) error {
		return WriteFileIn(ctx, tmp, "a", []byte("x"))
	}))
	got, err := os.ReadFile(filepath.Join(out, "a"))
	require.NoError(t, err)
	require.Equal(t, "x", string(got))
	require.ErrorContains(t, WriteDir(out, false, func(context.Context, string) error { return nil }), "already exists")
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 1)

	require.NoError(t, WriteDir(out, true, func(ctx context.Context, tmp string) error {
		return WriteFileIn(ctx, tmp, "b", []byte("y"))
	}), "replace")
	require.NoFileExists(t, filepath.Join(out, "a"), "the old directory is gone")
	require.FileExists(t, filepath.Join(out, "b"))
	entries, _ = os.ReadDir(dir)
	require.Len(t, entries, 1, "nothing left beside it")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "file"), nil, 0o644))
	require.ErrorContains(t, WriteDir(filepath.Join(dir, "file"), true, func(context.Context, string) error { return nil }), "not a directory")
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return cmd.Process.Pid
}

// TestRemoveStale: a write removes the temporary files of dead processes for the same target
// and nothing else.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	dead, live := deadPID(t), os.Getppid()
	names := map[string]bool{ // name -> removed by a write to f.bin
		fmt.Sprintf(".f.bin.tmp-%d-123", dead):      true,
		fmt.Sprintf(".f.bin.tmp-%d-9", dead):        true, // a directory from WriteDir
		fmt.Sprintf(".f.bin.tmp-%d-456", live):      false,
		fmt.Sprintf(".f.bin.tmp-%d-7", os.Getpid()): false,
		fmt.Sprintf(".g.bin.tmp-%d-123", dead):      false, // another target
		fmt.Sprintf(".f.bin.tmp-%d-12x", dead):      false, // not our shape
		fmt.Sprintf(".f.bin.tmp-%d", dead):          false,
		"f.bin.tmp-1-1":                             false,
	}
	for n := range names {
		if n == fmt.Sprintf(".f.bin.tmp-%d-9", dead) {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, n, "sub"), 0o755))
			continue
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
	}
	require.NoError(t, WriteBytes(filepath.Join(dir, "f.bin"), []byte("x")))
	for n, removed := range names {
		_, err := os.Lstat(filepath.Join(dir, n))
		if removed {
			require.ErrorIs(t, err, os.ErrNotExist, n)
		} else {
			require.NoError(t, err, n)
		}
	}
}
