#!/usr/bin/env bash
# fuzz.sh: run every Go fuzz target in the tree for a bounded time each.
#
#   FUZZTIME=30s bash .ci/fuzz.sh     (make fuzz)
#   FUZZTIME=3s  bash .ci/fuzz.sh     (CI)
#
# Targets are discovered with `go test -list`, so a new FuzzXxx is run without editing this
# file. A target that finds a failure fails the script; the failing input is left in the
# package's testdata/fuzz/ directory for `go test` to replay.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3s}

# go test -list prints the matching names, then an "ok <pkg>" line per package. Read the whole
# listing into a variable first (no pipe into an early-exiting reader under pipefail).
listing=$(go test -list '^Fuzz' ./...)
targets=()
names=()
while IFS= read -r line; do
	case $line in
	Fuzz*) names+=("$line") ;;
	"ok "*)
		read -r _ pkg _ <<<"$line"
		for n in "${names[@]}"; do targets+=("$pkg $n"); done
		names=()
		;;
	esac
done <<<"$listing"

[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no fuzz targets found" >&2; exit 1; }
echo "== fuzz: ${#targets[@]} targets, $fuzztime each"
failed=0
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "-- $name ($pkg)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel 2 "$pkg"; then
		echo "fuzz: $name in $pkg FAILED" >&2
		failed=1
	fi
done
[ $failed -eq 0 ] && echo "== fuzz: ok"
exit $failed
