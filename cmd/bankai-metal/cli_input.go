package main

import (
	"fmt"
	"io"
)

// Limits on what commands read from stdin or a file before any work starts.
const (
	maxTextInput   = 64 << 20 // tokenize: text to tokenize
	maxPromptInput = 16 << 20 // generate: a prompt (it must fit in the context anyway)
)

// readLimited reads all of r, failing (without reading more) once it holds more than limit
// bytes. name says what r is in errors ("stdin", a file name).
func readLimited(r io.Reader, limit int64, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than %s", name, byteSize(limit))
	}
	return b, nil
}

// byteSize writes a limit the way a person would: 16 MiB, 512 KiB, 100 bytes.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
