// Package shaders holds the Metal kernels of bankai-metal (one .metal file per op family, with the
// shared headers common.h and args.h), the Go copies of their argument structs, the dispatch
// geometry of each kernel, and the command lists of an Emulator that runs them without a GPU, so
// that the Metal backend and the CPU harness in shaders/shim agree.
package shaders

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed common.h args.h *.metal
var files embed.FS

// Headers are inlined first, in this order; every .metal file includes them.
var headers = []string{"common.h", "args.h"}

// Sources lists the kernel files by op family, in library order.
var Sources = []string{"matvec_q1.metal", "norm.metal", "rope.metal", "attention.metal", "act.metal", "flip.metal"}

// Files returns the embedded headers and kernel sources (for the Linux checks in shaders/shim).
func Files() fs.FS { return files }

// Source returns the whole library as one translation unit for newLibraryWithSource: the headers,
// then every kernel file, with the quoted #include lines and #pragma once removed (a library
// compiled from a string has no include path).
func Source() string {
	var b strings.Builder
	for _, name := range append(append([]string{}, headers...), Sources...) {
		data, err := files.ReadFile(name)
		if err != nil {
			panic("shaders: embedded file missing: " + name) // the embed pattern guarantees it
		}
		b.WriteString("// ---- " + name + " ----\n")
		for _, line := range strings.SplitAfter(string(data), "\n") {
			t := strings.TrimSpace(line)
			if strings.HasPrefix(t, `#include "`) || t == "#pragma once" {
				continue
			}
			b.WriteString(line)
		}
		b.WriteString("\n")
	}
	return b.String()
}
