//go:build purego || !amd64

package cpu

func fmaDot64(*float32, *float32, int) float32 { panic("cpu: no fmaDot64 in this build") }

func fmaAxpy(*float32, float32, *float32, int) { panic("cpu: no fmaAxpy in this build") }

func fmaAsmOK() bool { return false }
