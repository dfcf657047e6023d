package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/bankai-metal/bankai-metal/bfs"
)

// progressBar draws a one-line progress bar on stderr, at most a few times a second. When
// stderr is not a terminal it prints a plain line every few seconds instead.
type progressBar struct {
	w     io.Writer
	quiet bool
	tty   bool
	last  time.Time
	shown bool
}

func newProgressBar(w io.Writer, quiet bool) *progressBar {
	f, ok := w.(*os.File)
	return &progressBar{w: w, quiet: quiet, tty: ok && term.IsTerminal(int(f.Fd()))}
}

// due says whether to draw now: every 200 ms on a terminal, every 5 s otherwise, and at the end.
func (p *progressBar) due(final bool) bool {
	if p.quiet {
		return false
	}
	every := 200 * time.Millisecond
	if !p.tty {
		every = 5 * time.Second
	}
	if !final && time.Since(p.last) < every {
		return false
	}
	p.last = time.Now()
	return true
}

// line writes one state: over the previous one on a terminal, on its own line otherwise.
func (p *progressBar) line(format string, args ...any) {
	if p.tty {
		fmt.Fprintf(p.w, "\r"+format+"   ", args...)
		p.shown = true
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// search draws the state of a search: iteration, accepted flips, best fitness and ETA.
func (p *progressBar) search(pr bfs.Progress) {
	if !p.due(pr.Iteration >= pr.Iters) {
		return
	}
	frac := 0.0
	if pr.Iters > 0 {
		frac = float64(pr.Iteration) / float64(pr.Iters)
	}
	eta := "?"
	if frac > 0 {
		eta = (time.Duration(float64(pr.Elapsed)/frac) - pr.Elapsed).Round(time.Second).String()
	}
	p.line("%s %s %d/%d  accepted %d  best %+.4f  evals %d  %s elapsed, ETA %s",
		pr.Phase, bar(frac, 24), pr.Iteration, pr.Iters, pr.Accepted, pr.Best, pr.Evaluations,
		pr.Elapsed.Round(time.Second), eta)
}

// count draws done/total for a scan.
func (p *progressBar) count(what string, done, total int64, elapsed time.Duration) {
	if !p.due(done >= total) {
		return
	}
	frac := float64(done) / float64(max(total, 1))
	eta := "?"
	if frac > 0 {
		eta = (time.Duration(float64(elapsed)/frac) - elapsed).Round(time.Second).String()
	}
	p.line("%s %s %d/%d  %s elapsed, ETA %s", what, bar(frac, 24), done, total, elapsed.Round(time.Second), eta)
}

// done ends the bar's line.
func (p *progressBar) done() {
	if p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}

func bar(frac float64, width int) string {
	n := int(frac*float64(width) + 0.5)
	n = min(max(n, 0), width)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
