//go:build !linux

package metal

// privatePages cannot tell private pages from file pages here; the emulator then treats every
// wrapped page as live host memory.
func privatePages(mem []byte, page int) (priv []bool, ok bool) { return nil, false }
