// Command bankai-metal runs PrismML's 1-bit Bonsai models and finds, applies and checks XOR
// patches for them.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/urfave/cli/v2"
)

// registry holds every subcommand; each command's file registers itself in an init function,
// so adding a command touches only its own file.
var registry []*cli.Command

func register(c *cli.Command) { registry = append(registry, c) }

func commands() []*cli.Command {
	sort.Slice(registry, func(i, j int) bool { return registry[i].Name < registry[j].Name })
	return registry
}

// newApp builds the CLI; tests run it in-process (with run) with their own Writer and
// ErrWriter.
func newApp() *cli.App {
	app := &cli.App{
		Name:    "bankai-metal",
		Usage:   "run 1-bit Bonsai LLMs and find, apply and check XOR patches",
		Version: version(),
		Description: "Models: a Bonsai GGUF file (Q1_0), an MLX 1-bit directory, or builtin:tiny (a small\n" +
			"random model generated on the fly, for trying things out).\n\n" +
			"Examples:\n" +
			"   bankai-metal info -m builtin:tiny\n" +
			"   bankai-metal generate -m Bonsai-8B.gguf -p \"What is a 1-bit LLM?\"\n" +
			"   bankai-metal chat -m Bonsai-8B.gguf",
		Commands:       commands(),
		ExitErrHandler: func(c *cli.Context, err error) {},
		OnUsageError:   usageError("bankai-metal"),
	}
	for _, c := range app.Commands {
		setupCommand(app.Name, c)
	}
	return app
}

// setupCommand makes a command (and its subcommands) report usage errors in one line, and
// keeps urfave's "help" subcommand off commands without subcommands, where "help" is an
// argument like any other (`tokenize help` tokenizes "help").
func setupCommand(parent string, c *cli.Command) {
	path := parent + " " + c.Name
	if c.OnUsageError == nil {
		c.OnUsageError = usageError(path)
	}
	if len(c.Subcommands) == 0 {
		c.HideHelpCommand = true
	}
	for _, s := range c.Subcommands {
		setupCommand(path, s)
	}
}

// usageError is urfave's usage-error hook for a command: one line pointing to --help instead
// of the whole help page. normalizeArgs catches most of these first.
func usageError(path string) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error {
		return fmt.Errorf("%v (see '%s --help')", err, path)
	}
}

// run checks and normalises the command line (normalizeArgs), then runs the app.
func run(ctx context.Context, app *cli.App, args []string) error {
	args, err := normalizeArgs(app, args)
	if err != nil {
		return err
	}
	return app.RunContext(ctx, args)
}

func main() {
	if err := run(context.Background(), newApp(), os.Args); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "bankai-metal:", msg)
			}
			os.Exit(ec.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "bankai-metal:", err)
		os.Exit(1)
	}
}
