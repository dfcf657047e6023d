package atomicfile

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// tempPrefix is the start of every temporary name for target: ".NAME.tmp-".
func tempPrefix(target string) string { return "." + filepath.Base(target) + ".tmp-" }

// tempPattern is the os.CreateTemp pattern of this process's temporary names for target:
// ".NAME.tmp-PID-" followed by random digits.
func tempPattern(target string) string {
	return tempPrefix(target) + strconv.Itoa(os.Getpid()) + "-*"
}

// stalePID returns the PID in a temporary name for target, if name is one: the prefix, a PID,
// "-" and the digits os.CreateTemp adds.
func stalePID(target, name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, tempPrefix(target))
	if !ok {
		return 0, false
	}
	pid, random, ok := strings.Cut(rest, "-")
	if !ok || random == "" || strings.Trim(random, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// removeStale removes the temporary files and directories for target left by processes that
// no longer run. Only names of exactly our shape for this target are touched; this process's
// own (a write under way) and those of live processes are kept. Best effort: errors are ignored.
func removeStale(target string) {
	dir := filepath.Dir(target)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, ok := stalePID(target, e.Name())
		if !ok || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// watchSignals returns a context cancelled when SIGINT or SIGTERM arrives, and the function
// that stops watching (restoring the signals' previous handling).
func watchSignals() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
