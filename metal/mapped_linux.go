package metal

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// fileBacked reports whether [lo, hi) lies in mappings of one file, from /proc/self/maps (used
// by NewEmulated, so the no-copy placement is exercised on Linux too).
func fileBacked(lo, hi uintptr) bool {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return false
	}
	defer f.Close()
	next, file := lo, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode [path]
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		a, b, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(a, 16, 64)
		end, err2 := strconv.ParseUint(b, 16, 64)
		if !ok || err1 != nil || err2 != nil || uintptr(end) <= next {
			continue
		}
		if uintptr(start) > next {
			return false // a gap, or next is below every mapping
		}
		path := ""
		if len(fields) >= 6 {
			path = fields[5]
		}
		if !strings.HasPrefix(path, "/") || (file != "" && path != file) {
			return false
		}
		file, next = path, uintptr(end)
		if next >= hi {
			return true
		}
	}
	return false
}
