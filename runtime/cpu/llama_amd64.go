//go:build !purego

package cpu

// fmaDot64 is dotLlama(x, y, n, 1, false) for n a positive multiple of 64 (llama_amd64.s).
//
//go:noescape
func fmaDot64(x, y *float32, n int) float32

// fmaAxpy sets a[i] = fma(w, v[i], a[i]) for i in [0, n), n a multiple of 8.
//
//go:noescape
func fmaAxpy(a *float32, w float32, v *float32, n int)

// fmaAsmOK reports whether the llama kernels use fmaDot64 and fmaAxpy at the active level.
func fmaAsmOK() bool { return simdLevel == LevelAVX2 }
