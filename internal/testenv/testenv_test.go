package testenv

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRootAndLookup(t *testing.T) {
	root := Root(t)
	_, err := os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	p, ok := Lookup(t, "no-such-fixture.json")
	require.False(t, ok)
	require.Equal(t, filepath.Join(root, "..", "shared", "no-such-fixture.json"), p)
}

func TestReadFileAndJSON(t *testing.T) {
	dir := t.TempDir()
	doc := []byte(`{"a": [1, 2], "b": "x"}`)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, err := zw.Write(doc)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	plain, gz := filepath.Join(dir, "d.json"), filepath.Join(dir, "d.json.gz")
	require.NoError(t, os.WriteFile(plain, doc, 0o644))
	require.NoError(t, os.WriteFile(gz, zipped.Bytes(), 0o644))

	require.Equal(t, doc, ReadFile(t, plain))
	require.Equal(t, doc, ReadFile(t, gz), "a .gz file is gunzipped")
	for _, path := range []string{plain, gz} {
		var v struct {
			A []int
			B string
		}
		ReadJSON(t, path, &v)
		require.Equal(t, []int{1, 2}, v.A)
		require.Equal(t, "x", v.B)
	}
}
