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
	p := filepath.Join(append([]string{Root(t), "..", "shared"}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared fixture %s not available: %v", p, err)
	}
	return p
}

// ReadJSON decodes a JSON or gzip-compressed JSON (.gz) file into v.
func ReadJSON(t testing.TB, path string, v any) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if filepath.Ext(path) == ".gz" {
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer gz.Close()
		r = gz
	}
	if err := json.NewDecoder(r).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
}
