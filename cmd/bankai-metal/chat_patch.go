package main

import (
	"fmt"
	"strings"

	"github.com/bankai-metal/bankai-metal/patch"
)

// /patch swaps weight patches between turns without reloading the model.
func init() {
	chatCommands["patch"] = chatCmd{args: "apply [--force] FILE | revert NAME | list",
		help: "apply, revert or list XOR patches (takes effect from the next turn)", run: chatPatch}
}

// chatPatch runs /patch. The registry is bound to the backend (openGen), so an apply or a
// revert refreshes exactly the matrices it touched.
func chatPatch(ch *chatSession, args string) error {
	verb, arg, _ := strings.Cut(strings.TrimSpace(args), " ")
	arg = strings.TrimSpace(arg)
	a := ch.patches
	switch verb {
	case "list", "":
		names := a.List()
		inFile := a.Inherited()
		if len(names)+len(inFile) == 0 {
			fmt.Fprintln(ch.errOut, "no patches applied")
		}
		for _, n := range inFile {
			fmt.Fprintf(ch.errOut, "%s (in the model file)\n", n)
		}
		for _, n := range names {
			fmt.Fprintln(ch.errOut, n)
		}
		return nil
	case "apply", "revert":
		if arg == "" {
			return fmt.Errorf("/patch %s: missing %s", verb, map[string]string{"apply": "FILE", "revert": "NAME"}[verb])
		}
		n := len(a.Warnings())
		var err error
		if verb == "apply" {
			file, force := arg, false
			if f, ok := strings.CutPrefix(arg, "--force "); ok {
				file, force = strings.TrimSpace(f), true
			}
			p, lerr := patch.Load(file)
			if lerr != nil {
				return lerr
			}
			before := len(a.List())
			err = a.Apply(p, force)
			switch names := a.List(); {
			case err == nil && len(names) > before:
				fmt.Fprintf(ch.errOut, "applied %s (%d flips)\n", names[len(names)-1], len(p.Flips))
			case err == nil: // a patch the model file held: applying it again took it out
			case !force && strings.Contains(err.Error(), "force"):
				err = fmt.Errorf("%w; /patch apply --force %s does it anyway", err, file)
			}
		} else if err = a.Revert(arg); err == nil {
			fmt.Fprintf(ch.errOut, "reverted %s\n", arg)
		}
		if err != nil {
			return err
		}
		for _, w := range a.Warnings()[n:] {
			fmt.Fprintln(ch.errOut, "warning:", w)
		}
		ch.dropCache() // cached keys were computed with the old weights
		return nil
	}
	return fmt.Errorf("/patch: unknown action %q (want apply, revert or list)", verb)
}
