package metal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestFileBacked(t *testing.T) {
	page := os.Getpagesize()
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, make([]byte, 3*page), 0o644))
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 3*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	require.NoError(t, err)
	defer unix.Munmap(mem)

	lo := addr(mem)
	require.True(t, fileBacked(lo, lo+uintptr(3*page)))
	require.True(t, fileBacked(lo+uintptr(page), lo+uintptr(2*page)))

	heap := make([]byte, 1<<20)
	h := (addr(heap) + uintptr(page) - 1) &^ uintptr(page-1)
	require.False(t, fileBacked(h, h+uintptr(page)), "the Go heap is anonymous memory")

	anon, err := unix.Mmap(-1, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	require.NoError(t, err)
	defer unix.Munmap(anon)
	require.False(t, fileBacked(addr(anon), addr(anon)+uintptr(page)))
}
