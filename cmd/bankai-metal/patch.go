package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/internal/fileid"
	"github.com/bankai-metal/bankai-metal/patch"
)

func init() { register(patchCommand()) }

func patchCommand() *cli.Command {
	return &cli.Command{
		Name:  "patch",
		Usage: "apply, verify, inspect, stack and diff XOR patches",
		Description: "A patch is a list of sign-bit flips (whole rows, 128-weight groups or single weights).\n" +
			"XOR is its own inverse: applying a patch twice restores the model.\n\n" +
			"Examples:\n" +
			"   bankai-metal patch info calculus_v1.json\n" +
			"   bankai-metal patch apply -m Bonsai-8B.gguf -p fix.json -o Bonsai-8B-fixed.gguf\n" +
			"   bankai-metal patch revert -m Bonsai-8B-fixed.gguf -p fix.json -o Bonsai-8B-again.gguf\n" +
			"   bankai-metal patch verify -m Bonsai-8B-fixed.gguf -p fix.json\n" +
			"   bankai-metal patch stack -o both.json a.json b.json\n" +
			"   bankai-metal patch diff -m Bonsai-8B.gguf --to Bonsai-8B-fixed.gguf -o recovered.json",
		Subcommands: []*cli.Command{patchApplyCommand(), patchRevertCommand(), patchVerifyCommand(), patchInfoCommand(), patchStackCommand(), patchDiffCommand()},
	}
}

func patchVerifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "say whether a patch is applied in a model, not applied, or partly",
		Description: "With --base (the unpatched model) every flipped bit is compared: applied, not applied or\n" +
			"partial. Without it, the patch's recorded model fingerprint is used: the model matches it\n" +
			"(not applied), or matches it once the patch is reverted in memory (applied). Upstream\n" +
			"patches carry no fingerprint and need --base. Exit status: 0 applied, 1 error, 2 not\n" +
			"applied, 3 partial or unknown.",
		Flags: []cli.Flag{modelFlag,
			&cli.StringFlag{Name: "patch", Aliases: []string{"p"}, Required: true, Usage: "patch file"},
			&cli.StringFlag{Name: "base", Usage: "the unpatched model, for an exact bit-by-bit check"}},
		Action: func(c *cli.Context) error {
			p, err := patch.Load(c.String("patch"))
			if err != nil {
				return err
			}
			m, err := loadModel(c)
			if err != nil {
				return err
			}
			defer m.Close()
			var state string
			if bp := c.String("base"); bp != "" {
				base, err := loadPath(bp)
				if err != nil {
					return err
				}
				defer base.Close()
				st, err := patch.Verify(m, base, p)
				if err != nil {
					return err
				}
				state = map[patch.State]string{patch.StateApplied: "applied", patch.StateNotApplied: "not applied", patch.StatePartial: "partial"}[st]
			} else {
				if p.Fingerprint == "" {
					return fmt.Errorf("patch %q has no model fingerprint (an upstream file?): pass --base with the unpatched model", p.Name)
				}
				if err := p.Validate(m); err != nil {
					return err
				}
				switch {
				case m.ContentFingerprint() == p.Fingerprint:
					state = "not applied"
				default:
					// Revert in memory and back; no backend runs this model, so none is told.
					if err := patch.ApplyFlips(m, p.Flips); err != nil {
						return err
					}
					reverted := m.ContentFingerprint()
					if err := patch.ApplyFlips(m, p.Flips); err != nil {
						return err
					}
					if reverted == p.Fingerprint {
						state = "applied"
					} else {
						state = "unknown (the model matches neither the patch's base nor base+patch: partial, or another base)"
					}
				}
			}
			fmt.Fprintf(c.App.Writer, "%s: %s\n", p.Name, state)
			switch {
			case state == "applied":
				return nil
			case state == "not applied":
				return cli.Exit("", 2)
			}
			return cli.Exit("", 3)
		},
	}
}

