// Package testdata holds the small generated models that tests read (see internal/gentestdata).
package testdata

//go:generate go run ../internal/gentestdata .
