// Package metal runs bankai-metal models on Apple GPUs through Metal, from Go without cgo.
//
// The binding (*_darwin.go) is a thin hand-written layer over github.com/ebitengine/purego and
// purego/objc covering only the compute path: the default device, a library compiled from the
// embedded source of package shaders, functions and compute pipelines, a command queue, command
// buffers, compute encoders (pipeline, buffers, bytes, threadgroup memory, dispatch, memory
// barriers) and buffers, including no-copy buffers over the model's file mapping. Each Metal
// method has an Apple documentation URL on its wrapper. Every page of such a span is written
// once (made private) before Metal sees it, so host patches land in the pages the GPU holds
// (private.go); a no-copy buffer whose length or address is not the span's is refused and the
// bytes copied; an encode callback that panics still ends its encoder.
//
// Threads: every Metal call runs inside withPool, which locks the calling goroutine to its OS
// thread for the duration and wraps the work in an autorelease pool (pools are per thread). A
// token step — encode every layer into one command buffer and one compute encoder, commit, wait
// — is one pool. There is no dedicated Metal goroutine: command queues, devices, buffers and
// pipelines are thread-safe in Metal, and a command buffer never leaves the goroutine that
// created it.
//
// The backend itself (backend.go, session.go, layer.go, weights.go) is written against a small
// device interface, so the same code also runs on a shaders.Emulator such as the CPU harness of
// shaders/shim (NewEmulated), which is how it is tested on machines without Metal; the package
// itself does not import the harness. It also implements runtime.BatchEvaluator (flipped.go,
// flipplan.go, kvstore.go): candidate flips scored over a batch of sequences without touching
// the weights, which the search (bfs.NewEvaluator) picks up by type assertion. A session step
// and a RunFlipped batch encode their decoder layers with the same function (layer.go). On
// other platforms, or with the nometal build tag, New and Available return ErrUnavailable.
package metal

import "errors"

// ErrUnavailable is returned (wrapped, with the reason) when Metal cannot be used: another
// operating system, the nometal build tag, or no Metal device.
var ErrUnavailable = errors.New("metal: Metal is not available")
