//go:build !unix

package cpu

func cpuTime() float64 { return 0 }
