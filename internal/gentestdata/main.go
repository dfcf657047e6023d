// Command gentestdata writes the small synthetic models committed under testdata/
// (run by `go generate ./...` from the repository root).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gentestdata:", err)
		os.Exit(1)
	}
}

// Models are the committed test models: name -> spec.
func run() error {
	dir := "testdata"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	for name, s := range synth.TestdataModels() {
		if err := s.WriteGGUF(filepath.Join(dir, name+".gguf")); err != nil {
			return err
		}
		if err := s.WriteMLX(filepath.Join(dir, name+"-mlx")); err != nil {
			return err
		}
	}
	return nil
}
