//go:build !unix

package gguf

import (
	"fmt"
	"os"
)

// Open reads the whole file into memory and parses it (no mmap on this platform). Callers may
// modify tensor data in memory; the file on disk never changes.
func Open(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("gguf: %s: empty file: %w", path, ErrFormat)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, withPath(path, err)
	}
	return f, nil
}

// Close releases the file's memory. Bytes and Data return nil afterwards.
func (f *File) Close() error {
	f.data, f.unmap = nil, nil
	return nil
}
