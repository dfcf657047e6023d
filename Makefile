# bankai-metal: build and check targets. `make test` is what CI runs (.ci/run).

GO ?= go
PKGS := ./...

.PHONY: all build test vet vet-darwin test-go test-race test-arm64 test-shaders bench bench-rss fuzz fuzz-short test-openai clean

all: build

build:
	$(GO) build -o bankai-metal ./cmd/bankai-metal

# The full check: vet on Linux and for the Mac build, then the shader checks, every Go test,
# the race detector over the short tests and a few seconds of every fuzz target. Every stage
# runs even when an earlier one fails (for example when clang cannot be installed); all the
# results are reported and any failure fails the target.
test: vet vet-darwin
	@status=""; fail=0; \
	for t in test-shaders test-go test-race test-arm64 fuzz-short test-openai; do \
		if $(MAKE) --no-print-directory $$t; then status="$$status $$t=ok"; \
		else status="$$status $$t=FAILED"; fail=1; fi; \
	done; \
	echo "== make test:$$status"; \
	exit $$fail

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)

# The Metal path cannot run here; it must at least vet and build for darwin/arm64 without cgo,
# with and without the nometal tag.
vet-darwin:
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) vet $(PKGS)
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(PKGS)
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags nometal $(PKGS)

test-go:
	$(GO) test -count=1 -timeout 20m $(PKGS)

# The race detector over the tests that testing.Short() keeps (the slow oracle and emulator
# runs skip themselves in -short mode).
test-race:
	$(GO) test -race -short -count=1 -timeout 30m $(PKGS)

# Compile every .metal shader as C++ against the shim header and run the kernels that can run
# on the CPU against their Go twins (installs clang when missing).
test-shaders:
	@if [ -f .ci/metal-check.sh ]; then bash .ci/metal-check.sh; fi

# `bankai-metal serve` against the npm openai client, with a bounded load test on localhost
# (installs Node.js with apt-get when missing, and the pinned openai package in a temp dir).
test-openai:
	bash .ci/openai-check.sh

bench:
	$(GO) test -run XXX -bench . -benchtime 5x ./runtime/... ./patch/... ./bfs/...

# Peak RSS of loading an 8B-shaped synthetic model and running one token, then its decode speed.
bench-rss: build
	./bankai-metal testmodel --shape 8b -o /tmp/bankai-synth-8b.gguf
	/usr/bin/time -v ./bankai-metal logits -m /tmp/bankai-synth-8b.gguf --tokens 100 --top 1 2>&1 | grep -E 'argmax|Maximum resident'
	ls -l /tmp/bankai-synth-8b.gguf
	BANKAI_8B=/tmp/bankai-synth-8b.gguf $(GO) test -run XXX -bench Decode8BFile -benchtime 5x ./runtime/

# The CPU kernels and the quick runtime tests for GOARCH=arm64 under qemu-user (the NEON path
# of every M-series Mac), and the darwin/arm64 vet and build (installs qemu-user when missing).
test-arm64:
	bash .ci/arm64-check.sh

# Every fuzz target for 30 s (fuzz-short: 3 s each, as CI does).
fuzz:
	FUZZTIME=30s bash .ci/fuzz.sh

fuzz-short:
	FUZZTIME=3s bash .ci/fuzz.sh

clean:
	rm -f bankai-metal