func patchInfoCommand() *cli.Command {
	return &cli.Command{
		Name:      "info",
		Usage:     "print a patch's flips, bits, size, per-layer/projection histogram and fingerprint",
		ArgsUsage: "PATCH.json",
		Flags: []cli.Flag{&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "model, for exact bit counts and validation"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("patch info: want one patch file, got %d arguments", c.NArg())
			}
			p, err := patch.Load(c.Args().First())
			if err != nil {
				return err
			}
			id, err := p.ID()
			if err != nil {
				return err
			}
			nom := p.StatsNominal()
			info := map[string]any{"name": p.Name, "id": id, "description": p.Description, "base_model": p.BaseModel,
				"fingerprint": p.Fingerprint, "flips": len(p.Flips), "metadata": p.Metadata,
				"nominal": map[string]int{"bits_flipped": nom.BitsFlipped, "size_bytes": nom.SizeBytes}}
			kinds := map[string]int{}
			hist := map[string]int{}
			for _, f := range p.Flips {
				kinds[f.Kind().String()]++
				hist[fmt.Sprintf("L%d.%s", f.Layer, f.Proj)]++
			}
			info["kinds"], info["by_layer_proj"] = kinds, hist
			if p.BitsFlipped > 0 {
				info["bits_flipped"] = p.BitsFlipped
			}
			if c.String("model") != "" {
				m, err := loadModel(c)
				if err != nil {
					return err
				}
				defer m.Close()
				st, err := p.Stats(m)
				if err != nil {
					return err
				}
				info["bits_flipped"], info["bytes_touched"] = st.BitsFlipped, st.BitsFlipped/8
				info["model_fingerprint"] = m.Fingerprint()
			}
			if c.Bool("json") {
				e := json.NewEncoder(c.App.Writer)
				e.SetIndent("", "  ")
				return e.Encode(info)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "name          %s\n", p.Name)
			fmt.Fprintf(w, "id            %s (content hash of the flips)\n", id)
			if p.Description != "" {
				fmt.Fprintf(w, "description   %s\n", p.Description)
			}
			fmt.Fprintf(w, "base model    %s\n", p.BaseModel)
			fp := p.Fingerprint
			if fp == "" {
				fp = "(none: applies to any model with a warning)"
			}
			fmt.Fprintf(w, "fingerprint   %s\n", fp)
			fmt.Fprintf(w, "flips         %d (%s)\n", len(p.Flips), joinCounts(kinds))
			if b, ok := info["bits_flipped"]; ok {
				fmt.Fprintf(w, "bits flipped  %v (exact)\n", b)
			}
			fmt.Fprintf(w, "nominal       %d bits, %d bytes (upstream's 4096 bits and 12 bytes per flip)\n", nom.BitsFlipped, nom.SizeBytes)
			fmt.Fprintf(w, "by layer      %s\n", joinCounts(hist))
			return nil
		},
	}
}

func joinCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func patchStackCommand() *cli.Command {
	return &cli.Command{
		Name:      "stack",
		Usage:     "combine patches into one (their XOR); overlapping flips cancel and are reported",
		ArgsUsage: "A.json B.json ...",
		Flags: []cli.Flag{&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true},
			&cli.StringFlag{Name: "name", Usage: "name of the stacked patch"}},
		Action: func(c *cli.Context) error {
			if c.NArg() < 2 {
				return fmt.Errorf("patch stack: want at least two patch files")
			}
			if err := fileid.CheckOutput("-o", c.String("out"), c.Args().Slice()...); err != nil {
				return err
			}
			var ps []*patch.Patch
			for _, f := range c.Args().Slice() {
				p, err := patch.Load(f)
				if err != nil {
					return err
				}
				ps = append(ps, p)
			}
			s, cancelled, err := patch.Stack(ps...)
			if err != nil {
				return err
			}
			if n := c.String("name"); n != "" {
				s.Name = n
			}
			if err := s.Save(c.String("out")); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "stacked %d patches -> %s: %d flips, %d cancelled\n", len(ps), c.String("out"), len(s.Flips), len(cancelled))
			for _, f := range cancelled {
				fmt.Fprintf(c.App.ErrWriter, "cancelled: %s\n", f)
			}
			return nil
		},
	}
}

func patchDiffCommand() *cli.Command {
	return &cli.Command{
		Name:  "diff",
		Usage: "the patch that maps one model's sign bits to another's (same shapes and scales)",
		Flags: []cli.Flag{modelFlag,
			&cli.StringFlag{Name: "to", Required: true, Usage: "the other model (e.g. a patched copy)"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true},
			&cli.StringFlag{Name: "name", Value: "diff"}},
		Action: func(c *cli.Context) error {
			if err := checkOutputOf(c, c.String("out"), c.String("to")); err != nil {
				return err
			}
			a, err := loadModel(c)
			if err != nil {
				return err
			}
			defer a.Close()
			b, err := loadPath(c.String("to"))
			if err != nil {
				return err
			}
			defer b.Close()
			p, err := patch.Diff(a, b)
			if err != nil {
				return err
			}
			p.Name, p.Fingerprint = c.String("name"), a.Fingerprint()
			if err := p.Save(c.String("out")); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%d flips (%d bits) -> %s\n", len(p.Flips), p.BitsFlipped, c.String("out"))
			return nil
		},
	}
}
