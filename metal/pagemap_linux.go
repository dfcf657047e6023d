package metal

import (
	"encoding/binary"
	"os"
	"unsafe"
)

// privatePages reports, for every page of mem (page-aligned, whole pages of the system page
// size), whether it is present and private to this process (anonymous: a copy-on-write page
// already copied), from /proc/self/pagemap: bit 63 is "present", bit 61 "file page or shared
// anonymous" (Documentation/admin-guide/mm/pagemap.rst; these flags need no privilege, only the
// frame numbers do). ok is false when pagemap cannot be read.
func privatePages(mem []byte, page int) (priv []bool, ok bool) {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil, false
	}
	defer f.Close()
	n := len(mem) / page
	raw := make([]byte, 8*n)
	first := uintptr(unsafe.Pointer(unsafe.SliceData(mem))) / uintptr(page)
	if _, err := f.ReadAt(raw, int64(first)*8); err != nil {
		return nil, false
	}
	priv = make([]bool, n)
	for i := range priv {
		e := binary.LittleEndian.Uint64(raw[8*i:])
		priv[i] = e&(1<<63) != 0 && e&(1<<61) == 0
	}
	return priv, true
}
