// Package fileid tells whether two paths name the same file, by identity rather than by name.
package fileid

import (
	"fmt"
	"os"
)

// Same reports whether a and b name the same existing file or directory: the same device and
// inode after following symlinks, so "./m.gguf", an absolute path, a symlink and a hard link
// to one file are all the same. A path that does not exist is the same as nothing.
func Same(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(sa, sb)
}

// CheckOutput returns an error when out names the same file as one of inputs: a command must
// never write over what it reads. what names the output's flag or role in the message
// ("-o", "checkpoint").
func CheckOutput(what, out string, inputs ...string) error {
	for _, in := range inputs {
		if in != "" && Same(out, in) {
			if in == out {
				return fmt.Errorf("%s %s is also an input; write the output somewhere else", what, out)
			}
			return fmt.Errorf("%s %s is the same file as the input %s; write the output somewhere else", what, out, in)
		}
	}
	return nil
}
