//go:build !purego

package cpu

func levelAvailable(l Level) bool { return l == LevelNEON }
