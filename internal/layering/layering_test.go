package layering

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
)

const module = "github.com/bankai-metal/bankai-metal/"

// rank is each package's layer: a package may import only packages of a lower rank. Test
// machinery (testOnly) may import anything but must not be linked into the binary.
var rank = map[string]int{
	"internal/atomicfile": 0, "internal/fileid": 0, "internal/pyjson": 0, "internal/testenv": 0,
	"internal/layering": 0,
	"runtime/q1":        1,
	"patch":             2, "runtime/cpu": 2, "runtime/gguf": 2, "shaders": 2,
	"runtime/mlx": 3, "runtime/tokenizer": 3,
	"runtime": 4, "runtime/synth": 4,
	"metal": 5,
	"bfs":   6, "serve": 6,
	"cmd/bankai-metal": 7,
}

// testOnly are the packages that exist for tests: the shader harness, the backend
// conformance suite and the test-data generator.
var testOnly = map[string]bool{
	"shaders/shim": true, "shaders/shim/shimtest": true, "internal/backendtest": true, "internal/gentestdata": true,
}

// goList runs go list in the module root with a template.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = testenv.Root(t)
	out, err := cmd.Output()
	require.NoError(t, err, "go list %v", args)
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// TestLayers fails when a package imports one at its own layer or above, or when a package is
// not in the table (so a new package is placed on purpose).
func TestLayers(t *testing.T) {
	lines := goList(t, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	require.NotEmpty(t, lines)
	for _, line := range lines {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		if testOnly[pkg] {
			continue
		}
		r, ok := rank[pkg]
		require.True(t, ok, "package %s has no layer in internal/layering: add it", pkg)
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			require.False(t, testOnly[dep], "%s imports test machinery %s", pkg, dep)
			dr, ok := rank[dep]
			require.True(t, ok, "package %s has no layer in internal/layering: add it", dep)
			require.Less(t, dr, r, "%s (layer %d) imports %s (layer %d): a package may import only layers below it", pkg, r, dep, dr)
		}
	}
}

// TestBinaryDeps checks that the shipped binary links neither the shader harness nor the
// backend test suite, nor os/exec through them.
func TestBinaryDeps(t *testing.T) {
	deps := goList(t, "-deps", "./cmd/bankai-metal")
	require.Contains(t, deps, module+"runtime", "go list -deps answered something else")
	for _, d := range deps {
		require.False(t, testOnly[strings.TrimPrefix(d, module)], "the binary links %s", d)
		require.NotEqual(t, "os/exec", d, "the binary links os/exec")
		require.NotEqual(t, "testing", d, "the binary links testing")
	}
}
