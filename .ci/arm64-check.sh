#!/usr/bin/env bash
# arm64-check.sh: run the CPU kernel tests for GOARCH=arm64 under qemu-user, so that the NEON
# kernels (the CPU path of every M-series Mac) are checked on an x86 machine.
#
#  1. Install qemu-user (or qemu-user-static) with apt-get when no qemu-aarch64 is found.
#  2. go test -exec qemu-aarch64 ./runtime/cpu/ with GOARCH=arm64: the NEON level, and the same
#     tests with BANKAI_SIMD=purego and with the purego build tag (the pure-Go kernels on arm64).
#  3. go test the quick runtime tests under qemu too (the forward pass at the NEON level).
#  4. vet and build for darwin/arm64 (CGO_ENABLED=0), as a Mac build would.
#
# BANKAI_ARM64_QUICK=1 skips step 3.
set -euo pipefail
cd "$(dirname "$0")/.."

find_qemu() {
	for q in qemu-aarch64 qemu-aarch64-static; do
		if command -v "$q" >/dev/null; then
			command -v "$q"
			return 0
		fi
	done
	return 1
}

if ! qemu=$(find_qemu); then
	. .ci/apt.sh
	apt_update arm64-check
	pkg=$(apt_first_candidate arm64-check qemu-user qemu-user-static)
	apt_install arm64-check "$pkg"
	qemu=$(find_qemu) || {
		echo "arm64-check: installed $pkg but found no qemu-aarch64" >&2
		exit 1
	}
fi
echo "arm64-check: using $qemu"

export GOARCH=arm64 CGO_ENABLED=0
run() {
	echo "+ $*"
	"$@"
}
run go vet ./runtime/cpu/
run go test -count=1 -exec "$qemu" ./runtime/cpu/
BANKAI_SIMD=purego run go test -count=1 -exec "$qemu" -run 'Level|Q8|MatMul' ./runtime/cpu/
run go test -count=1 -exec "$qemu" -tags purego -run 'Level|Q8|MatMul' ./runtime/cpu/
if [ "${BANKAI_ARM64_QUICK:-}" != 1 ]; then
	run go test -count=1 -short -exec "$qemu" ./runtime/
fi
run env GOOS=darwin go vet ./runtime/...
run env GOOS=darwin go build ./...
echo "arm64-check: ok"
