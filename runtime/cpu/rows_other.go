//go:build purego || !amd64

package cpu

func rows4Tile(*float32, *byte, int, int, *float32, int, *float32, int, int) {
	panic("cpu: no rows4Tile in this build")
}

func rows1Tile(*float32, *byte, int, int, *float32, int, *float32, int, int) {
	panic("cpu: no rows1Tile in this build")
}

func rowsTileOK() bool { return false }
