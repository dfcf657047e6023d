//go:build darwin && !nometal

package metal

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego/objc"
)

// One small value type per Metal protocol. Types named mtl* own their object (+1) unless noted;
// each has one release site.

// resourceStorageModeShared is MTLResourceStorageModeShared with the default CPU cache and hazard
// tracking modes (cpuCacheMode | storageMode<<4 | hazardTrackingMode<<8, all 0): memory the CPU
// and GPU share, which on Apple silicon is all memory (docs/METAL.md §3.9).
// https://developer.apple.com/documentation/metal/mtlresourceoptions/storagemodeshared
const resourceStorageModeShared = 0

// mtlDevice is an MTLDevice.
type mtlDevice struct{ id objc.ID }

// defaultDevice returns the system default device, or the first of all devices.
// https://developer.apple.com/documentation/metal/mtlcreatesystemdefaultdevice()
// https://developer.apple.com/documentation/metal/mtlcopyalldevices()
func defaultDevice() (mtlDevice, error) {
	if id := createSystemDefaultDevice(); id != 0 {
		return mtlDevice{id}, nil
	}
	if copyAllDevices == nil {
		return mtlDevice{}, fmt.Errorf("%w: no Metal device", ErrUnavailable)
	}
	all := copyAllDevices() // NSArray, owned (Copy rule)
	if all == 0 {
		return mtlDevice{}, fmt.Errorf("%w: no Metal device", ErrUnavailable)
	}
	defer release(all)
	// https://developer.apple.com/documentation/foundation/nsarray/count
	if msgU64(all, sel.count) == 0 {
		return mtlDevice{}, fmt.Errorf("%w: no Metal device", ErrUnavailable)
	}
	// https://developer.apple.com/documentation/foundation/nsarray/object(at:)
	return mtlDevice{retain(msgIDU64(all, sel.objectAtIndex, 0))}, nil
}

// name is the device's name ("Apple M2 Pro").
// https://developer.apple.com/documentation/metal/mtldevice/name
func (d mtlDevice) name() string { return goString(msgID(d.id, sel.name)) }

// maxBufferLength is the largest buffer the device can allocate, in bytes.
// https://developer.apple.com/documentation/metal/mtldevice/maxbufferlength
func (d mtlDevice) maxBufferLength() uint64 { return msgU64(d.id, sel.maxBufferLength) }

// hasUnifiedMemory reports whether CPU and GPU share memory (true on Apple silicon).
// https://developer.apple.com/documentation/metal/mtldevice/hasunifiedmemory
func (d mtlDevice) hasUnifiedMemory() bool { return msgBool(d.id, sel.hasUnifiedMemory) }

// newLibrary compiles MSL source with fast math off, so exp, division and sqrt round like the
// Go twins (the default fast math also assumes no infinities).
// https://developer.apple.com/documentation/metal/mtldevice/makelibrary(source:options:)
// https://developer.apple.com/documentation/metal/mtlcompileoptions/fastmathenabled
func (d mtlDevice) newLibrary(source string) (mtlLibrary, error) {
	opts := msgID(msgID(objc.ID(class.MTLCompileOptions), sel.alloc), sel.init)
	defer release(opts)
	if respondsTo(opts, sel.setFastMathEnabled) { // deprecated in macOS 15 for mathMode, still honoured
		msgVoidBool(opts, sel.setFastMathEnabled, false)
	}
	src := newString(source)
	defer release(src)
	var e objc.ID
	lib := msgIDIDIDErr(d.id, sel.newLibraryWithSource, src, opts, &e)
	if lib == 0 {
		return mtlLibrary{}, nsError("compile shaders", e)
	}
	return mtlLibrary{lib}, nil
}

// newPipeline builds a compute pipeline state for a kernel function.
// https://developer.apple.com/documentation/metal/mtldevice/makecomputepipelinestate(function:)
func (d mtlDevice) newPipeline(f mtlFunction, kernel string) (mtlPipeline, error) {
	var e objc.ID
	p := msgIDIDErr(d.id, sel.newComputePipeline, f.id, &e)
	if p == 0 {
		return mtlPipeline{}, nsError("pipeline "+kernel, e)
	}
	return mtlPipeline{p}, nil
}

// newQueue returns a command queue.
// https://developer.apple.com/documentation/metal/mtldevice/makecommandqueue()
func (d mtlDevice) newQueue() (mtlQueue, error) {
	q := msgID(d.id, sel.newCommandQueue)
	if q == 0 {
		return mtlQueue{}, fmt.Errorf("metal: newCommandQueue returned nil")
	}
	return mtlQueue{q}, nil
}

