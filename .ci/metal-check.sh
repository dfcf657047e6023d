#!/usr/bin/env bash
# metal-check.sh: the Linux checks of the Metal path (docs/METAL.md §4).
#
#  1. Type-check the darwin code without a Mac: vet, build and compile the tests of the Metal
#     packages for darwin/arm64 with CGO_ENABLED=0, with and without the nometal tag.
#  2. Compile every kernel as C++ with clang against shaders/shim (flat and check modes), compare
#     the argument-struct layout of C and Go, run every kernel on the CPU harness against its Go
#     twin (shaders: TestShadersCompileAndRun), and run the Metal backend's own code on that
#     harness against the CPU backend (internal/backendtest: TestEmulated).
#
# clang >= 15 is needed (_Float16 on x86; Debian 12's default clang 14 is too old). If none is
# found it is installed with apt-get (clang-19 preferred). BANKAI_REQUIRE_CLANG=1 turns the Go
# tests' skip-without-clang into a failure, so this script cannot pass by skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(./metal/ ./shaders/... ./internal/backendtest/)

have_clang() {
	[ -n "${BANKAI_CLANG:-}" ] && return 0
	for v in 22 21 20 19 18 17 16 15; do
		command -v "clang++-$v" >/dev/null && return 0
	done
	return 1
}

if ! have_clang; then
	. .ci/apt.sh
	apt_update metal-check
	pkg=$(apt_first_candidate metal-check clang-19 clang-22 clang-21 clang-20 clang-18 clang-17 clang-16 clang-15)
	apt_install metal-check "$pkg"
fi
export BANKAI_REQUIRE_CLANG=1

for tags in "" nometal; do
	echo "== darwin/arm64 type check, tags '${tags}'"
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 go vet -tags "$tags" "${pkgs[@]}"
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 go build -tags "$tags" "${pkgs[@]}"
	for p in ./metal ./shaders ./internal/backendtest; do
		GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 go test -tags "$tags" -c -o /dev/null "$p"
	done
done

echo "== kernels on the CPU harness; the Metal backend on the emulator"
test -z "$(gofmt -l metal shaders internal/backendtest)" || {
	gofmt -l metal shaders internal/backendtest
	echo "metal-check: gofmt" >&2
	exit 1
}
go vet "${pkgs[@]}"
go test -count=1 "${pkgs[@]}"
go test -count=1 -tags nometal ./metal/
echo "== metal-check: ok"
