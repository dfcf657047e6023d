//go:build !linux && !(darwin && !nometal)

package metal

// fileBacked cannot tell file mappings from other memory on this platform: copy every weight.
func fileBacked(lo, hi uintptr) bool { return false }
