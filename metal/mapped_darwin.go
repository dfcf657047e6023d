//go:build darwin && !nometal

package metal

import "os"

// procPathMax is PROC_PIDPATHINFO_MAXSIZE (4·MAXPATHLEN) of <libproc.h>.
const procPathMax = 4096

// fileBacked reports whether [lo, hi) lies in a mapping of one file, asking the kernel which
// file backs the first and the last page (proc_regionfilename of <libproc.h>, which returns 0
// for anonymous memory such as the Go heap).
func fileBacked(lo, hi uintptr) bool {
	if load() != nil || procRegionFilename == nil || hi <= lo {
		return false
	}
	a, b := regionFile(lo), regionFile(hi-1)
	return a != "" && a == b
}

func regionFile(addr uintptr) string {
	var buf [procPathMax]byte
	n := procRegionFilename(int32(os.Getpid()), uint64(addr), &buf[0], uint32(len(buf)))
	if n <= 0 || int(n) > len(buf) {
		return ""
	}
	return string(buf[:n])
}
