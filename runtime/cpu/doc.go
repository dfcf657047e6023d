// Package cpu holds the pure-Go kernels of bankai-metal: each function is the reference
// specification of a Metal kernel of the same name in shaders/, and the CPU backend's engine.
package cpu
