//go:build darwin && !nometal

package metal

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego/objc"
)

// mtlQueue is an MTLCommandQueue (owned).
type mtlQueue struct{ id objc.ID }

// commandBuffer returns a new command buffer, autoreleased: use it inside one withPool.
// https://developer.apple.com/documentation/metal/mtlcommandqueue/makecommandbuffer()
func (q mtlQueue) commandBuffer() (mtlCommandBuffer, error) {
	c := msgID(q.id, sel.commandBuffer)
	if c == 0 {
		return mtlCommandBuffer{}, fmt.Errorf("metal: commandBuffer returned nil")
	}
	return mtlCommandBuffer{c}, nil
}

func (q mtlQueue) release() { release(q.id) }

// mtlCommandBuffer is an MTLCommandBuffer (autoreleased, borrowed).
type mtlCommandBuffer struct{ id objc.ID }

// MTLCommandBufferStatus values.
// https://developer.apple.com/documentation/metal/mtlcommandbufferstatus
const (
	statusCompleted = 4
	statusError     = 5
)

// computeEncoder starts a compute pass (serial dispatch type), autoreleased.
// https://developer.apple.com/documentation/metal/mtlcommandbuffer/makecomputecommandencoder()
func (c mtlCommandBuffer) computeEncoder() (mtlEncoder, error) {
	e := msgID(c.id, sel.computeCommandEncoder)
	if e == 0 {
		return mtlEncoder{}, fmt.Errorf("metal: computeCommandEncoder returned nil")
	}
	return mtlEncoder{e}, nil
}

// commit submits the command buffer.
// https://developer.apple.com/documentation/metal/mtlcommandbuffer/commit()
func (c mtlCommandBuffer) commit() { msgVoid(c.id, sel.commit) }

// waitUntilCompleted blocks until the GPU has run the command buffer.
// https://developer.apple.com/documentation/metal/mtlcommandbuffer/waituntilcompleted()
func (c mtlCommandBuffer) waitUntilCompleted() { msgVoid(c.id, sel.waitUntilCompleted) }

// status is the command buffer's MTLCommandBufferStatus.
// https://developer.apple.com/documentation/metal/mtlcommandbuffer/status
func (c mtlCommandBuffer) status() uint64 { return msgU64(c.id, sel.status) }

// err returns the command buffer's error after it completed, or nil.
// https://developer.apple.com/documentation/metal/mtlcommandbuffer/error
func (c mtlCommandBuffer) err() error {
	switch s := c.status(); s {
	case statusCompleted:
		return nil
	case statusError:
		return nsError("command buffer", msgID(c.id, sel.error))
	default:
		return fmt.Errorf("metal: command buffer finished with status %d", s)
	}
}

// mtlEncoder is an MTLComputeCommandEncoder (autoreleased, borrowed).
type mtlEncoder struct{ id objc.ID }

// setPipeline selects the kernel of the next dispatches.
// https://developer.apple.com/documentation/metal/mtlcomputecommandencoder/setcomputepipelinestate(_:)
func (e mtlEncoder) setPipeline(p mtlPipeline) { msgVoidID(e.id, sel.setComputePipelineState, p.id) }

// setBuffer binds buf at a byte offset to [[buffer(index)]].
// https://developer.apple.com/documentation/metal/mtlcomputecommandencoder/setbuffer(_:offset:index:)
func (e mtlEncoder) setBuffer(buf objc.ID, off, index int) {
	msgSetBuffer(e.id, sel.setBuffer, buf, uint64(off), uint64(index))
}

// setBytes copies a small argument struct (at most 4 KiB) into the command stream.
// https://developer.apple.com/documentation/metal/mtlcomputecommandencoder/setbytes(_:length:index:)
func (e mtlEncoder) setBytes(b []byte, index int) {
	msgSetBytes(e.id, sel.setBytes, unsafe.Pointer(unsafe.SliceData(b)), uint64(len(b)), uint64(index))
}

// setThreadgroupMemoryLength reserves n bytes (a multiple of 16) for [[threadgroup(index)]].
// https://developer.apple.com/documentation/metal/mtlcomputecommandencoder/setthreadgroupmemorylength(_:index:)
func (e mtlEncoder) setThreadgroupMemoryLength(n, index int) {
	msgVoidU64x2(e.id, sel.setThreadgroupMemoryLength, uint64(n), uint64(index))
}

// dispatchThreadgroups launches groups threadgroups of threads threads each.
// https://developer.apple.com/documentation/metal/mtlcomputecommandencoder/dispatchthreadgroups(_:threadsperthreadgroup:)
func (e mtlEncoder) dispatchThreadgroups(groups, threads mtlSize) {
	msgDispatch(e.id, sel.dispatchThreadgroups, groups, threads)
}

// barrierScopeBuffers is MTLBarrierScopeBuffers.
// https://developer.apple.com/documentation/metal/mtlbarrierscope/buffers
const barrierScopeBuffers = 1

// memoryBarrier orders buffer writes of earlier dispatches before reads of later ones.
// https://developer.apple.com/documentation/metal/mtlcomputecommandencoder/memorybarrier(scope:)
func (e mtlEncoder) memoryBarrier() {
	msgVoidU64(e.id, sel.memoryBarrierWithScope, barrierScopeBuffers)
}

// endEncoding closes the pass.
// https://developer.apple.com/documentation/metal/mtlcommandencoder/endencoding()
func (e mtlEncoder) endEncoding() { msgVoid(e.id, sel.endEncoding) }
