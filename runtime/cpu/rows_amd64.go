//go:build !purego

package cpu

// rows4Tile is the assembly inner loop of rows4 (rows_amd64.s): for rows i in [0, nr) and
// groups g in [0, ng), acc[4i+v] += float32(ds[i·dStride/4+g] · S_g[v]), with the tables of
// group g at t + 65536·g bytes and its sign bytes at bits + i·rowBytes + g·bitStride.
//
//go:noescape
func rows4Tile(t *float32, bits *byte, rowBytes, bitStride int, ds *float32, dStride int, acc *float32, nr, ng int)

// rows1Tile is the assembly inner loop of rows1: acc[i] += float32(ds[i·dStride/4+g] · S_g) with
// the tables of group g at t + 16384·g bytes, otherwise as rows4Tile.
//
//go:noescape
func rows1Tile(t *float32, bits *byte, rowBytes, bitStride int, ds *float32, dStride int, acc *float32, nr, ng int)

// rowsTileOK reports whether rows1 and rows4 run rows1Tile and rows4Tile at the active level.
func rowsTileOK() bool { return simdLevel == LevelAVX2 }
