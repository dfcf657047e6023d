// Package shim checks the Metal kernels on machines without Metal: it compiles them as C++ with
// clang against the stand-in header metal_stdlib (docs/METAL.md §4.1) and runs them on the CPU
// with the harness in harness/, one coroutine per GPU thread.
package shim

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/bankai-metal/bankai-metal/shaders"
)

//go:embed metal_stdlib harness/emu.h harness/harness.cpp
var files embed.FS

// ErrNoClang reports that no clang++ able to compile the shim was found.
var ErrNoClang = errors.New("shim: no suitable clang++ found (need clang >= 15 for _Float16 on x86; " +
	"apt-get install clang-19, or set BANKAI_CLANG)")

// probe is a program only a clang with _Float16 and ext_vector_type support compiles.
const probe = "typedef unsigned u3 __attribute__((ext_vector_type(3)));\n" +
	"_Float16 h(unsigned short u) { return __builtin_bit_cast(_Float16, u); }\n" +
	"u3 v() { return u3{1, 2, 3}; }\n"

// FindClang returns a clang++ that compiles the shim: $BANKAI_CLANG if set, else the newest of
// clang++-22 ... clang++-15, then clang++, found in PATH and passing a _Float16 probe.
func FindClang() (string, error) {
	var candidates []string
	if c := os.Getenv("BANKAI_CLANG"); c != "" {
		candidates = []string{c}
	} else {
		for v := 22; v >= 15; v-- {
			candidates = append(candidates, fmt.Sprintf("clang++-%d", v))
		}
		candidates = append(candidates, "clang++")
	}
	var tried []string
	for _, c := range candidates {
		path, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		cmd := exec.Command(path, "-x", "c++", "-std=c++17", "-fsyntax-only", "-")
		cmd.Stdin = strings.NewReader(probe)
		if out, err := cmd.CombinedOutput(); err != nil {
			tried = append(tried, fmt.Sprintf("%s: %s", path, firstLine(out)))
			continue
		}
		return path, nil
	}
	if len(tried) > 0 {
		return "", fmt.Errorf("%w (rejected: %s)", ErrNoClang, strings.Join(tried, "; "))
	}
	return "", ErrNoClang
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// Tree writes the kernel sources (as shaders/), the shim header (as shim/) and the harness (as
// shim/harness/) into dir, so clang sees the same layout as the repository.
func Tree(dir string) error {
	write := func(src fs.FS, name, dst string) error {
		data, err := fs.ReadFile(src, name)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if strings.HasPrefix(dst, filepath.Join(dir, "shaders")+string(filepath.Separator)) && !strings.Contains(name, "harness") {
			data = []byte(StripAttributes(string(data)))
		}
		return os.WriteFile(dst, data, 0o644)
	}
	err := fs.WalkDir(shaders.Files(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return write(shaders.Files(), name, filepath.Join(dir, "shaders", name))
	})
	if err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	for _, name := range []string{"metal_stdlib", "harness/emu.h", "harness/harness.cpp"} {
		if err := write(files, name, filepath.Join(dir, "shaders", "shim", name)); err != nil {
			return fmt.Errorf("shim: %w", err)
		}
	}
	return nil
}

// mslAttributes are the MSL attributes the kernels may use: the argument table and the
// built-in indices the harness passes (harness.cpp, BUILTINS).
var mslAttributes = map[string]bool{
	"buffer": true, "threadgroup": true, "threadgroup_position_in_grid": true,
	"thread_position_in_threadgroup": true, "threads_per_threadgroup": true,
	"simdgroup_index_in_threadgroup": true, "thread_index_in_simdgroup": true,
}

var attrRe = regexp.MustCompile(`\[\[\s*([A-Za-z_][A-Za-z0-9_:]*)\s*(\([^\]]*\))?\s*\]\]`)

// StripAttributes removes the MSL attributes of mslAttributes from src and leaves every other
// [[...]] in place, where clang, run with -Werror=unknown-attributes, rejects it: a misspelt or
// unsupported attribute fails the checks instead of being ignored (on a GPU it would fail to
// compile, or bind the wrong index).
func StripAttributes(src string) string {
	return attrRe.ReplaceAllStringFunc(src, func(a string) string {
		if mslAttributes[attrRe.FindStringSubmatch(a)[1]] {
			return ""
		}
		return a
	})
}

// Mode selects how the shim maps MSL address spaces (see metal_stdlib).
type Mode string

// The two modes of the shim.
const (
	Flat  Mode = "flat"
	Check Mode = "check"
)

// SyntaxCheck compiles one source file of a Tree at dir with -fsyntax-only in the given mode
// and returns the compiler's complaints as the error.
func SyntaxCheck(clang, dir, file string, mode Mode) error {
	src, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	args := []string{"-x", "c++", "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", "-Werror=unknown-attributes",
		"-I", filepath.Join(dir, "shaders", "shim"), "-I", filepath.Join(dir, "shaders"), "-I", filepath.Dir(file)}
	if mode == Check {
		args = append(args, "-DBK_SHIM_CHECK")
	}
	cmd := exec.Command(clang, append(args, "-")...) // the stripped source on stdin
	cmd.Stdin = strings.NewReader(StripAttributes(string(src)))
	cmd.Dir = filepath.Dir(file) // quoted includes of stdin resolve here first, in the tree
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("shim: %s (%s mode): %v\n%s", filepath.Base(file), mode, err, out)
	}
	return nil
}

