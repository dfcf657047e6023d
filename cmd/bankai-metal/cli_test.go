package main

import (
	"bytes"
	"testing"
)

// runApp runs the bankai-metal app in-process and returns what it wrote to stdout and stderr.
func runApp(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errb
	err = app.Run(append([]string{"bankai-metal"}, args...))
	return out.String(), errb.String(), err
}
