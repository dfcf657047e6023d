//go:build darwin && !nometal

package metal

import (
	"fmt"
	goruntime "runtime"
	"structs"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"
)

// The Objective-C plumbing: frameworks, typed objc_msgSend functions, selectors, autorelease
// pools, NSString and NSError. Everything is resolved once by load (docs/METAL.md §3.7: a
// reflective objc.Send costs ~0.6 µs per call; a typed function bound once ~0.2 µs).

// mtlSize is MTLSize (three NSUInteger), passed by value to dispatchThreadgroups.
//
// How it crosses the call: purego's RegisterFunc accepts struct arguments on darwin/arm64 and
// lays them out per AAPCS64 — a composite larger than 16 bytes that is not a homogeneous float
// aggregate is copied to memory owned by the caller and its address goes in the next integer
// register (AAPCS64 §6.8.2, stage B.4; Apple's arm64 ABI keeps that rule). For
// dispatchThreadgroups:threadsPerThreadgroup: that is x2 and x3 after the receiver and selector,
// exactly what a C caller does. On darwin/amd64 purego copies it onto the stack (SysV MEMORY
// class). ebiten's Metal driver passes MTLSize the same way. The HostLayout marker pins the Go
// layout to the C one (24 bytes, no padding).
type mtlSize struct {
	_                    structs.HostLayout
	Width, Height, Depth uint64
}

// Typed objc_msgSend functions, one per call shape (receiver, selector, arguments).
var (
	msgID        func(objc.ID, objc.SEL) objc.ID
	msgVoid      func(objc.ID, objc.SEL)
	msgU64       func(objc.ID, objc.SEL) uint64
	msgBool      func(objc.ID, objc.SEL) bool
	msgPtr       func(objc.ID, objc.SEL) unsafe.Pointer
	msgString    func(objc.ID, objc.SEL) string
	msgIDString  func(objc.ID, objc.SEL, string) objc.ID
	msgIDID      func(objc.ID, objc.SEL, objc.ID) objc.ID
	msgVoidID    func(objc.ID, objc.SEL, objc.ID)
	msgVoidBool  func(objc.ID, objc.SEL, bool)
	msgBoolSEL   func(objc.ID, objc.SEL, objc.SEL) bool
	msgIDU64     func(objc.ID, objc.SEL, uint64) objc.ID
	msgVoidU64   func(objc.ID, objc.SEL, uint64)
	msgIDU64U64  func(objc.ID, objc.SEL, uint64, uint64) objc.ID
	msgVoidU64x2 func(objc.ID, objc.SEL, uint64, uint64)
	msgIDIDErr   func(objc.ID, objc.SEL, objc.ID, *objc.ID) objc.ID
	msgIDIDIDErr func(objc.ID, objc.SEL, objc.ID, objc.ID, *objc.ID) objc.ID
	msgNoCopy    func(objc.ID, objc.SEL, uintptr, uint64, uint64, uintptr) objc.ID
	msgSetBuffer func(objc.ID, objc.SEL, objc.ID, uint64, uint64)
	msgSetBytes  func(objc.ID, objc.SEL, unsafe.Pointer, uint64, uint64)
	msgDispatch  func(objc.ID, objc.SEL, mtlSize, mtlSize)
)

// C functions (copyAllDevices and procRegionFilename may stay nil).
var (
	autoreleasePoolPush       func() uintptr
	autoreleasePoolPop        func(uintptr)
	createSystemDefaultDevice func() objc.ID
	copyAllDevices            func() objc.ID
	procRegionFilename        func(pid int32, addr uint64, buf *byte, size uint32) int32
)

// Selectors and classes.
var sel struct {
	alloc, init, release, retain, respondsToSelector               objc.SEL
	initWithUTF8String, utf8String, localizedDescription, count    objc.SEL
	objectAtIndex, name, maxBufferLength, hasUnifiedMemory         objc.SEL
	newLibraryWithSource, newFunctionWithName, newComputePipeline  objc.SEL
	newCommandQueue, newBufferWithLength, newBufferWithBytesNoCopy objc.SEL
	contents, length, setFastMathEnabled                           objc.SEL
	maxTotalThreadsPerThreadgroup, threadExecutionWidth            objc.SEL
	commandBuffer, computeCommandEncoder, setComputePipelineState  objc.SEL
	setBuffer, setBytes, setThreadgroupMemoryLength                objc.SEL
	dispatchThreadgroups, memoryBarrierWithScope, endEncoding      objc.SEL
	commit, waitUntilCompleted, status, error                      objc.SEL
}

