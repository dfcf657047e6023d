package metal

import (
	"runtime/debug"
	"unsafe"
)

// privatizeWraps is false only in the test that shows what goes wrong without makePrivate.
var privatizeWraps = true

// makePrivate gives every page of mem (page-aligned, a whole number of pages, inside a writable
// copy-on-write file mapping) its private copy now, before a device wraps it, and reports
// whether it could.
//
// Why: the model is mapped MAP_PRIVATE. A page the host has never written is the file's page in
// the page cache; the first host write (a patch flipping a sign bit) replaces it, in the host's
// page table only, by a fresh private copy. A GPU that pinned the file's page when it first saw
// the buffer keeps reading the old bits, and nothing tells the host. Writing every page first
// (its first word stored back through rewrite, a real store that changes nothing and that the
// compiler cannot drop) means the pages Metal wires are the ones every later host write lands in.
// The cost is that the wrapped weights become anonymous memory (resident, not page cache).
//
// A fault (a mapping that is not writable after all) is recovered and reported as false; the
// caller then copies the bytes instead of wrapping them.
func makePrivate(mem []byte, page int) (ok bool) {
	if len(mem) == 0 || page <= 0 || len(mem)%page != 0 || uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%uintptr(page) != 0 {
		return false
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	for off := 0; off < len(mem); off += page {
		p := (*uint32)(unsafe.Pointer(&mem[off]))
		rewrite(p, *p)
	}
	return true
}

// rewrite stores v at p. It is not inlined, so the store of a value just loaded from p is not
// optimised away, and it is plain Go code, so a fault in it is recovered by SetPanicOnFault
// even under the race detector (an atomic would fault inside the race runtime, which cannot be
// recovered). The pages are written before any device or other goroutine sees them.
//
//go:noinline
func rewrite(p *uint32, v uint32) { *p = v }