// Harness is a built CPU harness (harness/harness.cpp): a shaders.Emulator.
type Harness struct {
	path string
}

var _ shaders.Emulator = (*Harness)(nil)

// String describes the harness, for the device name of the emulated Metal backend.
func (h *Harness) String() string { return "the CPU harness of shaders/shim" }

// Build compiles the harness with clang into cacheDir, reusing a binary built from identical
// sources by the same compiler.
func Build(clang, cacheDir string) (*Harness, error) {
	h := sha256.New()
	h.Write([]byte(clang + "\x00" + shaders.Source()))
	for _, name := range []string{"metal_stdlib", "harness/emu.h", "harness/harness.cpp"} {
		data, _ := files.ReadFile(name)
		h.Write(data)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	bin := filepath.Join(cacheDir, "harness-"+key)
	if _, err := os.Stat(bin); err == nil {
		return &Harness{path: bin}, nil
	}
	tmp, err := os.MkdirTemp("", "bankai-shim-")
	if err != nil {
		return nil, fmt.Errorf("shim: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := build(clang, tmp, cacheDir, bin); err != nil {
		return nil, err
	}
	return &Harness{path: bin}, nil
}

func build(clang, tmp, cacheDir, bin string) error {
	if err := Tree(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	part := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	src := filepath.Join(tmp, "shaders")
	cmd := exec.Command(clang, "-std=c++17", "-O2", "-Wall", "-Werror=unknown-attributes", "-U_FORTIFY_SOURCE",
		"-I", filepath.Join(src, "shim"), "-I", src, filepath.Join(src, "shim", "harness", "harness.cpp"), "-o", part)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("shim: build harness: %v\n%s", err, out)
	}
	if err := os.Rename(part, bin); err != nil { // atomic: concurrent builds agree on the result
		return fmt.Errorf("shim: %w", err)
	}
	return nil
}

// Layout returns the harness's report of sizeof and offsetof for the argument structs of
// args.h, as "Struct" and "Struct.field" keys.
func (h *Harness) Layout() (map[string]int, error) {
	out, err := exec.Command(h.path, "layout").Output()
	if err != nil {
		return nil, fmt.Errorf("shim: harness layout: %w", err)
	}
	m := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var k string
		var v int
		if _, err := fmt.Sscanf(line, "%s %d", &k, &v); err != nil {
			return nil, fmt.Errorf("shim: harness layout line %q: %w", line, err)
		}
		m[k] = v
	}
	return m, nil
}

// Run implements shaders.Emulator: it executes the dispatches in order over the buffers in one
// harness process and writes the results back into the writable buffers' Data. Concurrent calls
// are fine (each uses its own scratch files).
func (h *Harness) Run(bufs []shaders.Buf, list []shaders.Dispatch) error {
	dir, err := os.MkdirTemp("", "bankai-shim-run-")
	if err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "in.bin"), filepath.Join(dir, "out.bin")
	if err := os.WriteFile(in, encode(bufs, list), 0o644); err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(h.path, "run", in, out)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("shim: harness run: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	return decode(data, bufs)
}
