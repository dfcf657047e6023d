//go:build purego || !(amd64 || arm64)

package cpu

// Without assembly only LevelPurego exists, so MatMulQ8Shared never calls these.

func q8Dot1(*byte, *byte, int, int, int, int, uint32, uint32, *uint32, int, *float32) {
	panic("cpu: no assembly kernels in this build")
}

func q8Dot4(*byte, *byte, int, int, int, int, uint32, uint32, *uint32, *float32, int, int, int, *float32, int) {
	panic("cpu: no assembly kernels in this build")
}

const q8TileGroups = 1 << 30
