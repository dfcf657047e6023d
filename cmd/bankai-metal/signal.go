package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// interruptSignals are the signals that stop a long command cleanly: Ctrl-C, and the SIGTERM
// that kill, timeout, systemd or a batch scheduler send.
var interruptSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// signalError is the cause of a context cancelled by a signal.
type signalError struct{ sig os.Signal }

func (e signalError) Error() string { return "interrupted by " + signalName(e.sig) }

func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT (Ctrl-C)"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// signalContext returns a context cancelled, with a signalError cause, by the first of
// interruptSignals. A second signal is left to its default action (the process ends at once),
// so a stuck shutdown can still be stopped. stop releases the signals.
func signalContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, interruptSignals...)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			signal.Stop(ch)
			cancel(signalError{sig})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// interruptedExit is the error a command returns after it stopped early because ctx was
// cancelled and saved what it had: exit status 128 + the signal number (130 for SIGINT, 143 for
// SIGTERM), or 130 when the context was cancelled for another reason. msg tells what was kept.
func interruptedExit(ctx context.Context, msg string) error {
	code := 130
	var se signalError
	if errors.As(context.Cause(ctx), &se) {
		if s, ok := se.sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		msg = fmt.Sprintf("%s: %s", se, msg)
	} else {
		msg = "interrupted: " + msg
	}
	return cli.Exit(msg, code)
}