var class struct {
	NSString, MTLCompileOptions objc.Class
}

var (
	loadOnce sync.Once
	loadErr  error
)

// load opens the frameworks and binds every function and selector, once.
func load() error {
	loadOnce.Do(func() { loadErr = doLoad() })
	return loadErr
}

func doLoad() (err error) {
	defer func() {
		// RegisterLibFunc panics on a missing symbol; report it as an error.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrUnavailable, r)
		}
	}()
	const rtld = purego.RTLD_NOW | purego.RTLD_GLOBAL
	// Command-line tools must link CoreGraphics to get a default device (Apple's documentation
	// of MTLCreateSystemDefaultDevice; docs/METAL.md §3.6). Not fatal if it is missing.
	_, _ = purego.Dlopen("/System/Library/Frameworks/CoreGraphics.framework/CoreGraphics", rtld)
	if _, err := purego.Dlopen("/System/Library/Frameworks/Foundation.framework/Foundation", rtld); err != nil {
		return fmt.Errorf("%w: load Foundation: %v", ErrUnavailable, err)
	}
	mtl, err := purego.Dlopen("/System/Library/Frameworks/Metal.framework/Metal", rtld)
	if err != nil {
		return fmt.Errorf("%w: load Metal.framework: %v", ErrUnavailable, err)
	}
	libobjc, err := purego.Dlopen("/usr/lib/libobjc.A.dylib", rtld)
	if err != nil {
		return fmt.Errorf("%w: load libobjc: %v", ErrUnavailable, err)
	}
	libSystem, err := purego.Dlopen("/usr/lib/libSystem.B.dylib", rtld)
	if err != nil {
		return fmt.Errorf("%w: load libSystem: %v", ErrUnavailable, err)
	}
	purego.RegisterLibFunc(&createSystemDefaultDevice, mtl, "MTLCreateSystemDefaultDevice")
	purego.RegisterLibFunc(&autoreleasePoolPush, libobjc, "objc_autoreleasePoolPush")
	purego.RegisterLibFunc(&autoreleasePoolPop, libobjc, "objc_autoreleasePoolPop")
	// Optional: without them there is no device fallback, and weights are copied.
	if sym, err := purego.Dlsym(mtl, "MTLCopyAllDevices"); err == nil {
		purego.RegisterFunc(&copyAllDevices, sym)
	}
	if sym, err := purego.Dlsym(libSystem, "proc_regionfilename"); err == nil {
		purego.RegisterFunc(&procRegionFilename, sym)
	}

	send, err := purego.Dlsym(libobjc, "objc_msgSend")
	if err != nil {
		return fmt.Errorf("%w: objc_msgSend: %v", ErrUnavailable, err)
	}
	for _, fn := range []any{&msgID, &msgVoid, &msgU64, &msgBool, &msgPtr, &msgString, &msgIDString,
		&msgIDID, &msgVoidID, &msgVoidBool, &msgBoolSEL, &msgIDU64, &msgVoidU64, &msgIDU64U64,
		&msgVoidU64x2, &msgIDIDErr, &msgIDIDIDErr, &msgNoCopy, &msgSetBuffer, &msgSetBytes, &msgDispatch} {
		purego.RegisterFunc(fn, send)
	}

	for p, name := range map[*objc.SEL]string{
		&sel.alloc: "alloc", &sel.init: "init", &sel.release: "release", &sel.retain: "retain",
		&sel.respondsToSelector: "respondsToSelector:", &sel.initWithUTF8String: "initWithUTF8String:",
		&sel.utf8String: "UTF8String", &sel.localizedDescription: "localizedDescription",
		&sel.count: "count", &sel.objectAtIndex: "objectAtIndex:", &sel.name: "name",
		&sel.maxBufferLength: "maxBufferLength", &sel.hasUnifiedMemory: "hasUnifiedMemory",
		&sel.newLibraryWithSource: "newLibraryWithSource:options:error:",
		&sel.newFunctionWithName:  "newFunctionWithName:",
		&sel.newComputePipeline:   "newComputePipelineStateWithFunction:error:",
		&sel.newCommandQueue:      "newCommandQueue", &sel.newBufferWithLength: "newBufferWithLength:options:",
		&sel.newBufferWithBytesNoCopy: "newBufferWithBytesNoCopy:length:options:deallocator:",
		&sel.contents:                 "contents", &sel.length: "length", &sel.setFastMathEnabled: "setFastMathEnabled:",
		&sel.maxTotalThreadsPerThreadgroup: "maxTotalThreadsPerThreadgroup",
		&sel.threadExecutionWidth:          "threadExecutionWidth", &sel.commandBuffer: "commandBuffer",
		&sel.computeCommandEncoder:   "computeCommandEncoder",
		&sel.setComputePipelineState: "setComputePipelineState:",
		&sel.setBuffer:               "setBuffer:offset:atIndex:", &sel.setBytes: "setBytes:length:atIndex:",
		&sel.setThreadgroupMemoryLength: "setThreadgroupMemoryLength:atIndex:",
		&sel.dispatchThreadgroups:       "dispatchThreadgroups:threadsPerThreadgroup:",
		&sel.memoryBarrierWithScope:     "memoryBarrierWithScope:", &sel.endEncoding: "endEncoding",
		&sel.commit: "commit", &sel.waitUntilCompleted: "waitUntilCompleted", &sel.status: "status",
		&sel.error: "error",
	} {
		*p = objc.RegisterName(name)
	}
	class.NSString = objc.GetClass("NSString")
	class.MTLCompileOptions = objc.GetClass("MTLCompileOptions")
	if class.NSString == 0 || class.MTLCompileOptions == 0 {
		return fmt.Errorf("%w: NSString or MTLCompileOptions class not found", ErrUnavailable)
	}
	return nil
}

