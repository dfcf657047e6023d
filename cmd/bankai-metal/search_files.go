package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/bfs"
	"github.com/bankai-metal/bankai-metal/internal/atomicfile"
	"github.com/bankai-metal/bankai-metal/internal/fileid"
)

// searchFiles are the files a search writes, and the checkpoint it resumes.
type searchFiles struct {
	out, report, checkpoint string
	resumed                 string            // the checkpoint given to --resume, or ""
	partials                []bfs.PartialFile // the partial results written with it
}

// searchFilesFor works out the files: flags given explicitly win; a resumed search otherwise
// writes where the interrupted one was going to (the checkpoint records it) and keeps its
// checkpoint up to date in place. Paths are made absolute, as the checkpoint stores them.
func searchFilesFor(c *cli.Context, ck *bfs.Checkpoint, resumed string) (searchFiles, error) {
	f := searchFiles{out: c.String("out"), report: c.String("report"), checkpoint: c.String("checkpoint"), resumed: resumed}
	if ck != nil {
		f.partials = ck.PartialFiles
		if !c.IsSet("out") {
			switch {
			case ck.Output != "":
				f.out = ck.Output
			default: // a checkpoint from before outputs were recorded: name the patch after it
				f.out = strings.TrimSuffix(strings.TrimSuffix(resumed, ".json"), ".ckpt") + ".json"
			}
			if !c.IsSet("report") && ck.Report != "" {
				f.report = ck.Report
			}
		}
		if !c.IsSet("checkpoint") {
			f.checkpoint = resumed
		}
	}
	stem := strings.TrimSuffix(f.out, ".json")
	if f.report == "" {
		f.report = stem + ".report.json"
	}
	if f.checkpoint == "" {
		f.checkpoint = stem + ".ckpt.json"
	}
	for _, p := range []*string{&f.out, &f.report, &f.checkpoint} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return f, fmt.Errorf("%s: %w", *p, err)
		}
		*p = abs
	}
	return f, nil
}

// check refuses, before any work, outputs that are one of the command's inputs (compared by
// file identity, so a symlink or hard link is caught), outputs that are the same file as each
// other, and outputs that cannot be written.
func (f searchFiles) check(inputs []string) error {
	outs := []struct{ flag, path string }{{"-o", f.out}, {"--report", f.report}, {"--checkpoint", f.checkpoint}}
	for i, o := range outs {
		in := inputs
		if o.flag != "--checkpoint" {
			// The resumed checkpoint is an input; only the checkpoint may be replaced by its
			// own next state.
			in = append(slices.Clone(inputs), f.resumed)
		}
		if err := fileid.CheckOutput(o.flag, o.path, in...); err != nil {
			return err
		}
		for _, p := range outs[:i] {
			if p.path == o.path || fileid.Same(p.path, o.path) {
				return fmt.Errorf("%s and %s are both %s: give them different files", p.flag, o.flag, o.path)
			}
		}
		if err := checkWritable(o.flag, o.path); err != nil {
			return err
		}
	}
	return nil
}

// checkWritable tells whether path can be created or replaced the way atomicfile does it: its
// directory exists and takes a new file, and path is not a directory.
func checkWritable(flag, path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s: directory %s does not exist", flag, path, dir)
	case err != nil:
		return fmt.Errorf("%s %s: %w", flag, path, err)
	case !st.IsDir():
		return fmt.Errorf("%s %s: %s is not a directory", flag, path, dir)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s %s: is a directory", flag, path)
	}
	tmp, err := os.CreateTemp(dir, ".bankai-metal-write-check-*")
	if err != nil {
		return fmt.Errorf("%s %s: cannot create files in %s: %w", flag, path, dir, atomicfile.PlainError(err))
	}
	tmp.Close()
	os.Remove(tmp.Name())
	return nil
}

// runInputs lists the files a command that runs a model reads: the model (every file of an
// MLX directory), the --patch files and the probe files named by the given flags.
func runInputs(c *cli.Context, probeFlagNames ...string) ([]string, error) {
	model, err := resolveModel(c.String("model"))
	if err != nil {
		return nil, err
	}
	inputs := []string{model}
	if entries, err := os.ReadDir(model); err == nil {
		for _, e := range entries {
			inputs = append(inputs, filepath.Join(model, e.Name()))
		}
	}
	inputs = append(inputs, c.StringSlice("patch")...)
	for _, name := range probeFlagNames {
		inputs = append(inputs, probeFiles(c.String(name))...)
	}
	return inputs, nil
}

// probeFiles returns the entries of a probe list that are files, not built-in set names.
func probeFiles(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" && s != "none" && !slices.Contains(bfs.BuiltinSets(), s) {
			out = append(out, s)
		}
	}
	return out
}
