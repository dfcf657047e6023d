package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/internal/fileid"
	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// overwriteFlag lets patch apply and revert replace an existing output.
var overwriteFlag = &cli.BoolFlag{Name: "overwrite", Usage: "replace the output if it exists (a GGUF file, or an MLX model directory)"}

const provenanceHelp = "The copy records the patches in it (the GGUF key bankai.patches, or bankai_patches.json in an\n" +
	"MLX directory) with the base model's fingerprint and each patch's content id. Patches are\n" +
	"told apart by content, not by name: two patches both called math_patch stack, the same flips\n" +
	"twice are refused. A patch recorded in the input is refused (already applied) unless --force,\n" +
	"which applies it again and so reverts it, like patch revert. Reverting every patch gives back\n" +
	"the original file byte for byte. An existing output is refused unless --overwrite."

func patchApplyCommand() *cli.Command {
	return &cli.Command{
		Name:        "apply",
		Usage:       "write a patched copy of a model (GGUF file or MLX directory); the input is never touched",
		Description: provenanceHelp,
		Flags: []cli.Flag{modelFlag,
			&cli.StringSliceFlag{Name: "patch", Aliases: []string{"p"}, Required: true, Usage: "patch file (repeatable: patches stack)"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "output file or directory (written atomically)"},
			&cli.BoolFlag{Name: "force", Usage: "apply patches made for another model, or already recorded in it (which reverts them)"},
			overwriteFlag},
		Action: func(c *cli.Context) error {
			start := time.Now()
			out := c.String("out")
			if err := checkOutputOf(c, out, c.StringSlice("patch")...); err != nil {
				return err
			}
			m, applied, err := loadModelPatched(c)
			if err != nil {
				return err
			}
			defer m.Close()
			if err := saveWithNote(c, m, applied, out); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "applied %s to %s -> %s (%.2fs)\n", strings.Join(applied.List(), ", "),
				m.Source.Path, out, time.Since(start).Seconds())
			return nil
		},
	}
}

func patchRevertCommand() *cli.Command {
	return &cli.Command{
		Name:  "revert",
		Usage: "write a copy of a patched model with patches taken out again (the original, byte for byte, once none is left)",
		Description: "Each patch must be recorded in the model's patch note (patch apply writes it); it is found by\n" +
			"content, whatever its name. The copy's note lists the patches that remain.",
		Flags: []cli.Flag{modelFlag,
			&cli.StringSliceFlag{Name: "patch", Aliases: []string{"p"}, Required: true, Usage: "patch file to take out (repeatable)"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "output file or directory (written atomically)"},
			overwriteFlag},
		Action: func(c *cli.Context) error {
			out := c.String("out")
			if err := checkOutputOf(c, out, c.StringSlice("patch")...); err != nil {
				return err
			}
			m, err := loadPath(c.String("model"))
			if err != nil {
				return err
			}
			defer m.Close()
			note, err := patch.ParseNote(m.Source.PatchNote)
			if err != nil {
				return fmt.Errorf("%s: %w", m.Source.Path, err)
			}
			if note == nil {
				return fmt.Errorf("patch revert: %s records no applied patch (it has no patch note); "+
					"patch apply flips a patch's bits whatever the file records", m.Source.Path)
			}
			applied := patch.NewApplied(m)
			applied.Inherit(note)
			var names []string
			for _, f := range c.StringSlice("patch") {
				p, err := patch.Load(f)
				if err != nil {
					return err
				}
				if err := applied.RevertPatch(p); err != nil {
					return fmt.Errorf("%w (recorded in %s: %s)", err, m.Source.Path, strings.Join(applied.Inherited(), ", "))
				}
				names = append(names, p.Name)
			}
			if err := saveWithNote(c, m, applied, out); err != nil {
				return err
			}
			left := "no patch left"
			if n := applied.Inherited(); len(n) > 0 {
				left = "still applied: " + strings.Join(n, ", ")
			}
			fmt.Fprintf(c.App.Writer, "reverted %s in %s -> %s (%s)\n", strings.Join(names, ", "), m.Source.Path, out, left)
			return nil
		},
	}
}

// saveWithNote writes the model with the provenance note of what is applied now.
func saveWithNote(c *cli.Context, m *runtime.Model, applied *patch.Applied, out string) error {
	opt := runtime.SaveOptions{Note: applied.Note(m.Fingerprint()).String(), Overwrite: c.Bool("overwrite")}
	err := m.SaveCopy(out, opt)
	if errors.Is(err, runtime.ErrOutputExists) {
		return fmt.Errorf("%s already exists; pass --overwrite to replace it", out)
	}
	return err
}

// checkOutputOf refuses an output that is the same file or directory as --model or one of the
// other inputs, by identity (device and inode), not by name.
func checkOutputOf(c *cli.Context, out string, inputs ...string) error {
	model, err := resolveModel(c.String("model"))
	if err != nil {
		return err
	}
	return fileid.CheckOutput("-o", out, append([]string{model}, inputs...)...)
}
