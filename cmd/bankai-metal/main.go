// Command bankai-metal runs PrismML's 1-bit Bonsai models and finds, applies and checks XOR
// patches for them.
package main

import (
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

// newApp builds the CLI; tests run it in-process with their own Writer and ErrWriter.
func newApp() *cli.App {
	return &cli.App{
		Name:  "bankai-metal",
		Usage: "run 1-bit Bonsai LLMs and find, apply and check XOR patches",
		Description: "Models: a Bonsai GGUF file (Q1_0), an MLX 1-bit directory, or builtin:tiny (a small\n" +
			"random model generated on the fly, for trying things out).\n\n" +
			"Examples:\n" +
			"   bankai-metal info -m builtin:tiny\n" +
			"   bankai-metal generate -m Bonsai-8B.gguf -p \"What is a 1-bit LLM?\"\n" +
			"   bankai-metal chat -m Bonsai-8B.gguf",
		Commands:       commands(),
		ExitErrHandler: func(c *cli.Context, err error) {},
	}
}

func main() {
	if err := newApp().Run(os.Args); err != nil {
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
