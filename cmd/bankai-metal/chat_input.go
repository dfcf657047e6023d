package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// The chat's input: a line editor on a terminal, plain lines from a pipe, and multi-line
// messages between """ lines.

// errInterrupted is a Ctrl-C at the prompt.
var errInterrupted = errors.New("interrupted")

// The prompts of the terminal line editor: for a message, and inside a multi-line one.
const (
	promptLine = "> "
	promptMore = "... "
)

// lineReader reads the person's input one line at a time.
type lineReader interface {
	// readLine returns a line without its newline, io.EOF at the end or errInterrupted.
	readLine() (string, error)
}

// promptSetter is a lineReader capability: a reader that shows a prompt can change it (to
// "... " inside a multi-line message).
type promptSetter interface {
	setPrompt(prompt string)
}

// newLineReader edits lines in raw mode when r is a terminal (history on up/down), and reads
// plain lines otherwise.
func newLineReader(r io.Reader, w io.Writer) (lineReader, bool) {
	if f, ok := r.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		in := &ctrlCFilter{r: f}
		t := term.NewTerminal(struct {
			io.Reader
			io.Writer
		}{in, w}, promptLine)
		t.History = &lineHistory{}
		return &termReader{fd: int(f.Fd()), in: in, t: t}, true
	}
	return pipeReader{bufio.NewReader(r)}, false
}

// pipeReader reads lines from a pipe or a file.
type pipeReader struct{ r *bufio.Reader }

func (p pipeReader) readLine() (string, error) {
	line, err := p.r.ReadString('\n')
	if errors.Is(err, io.EOF) && line != "" {
		err = nil
	}
	return trimNewline(line), err
}

// termReader edits lines on a terminal, switching it to raw mode while it reads.
type termReader struct {
	fd int
	in *ctrlCFilter
	t  *term.Terminal
}

func (r *termReader) setPrompt(p string) { r.t.SetPrompt(p) }

func (r *termReader) readLine() (string, error) {
	old, err := term.MakeRaw(r.fd)
	if err != nil {
		return "", fmt.Errorf("chat: terminal raw mode: %w", err)
	}
	defer term.Restore(r.fd, old)
	if w, h, err := term.GetSize(r.fd); err == nil && w > 0 && h > 0 {
		r.t.SetSize(w, h)
	}
	line, err := r.t.ReadLine()
	if errors.Is(err, term.ErrPasteIndicator) {
		err = nil
	}
	if err == nil && line == "" && r.in.ctrlC > 0 {
		r.in.ctrlC--
		return "", errInterrupted
	}
	return line, err
}

// ctrlCFilter turns each Ctrl-C typed at the prompt (which term.Terminal treats like Ctrl-D)
// into "end of line, erase it, enter": an empty line the reader reports as errInterrupted.
type ctrlCFilter struct {
	r       io.Reader
	pending []byte
	ctrlC   int // Ctrl-Cs translated but not yet reported
}

func (f *ctrlCFilter) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		var buf [256]byte
		n, err := f.r.Read(buf[:])
		for _, b := range buf[:n] {
			if b == 3 {
				f.pending = append(f.pending, 5, 21, '\r') // ^E ^U Enter
				f.ctrlC++
			} else {
				f.pending = append(f.pending, b)
			}
		}
		if n == 0 && err != nil {
			return 0, err
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[:copy(f.pending, f.pending[n:])]
	return n, nil
}

// lineHistory keeps the last 100 distinct non-empty lines for up/down.
type lineHistory struct{ lines []string } // oldest first

func (h *lineHistory) Add(s string) {
	if s == "" || (len(h.lines) > 0 && h.lines[len(h.lines)-1] == s) {
		return
	}
	h.lines = append(h.lines, s)
	if len(h.lines) > 100 {
		h.lines = h.lines[1:]
	}
}
func (h *lineHistory) Len() int        { return len(h.lines) }
func (h *lineHistory) At(i int) string { return h.lines[len(h.lines)-1-i] }

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
	if p, ok := in.(promptSetter); ok {
		p.setPrompt(promptMore)
		defer p.setPrompt(promptLine)
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
