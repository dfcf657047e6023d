//go:build purego || !(amd64 || arm64)

package cpu

func levelAvailable(Level) bool { return false }
