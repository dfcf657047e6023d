//go:build unix

package cpu

import "syscall"

// cpuTime is the process's user + system CPU time in seconds: on a machine shared with other
// work, benchmarks report it per operation as well as the wall time.
func cpuTime() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
