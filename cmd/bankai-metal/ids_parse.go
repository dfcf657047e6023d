package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// maxIDsInput bounds a list of token ids read from a file or stdin: about 1.5 million ids,
// far beyond any model's context, so a wrong file fails fast instead of filling memory.
const maxIDsInput = 16 << 20

// parseIDs parses a list of token ids: "1,2,3", "1 2 3" (any white space, newlines included)
// or a JSON array as printed by tokenize ("[1, 2, 3]"). "" is an empty list. More than max
// ids is an error (max <= 0: no limit), found before the rest is parsed.
func parseIDs(s string, max int) ([]int32, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		if !strings.HasSuffix(s, "]") {
			return nil, fmt.Errorf("a list that starts with [ must end with ]")
		}
		s = s[1 : len(s)-1]
	}
	var out []int32
	for i := 0; s != ""; i++ {
		s = strings.TrimLeft(s, idSeparators)
		if s == "" {
			break
		}
		f := s
		if j := strings.IndexAny(s, idSeparators); j >= 0 {
			f, s = s[:j], s[j:]
		} else {
			s = ""
		}
		if max > 0 && i == max {
			return nil, fmt.Errorf("more than %d ids", max)
		}
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil || v < 0 {
			if len(f) > 24 {
				f = f[:20] + "..."
			}
			return nil, fmt.Errorf("entry %d (%q): want a token id, a non-negative integer below 2^31", i, f)
		}
		out = append(out, int32(v))
	}
	if out == nil {
		out = []int32{}
	}
	return out, nil
}

// idSeparators separate ids: commas and white space.
const idSeparators = ", \t\r\n"

// readIDs reads a list of ids (see parseIDs) from a file, or from stdin when file is "-".
func readIDs(file string, stdin io.Reader, max int) ([]int32, error) {
	r, name := stdin, "stdin"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.IsDir() {
			return nil, fmt.Errorf("%s is a directory, want a file of token ids", file)
		}
		r, name = f, file
	}
	b, err := readLimited(r, maxIDsInput, name)
	if err != nil {
		return nil, err
	}
	ids, err := parseIDs(string(b), max)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ids, nil
}