// newBuffer allocates length bytes of shared memory (contents unspecified).
// https://developer.apple.com/documentation/metal/mtldevice/makebuffer(length:options:)
func (d mtlDevice) newBuffer(length int) (mtlBuffer, error) {
	id := msgIDU64U64(d.id, sel.newBufferWithLength, uint64(length), resourceStorageModeShared)
	if id == 0 {
		return mtlBuffer{}, fmt.Errorf("metal: cannot allocate a buffer of %d bytes (device limit %d)", length, d.maxBufferLength())
	}
	b := mtlBuffer{id: id, n: length}
	if n := b.length(); n < length || msgPtr(id, sel.contents) == nil {
		b.release()
		return mtlBuffer{}, fmt.Errorf("metal: a buffer of %d bytes came back with %d bytes or no contents", length, n)
	}
	return b, nil
}

// newBufferNoCopy wraps host memory without copying: p must be page-aligned, length a multiple
// of the page size, the memory from mmap or vm_allocate (never the Go heap), and it must
// outlive the buffer. No deallocator (nil block): the owner unmaps it after the release.
// Returns ok = false if Metal refuses.
// https://developer.apple.com/documentation/metal/mtldevice/makebuffer(bytesnocopy:length:options:deallocator:)
func (d mtlDevice) newBufferNoCopy(mem []byte) (mtlBuffer, bool) {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	id := msgNoCopy(d.id, sel.newBufferWithBytesNoCopy, p, uint64(len(mem)), resourceStorageModeShared, 0)
	if id == 0 {
		return mtlBuffer{}, false
	}
	// Metal documents neither rounding nor truncating the length, but a buffer that does not
	// cover exactly these bytes at this address would make every offset into it wrong: refuse
	// it, and the caller copies instead.
	b := mtlBuffer{id: id, n: len(mem)}
	if b.length() != len(mem) || uintptr(msgPtr(id, sel.contents)) != p {
		b.release()
		return mtlBuffer{}, false
	}
	return b, true
}

func (d mtlDevice) release() { release(d.id) }

// mtlLibrary is an MTLLibrary.
type mtlLibrary struct{ id objc.ID }

// function looks a kernel up by name.
// https://developer.apple.com/documentation/metal/mtllibrary/makefunction(name:)
func (l mtlLibrary) function(name string) (mtlFunction, error) {
	s := newString(name)
	defer release(s)
	f := msgIDID(l.id, sel.newFunctionWithName, s)
	if f == 0 {
		return mtlFunction{}, fmt.Errorf("metal: kernel %q not found in the shader library", name)
	}
	return mtlFunction{f}, nil
}

func (l mtlLibrary) release() { release(l.id) }

// mtlFunction is an MTLFunction.
type mtlFunction struct{ id objc.ID }

func (f mtlFunction) release() { release(f.id) }

// mtlPipeline is an MTLComputePipelineState.
type mtlPipeline struct{ id objc.ID }

// maxThreads is the largest threadgroup this pipeline can run.
// https://developer.apple.com/documentation/metal/mtlcomputepipelinestate/maxtotalthreadsperthreadgroup
func (p mtlPipeline) maxThreads() int { return int(msgU64(p.id, sel.maxTotalThreadsPerThreadgroup)) }

// simdWidth is the pipeline's thread execution width (the simdgroup size, 32 on Apple GPUs).
// https://developer.apple.com/documentation/metal/mtlcomputepipelinestate/threadexecutionwidth
func (p mtlPipeline) simdWidth() int { return int(msgU64(p.id, sel.threadExecutionWidth)) }

func (p mtlPipeline) release() { release(p.id) }

// mtlBuffer is an MTLBuffer of n bytes.
type mtlBuffer struct {
	id objc.ID
	n  int
}

// contents is the host address of the buffer (shared storage).
// https://developer.apple.com/documentation/metal/mtlbuffer/contents()
func (b mtlBuffer) contents() []byte {
	p := msgPtr(b.id, sel.contents)
	return unsafe.Slice((*byte)(p), b.n)
}

// length is the buffer's size in bytes, as Metal reports it.
// https://developer.apple.com/documentation/metal/mtlbuffer/length
func (b mtlBuffer) length() int { return int(msgU64(b.id, sel.length)) }

func (b mtlBuffer) release() { release(b.id) }
