package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// tripleQuote starts and ends a multi-line message, as in ollama.
const tripleQuote = `"""`

// readMultiline completes a message whose first line starts with """: the rest of that line
// and every following line, up to a line that is """ (or that ends with """), joined with
// newlines. A first line such as """hi""" is a message of its own.
func readMultiline(in lineReader, first string) (string, error) {
	rest := strings.TrimPrefix(first, tripleQuote)
	if body, ok := strings.CutSuffix(rest, tripleQuote); ok {
		return body, nil
	}
	if p, ok := in.(interface{ setPrompt(string) }); ok {
		p.setPrompt("... ")
		defer p.setPrompt("> ")
	}
	var lines []string
	if rest != "" {
		lines = append(lines, rest)
	}
	for {
		line, err := in.readLine()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("the input ended inside a %s message (end it with a line that is %s)", tripleQuote, tripleQuote)
		}
		if err != nil {
			return "", err
		}
		if strings.TrimSpace(line) == tripleQuote {
			break
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), tripleQuote); ok {
			lines = append(lines, body)
			break
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n"), nil
}

func (r *termReader) setPrompt(p string) { r.t.SetPrompt(p) }

// escapeLine escapes a piece of a piped answer so that the whole answer stays on one line:
// backslash as \\, newline as \n, carriage return as \r.
func escapeLine(s string) string {
	if !strings.ContainsAny(s, "\\\n\r") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`).Replace(s)
}
