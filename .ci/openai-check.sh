#!/usr/bin/env bash
# openai-check.sh: `bankai-metal serve` against a real OpenAI client (issue 12, point 5).
#
# Builds the binary, writes two patches for builtin:tiny (and one made for another model),
# starts `serve -m builtin:tiny --patches DIR` on a free localhost port and runs
# .ci/openai/check.mjs with the npm `openai` package (pinned): chat and completions, streamed
# and not, four patch stacks interleaved and checked token for token against
# `bankai-metal generate --patch ... --seed S`, error statuses, then a bounded load test
# (200 requests, 8 concurrent, mixed stacks) that prints requests/s and p50/p99 latency and
# fails on any wrong or lost answer. Node.js and npm are installed with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

OPENAI_VERSION=6.30.1

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	. .ci/apt.sh
	apt_install openai-check nodejs npm
fi
echo "openai-check: node $(node --version), npm $(npm --version), openai@$OPENAI_VERSION"

tmp=$(mktemp -d)
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/bankai-metal" ./cmd/bankai-metal
bin="$tmp/bankai-metal"

mkdir -p "$tmp/npm" "$tmp/patches"
cp .ci/openai/check.mjs "$tmp/npm/"
printf '{"name":"openai-check","private":true,"type":"module"}\n' >"$tmp/npm/package.json"
(cd "$tmp/npm" && npm install --no-audit --no-fund --loglevel=error "openai@$OPENAI_VERSION" >/dev/null)

fp_json=$("$bin" info -m builtin:tiny --json)
node "$tmp/npm/check.mjs" write-patches "$tmp/patches" "$fp_json"

key="openai-check-key"
"$bin" serve -m builtin:tiny --patches "$tmp/patches" --port 0 --parallel 2 --api-key "$key" 2>"$tmp/serve.log" &
server_pid=$!
url=""
for _ in $(seq 1 300); do
	log=$(cat "$tmp/serve.log")
	if [[ $log =~ on\ (http://127\.0\.0\.1:[0-9]+) ]]; then
		url=${BASH_REMATCH[1]}
		break
	fi
	kill -0 "$server_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$url" ]; then
	echo "openai-check: the server did not start:" >&2
	cat "$tmp/serve.log" >&2
	exit 1
fi
echo "openai-check: server at $url"

status=0
node "$tmp/npm/check.mjs" check "$url" "$bin" "$tmp/patches" "$key" || status=$?

# SIGTERM drains and exits 0.
kill -TERM "$server_pid"
serve_status=0
wait "$server_pid" || serve_status=$?
server_pid=""
if [ "$serve_status" -ne 0 ]; then
	echo "openai-check: serve exited with status $serve_status after SIGTERM:" >&2
	tail -5 "$tmp/serve.log" >&2
	status=1
fi
if [ "$status" -eq 0 ]; then
	echo "openai-check: ok"
else
	echo "openai-check: FAILED" >&2
fi
exit "$status"
