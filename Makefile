# bankai-metal: build and check targets. `make test` is what CI runs (.ci/run).

GO ?= go
PKGS := ./...

.PHONY: all build test vet vet-darwin test-go test-shaders bench bench-rss fuzz clean

all: build

build:
	$(GO) build -o bankai-metal ./cmd/bankai-metal

# The full check: vet on Linux and for the Mac build, then the shader checks and every Go test.
# The Go tests run even when the shader checks fail (for example when clang cannot be
# installed); both results are reported and either failure fails the target.
test: vet vet-darwin
	@shaders=ok; gotests=ok; \
	$(MAKE) --no-print-directory test-shaders || shaders=FAILED; \
	$(MAKE) --no-print-directory test-go || gotests=FAILED; \
	echo "== make test: shader checks $$shaders, go tests $$gotests"; \
	[ $$shaders = ok ] && [ $$gotests = ok ]

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

# Compile every .metal shader as C++ against the shim header and run the kernels that can run
# on the CPU against their Go twins (installs clang when missing).
test-shaders:
	@if [ -f .ci/metal-check.sh ]; then bash .ci/metal-check.sh; fi

bench:
	$(GO) test -run XXX -bench . -benchtime 5x ./runtime/... ./patch/... ./bfs/...

# Peak RSS of loading an 8B-shaped synthetic model and running one token, then its decode speed.
bench-rss: build
	./bankai-metal testmodel --shape 8b -o /tmp/bankai-synth-8b.gguf
	/usr/bin/time -v ./bankai-metal logits -m /tmp/bankai-synth-8b.gguf --tokens 100 --top 1 2>&1 | grep -E 'argmax|Maximum resident'
	ls -l /tmp/bankai-synth-8b.gguf
	BANKAI_8B=/tmp/bankai-synth-8b.gguf $(GO) test -run XXX -bench Decode8BFile -benchtime 5x ./runtime/

fuzz:
	$(GO) test -run XXX -fuzz FuzzGGUF -fuzztime 30s ./runtime/gguf/

clean:
	rm -f bankai-metal
