// Package shimtest gives tests a built CPU harness of the Metal kernels (package shim), or skips
// them with the reason.
package shimtest

import (
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"testing"

	"github.com/bankai-metal/bankai-metal/shaders/shim"
)

// RequireEnv is the environment variable that turns a missing clang from a skip into a test
// failure (set by .ci/metal-check.sh, so the checks cannot silently skip in CI).
const RequireEnv = "BANKAI_REQUIRE_CLANG"

var (
	testOnce    sync.Once
	testClang   string
	testHarness *shim.Harness
	testErr     error
)

// ForTest returns the clang and a built harness for a test, once per process. Without a
// suitable clang the test is skipped, or fails when BANKAI_REQUIRE_CLANG=1. Off Linux it always
// skips: the harness relies on glibc's ucontext and on _longjmp between stacks, and a Mac runs
// the kernels on its GPU instead.
func ForTest(t testing.TB) (clang string, h *shim.Harness) {
	t.Helper()
	if goruntime.GOOS != "linux" {
		t.Skipf("the CPU harness of the Metal kernels runs on Linux only (this is %s; Metal tests use the GPU)", goruntime.GOOS)
	}
	testOnce.Do(func() {
		if testClang, testErr = shim.FindClang(); testErr != nil {
			return
		}
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		testHarness, testErr = shim.Build(testClang, filepath.Join(dir, "bankai-metal", "shim"))
	})
	if testErr != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v (%s=1)", testErr, RequireEnv)
		}
		t.Skipf("Metal kernels not checked on the CPU: %v", testErr)
	}
	return testClang, testHarness
}
