//go:build unix

package gguf

import (
	"fmt"
	"math"
	"os"

	"golang.org/x/sys/unix"
)

// Open maps the whole file copy-on-write (MAP_PRIVATE, PROT_READ|PROT_WRITE) and parses it.
// Callers may modify tensor data in memory (for example flip sign bits); the file on disk never
// changes. Slices returned by Bytes and Data are invalid after Close.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer fd.Close() // the mapping stays valid after the descriptor is closed
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	size := st.Size()
	if size == 0 {
		return nil, fmt.Errorf("gguf: %s: empty file: %w", path, ErrFormat)
	}
	if !st.Mode().IsRegular() || size > math.MaxInt {
		return nil, fmt.Errorf("gguf: %s: not a regular file of mappable size: %w", path, ErrUnsupported)
	}
	data, err := unix.Mmap(int(fd.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("gguf: mmap %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		_ = unix.Munmap(data)
		return nil, withPath(path, err)
	}
	f.unmap = unix.Munmap
	return f, nil
}

// Close releases the mapping of a file returned by Open (a no-op for Parse results and on a
// second call). Bytes and Data return nil afterwards.
func (f *File) Close() error {
	data, unmap := f.data, f.unmap
	f.data, f.unmap = nil, nil
	if unmap == nil {
		return nil
	}
	if err := unmap(data); err != nil {
		return fmt.Errorf("gguf: munmap: %w", err)
	}
	return nil
}
