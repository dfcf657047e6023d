// Package testenv locates the shared reference fixtures (../shared beside the checkout) for tests.
package testenv

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Root returns the repository root (the directory holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Shared returns the path of a file under ../shared, skipping the test when it is absent.
func Shared(t testing.TB, rel ...string) string {
	t.Helper()
	p := sharedPath(t, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared fixture %s not available: %v", p, err)
	}
	return p
}

// Lookup returns the path of a file under ../shared and whether it exists, without skipping
// (for optional fixtures such as fuzz seeds).
func Lookup(t testing.TB, rel ...string) (string, bool) {
	t.Helper()
	p := sharedPath(t, rel)
	_, err := os.Stat(p)
	return p, err == nil
}

// sharedPath joins rel below ../shared.
func sharedPath(t testing.TB, rel []string) string {
	return filepath.Join(append([]string{Root(t), "..", "shared"}, rel...)...)
}

// ReadFile returns the contents of a file, gunzipped when its name ends in .gz.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	r := open(t, path)
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return data
}

// ReadJSON decodes a JSON or gzip-compressed JSON (.gz) file into v.
func ReadJSON(t testing.TB, path string, v any) {
	t.Helper()
	r := open(t, path)
	defer r.Close()
	if err := json.NewDecoder(r).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
}

// open opens a file for reading, through a gzip reader when its name ends in .gz.
func open(t testing.TB, path string) io.ReadCloser {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Ext(path) != ".gz" {
		return f
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		t.Fatalf("gunzip %s: %v", path, err)
	}
	return gzipFile{gz, f}
}

// gzipFile reads through gz and closes both gz and the file under it.
type gzipFile struct {
	*gzip.Reader
	f *os.File
}

func (g gzipFile) Close() error {
	err := g.Reader.Close()
	if ferr := g.f.Close(); err == nil {
		err = ferr
	}
	return err
}

// SkipShort skips a slow test under -short. `make test` runs every test in full and then the
// race detector over the -short set, so a test skipped here still runs once, without -race.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: runs in the full go test, skipped under -short (the race-detector pass)")
	}
}
