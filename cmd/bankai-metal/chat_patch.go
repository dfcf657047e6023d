package main

import (
	"fmt"
	"strings"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// /patch swaps weight patches between turns without reloading the model.
func init() {
	chatCommands["patch"] = chatCmd{args: "apply FILE | revert NAME | list",
		help: "apply, revert or list XOR patches (takes effect from the next turn)", run: chatPatch}
}

func chatPatch(ch *chatSession, args string) error {
	verb, arg, _ := strings.Cut(strings.TrimSpace(args), " ")
	arg = strings.TrimSpace(arg)
	a := ch.patches
	switch verb {
	case "list", "":
		names := a.List()
		if len(names) == 0 {
			fmt.Fprintln(ch.errOut, "no patches applied")
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
			p, lerr := patch.Load(arg)
			if lerr != nil {
				return lerr
			}
			err = a.Apply(p, false)
			if err == nil {
				fmt.Fprintf(ch.errOut, "applied %s (%d flips)\n", p.Name, len(p.Flips))
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
		if err := ch.backend.WeightsChanged(allMatrices(ch)...); err != nil {
			return err
		}
		ch.dropCache() // cached keys were computed with the old weights
		return nil
	}
	return fmt.Errorf("/patch: unknown action %q (want apply, revert or list)", verb)
}

func allMatrices(ch *chatSession) []*q1.Matrix {
	var ms []*q1.Matrix
	for _, l := range ch.model.Layers {
		ms = append(ms, l.Proj[:]...)
	}
	return ms
}
