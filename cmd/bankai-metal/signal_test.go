package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/bfs"
	"github.com/bankai-metal/bankai-metal/patch"
)

// TestInterruptedExitCodes maps the cause of the cancellation to the exit status: 128 + the
// signal number, and 130 for a cancellation without a signal.
func TestInterruptedExitCodes(t *testing.T) {
	for _, c := range []struct {
		cause error
		code  int
		msg   string
	}{
		{signalError{os.Interrupt}, 130, "interrupted by SIGINT (Ctrl-C): kept"},
		{signalError{syscall.SIGTERM}, 143, "interrupted by SIGTERM: kept"},
		{nil, 130, "interrupted: kept"},
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(c.cause)
		requireExit(t, interruptedExit(ctx, "kept"), c.code, c.msg)
	}
}

// TestSearchSIGTERM runs the real program in a child process (this test binary calling main),
// waits for its first periodic checkpoint, sends it SIGTERM, and requires exit status 143 with
// the patch so far, the report and a checkpoint written.
func TestSearchSIGTERM(t *testing.T) {
	if args := os.Getenv("BANKAI_TEST_MAIN_ARGS"); args != "" {
		os.Args = append([]string{"bankai-metal"}, strings.Split(args, "\x1f")...)
		main()
		os.Exit(0) // main returned without an exit status of its own
	}
	dir := t.TempDir()
	out, ck := filepath.Join(dir, "p.json"), filepath.Join(dir, "p.ckpt.json")
	// Bit granularity: a pool too big to exhaust, so the search is still running when stopped.
	args := []string{"search", "-m", "builtin:tiny", "--target", "math", "--control", "knowledge", "--granularity", "bit",
		"--iters", "1000000", "--checkpoint-every", "1", "-q", "-o", out}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSearchSIGTERM$")
	cmd.Env = append(os.Environ(), "BANKAI_TEST_MAIN_ARGS="+strings.Join(args, "\x1f"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(ck); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no periodic checkpoint after 60 s; stderr: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	err := cmd.Wait()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "exit error, got %v; stderr: %s", err, stderr.String())
	require.Equal(t, 143, ee.ExitCode(), stderr.String())
	require.Contains(t, stderr.String(), "interrupted by SIGTERM")
	_, err = patch.Load(out)
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(dir, "p.report.json"))
	saved, err := bfs.LoadCheckpoint(ck)
	require.NoError(t, err)
	require.Positive(t, saved.Iteration)
	require.Equal(t, out, saved.Output)
}