// withPool runs f on a locked OS thread inside an autorelease pool (pools are per thread, so
// the goroutine must not migrate between push and pop; docs/METAL.md §3.2).
// https://developer.apple.com/documentation/foundation/nsautoreleasepool
func withPool(f func() error) error {
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	pool := autoreleasePoolPush()
	defer autoreleasePoolPop(pool)
	return f()
}

// release sends release to an owned object (a no-op on nil).
// https://developer.apple.com/documentation/objectivec/nsobjectprotocol/release()
func release(id objc.ID) {
	if id != 0 {
		msgVoid(id, sel.release)
	}
}

// retain sends retain, keeping an autoreleased object past its pool.
// https://developer.apple.com/documentation/objectivec/nsobjectprotocol/retain()
func retain(id objc.ID) objc.ID {
	if id == 0 {
		return 0
	}
	return msgID(id, sel.retain)
}

// newString returns an owned NSString (+1) holding s.
// https://developer.apple.com/documentation/foundation/nsstring/init(utf8string:)
func newString(s string) objc.ID {
	return msgIDString(msgID(objc.ID(class.NSString), sel.alloc), sel.initWithUTF8String, s)
}

// goString copies an NSString (nil gives "").
// https://developer.apple.com/documentation/foundation/nsstring/utf8string
func goString(s objc.ID) string {
	if s == 0 {
		return ""
	}
	return msgString(s, sel.utf8String)
}

// nsError turns an NSError into a Go error: "metal: what: localizedDescription". Metal puts a
// shader compiler's whole log in the description.
// https://developer.apple.com/documentation/foundation/nserror/localizeddescription
func nsError(what string, e objc.ID) error {
	if e == 0 {
		return fmt.Errorf("metal: %s failed (no NSError)", what)
	}
	return fmt.Errorf("metal: %s: %s", what, goString(msgID(e, sel.localizedDescription)))
}

// respondsTo reports whether obj implements a selector (an unknown selector would raise an
// Objective-C exception, which purego cannot catch; docs/METAL.md §3.10).
// https://developer.apple.com/documentation/objectivec/nsobjectprotocol/responds(to:)
func respondsTo(obj objc.ID, s objc.SEL) bool {
	return msgBoolSEL(obj, sel.respondsToSelector, s)
}
