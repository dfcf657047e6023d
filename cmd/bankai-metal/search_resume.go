package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/bfs"
	"github.com/bankai-metal/bankai-metal/patch"
)

// checkResumeFlags refuses probe and search flags given explicitly with --resume when they
// contradict the checkpoint: the search goes on with the checkpoint's settings, and silently
// ignoring a different --iters or --target would be a lie. Flags that agree are fine.
func checkResumeFlags(c *cli.Context, ck *bfs.Checkpoint) error {
	o := ck.Options
	var conflicts []string
	differ := func(flag string, given, saved any) {
		conflicts = append(conflicts, fmt.Sprintf("--%s %v (the checkpoint has %v)", flag, given, saved))
	}
	for _, f := range []struct {
		flag  string
		sets  []*bfs.ProbeSet
		empty string // the value meaning no sets
	}{{"target", o.Target, ""}, {"control", o.Control, "none"}, {"held-out", o.HeldOut, ""}} {
		if !c.IsSet(f.flag) {
			continue
		}
		v := c.String(f.flag)
		var sets []*bfs.ProbeSet
		if v != f.empty && v != "" {
			var err error
			if sets, err = bfs.LoadProbeList(v); err != nil {
				return fmt.Errorf("--%s: %w", f.flag, err)
			}
		} else if f.flag == "control" && v == "" {
			sets, _ = bfs.LoadProbeList(strings.Join(bfs.DefaultControls(c.String("target")), ","))
		}
		if !sameProbes(sets, f.sets) {
			differ(f.flag, v, setNames(f.sets))
		}
	}
	parsed := []struct {
		flag  string
		parse func(string) (any, error)
		saved any
	}{
		{"mode", func(s string) (any, error) { return bfs.ParseMode(s) }, o.Mode},
		{"metric", func(s string) (any, error) { return bfs.ParseMetric(s) }, o.Metric},
		{"granularity", func(s string) (any, error) { return bfs.ParseGranularity(s) }, o.Granularity},
		{"fitness", func(s string) (any, error) { return bfs.ParseFitnessMode(s) }, o.FitnessMode},
		{"layers", func(s string) (any, error) { return parseInts(s) }, o.Layers},
		{"proj", func(s string) (any, error) { return canonicalProjs(s) }, o.Projs},
		{"name", func(s string) (any, error) { return s, nil }, o.PatchName},
	}
	for _, p := range parsed {
		if !c.IsSet(p.flag) {
			continue
		}
		v, err := p.parse(c.String(p.flag))
		if err != nil {
			return fmt.Errorf("--%s: %w", p.flag, err)
		}
		if !reflect.DeepEqual(v, p.saved) {
			differ(p.flag, c.String(p.flag), p.saved)
		}
	}
	if c.IsSet("lambda") && c.Float64("lambda") != o.Lambda {
		differ("lambda", c.Float64("lambda"), o.Lambda)
	}
	if c.IsSet("seed") && c.Uint64("seed") != o.Seed {
		differ("seed", c.Uint64("seed"), o.Seed)
	}
	if c.IsSet("iters") && c.Int("iters") != o.Iters {
		differ("iters", c.Int("iters"), o.Iters)
	}
	if c.IsSet("scan-sample") && c.Int64("scan-sample") != o.ScanSample {
		differ("scan-sample", c.Int64("scan-sample"), o.ScanSample)
	}
	if c.IsSet("proposal") && (c.String("proposal") == "estimate") != o.Estimate {
		differ("proposal", c.String("proposal"), map[bool]string{true: "estimate", false: "scan"}[o.Estimate])
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("--resume %s: a resumed search keeps the checkpoint's settings, but %s; drop the flag or start a new search",
			c.String("resume"), strings.Join(conflicts, ", "))
	}
	return nil
}

// sameProbes compares probe sets by their probes (names of files may differ).
func sameProbes(a, b []*bfs.ProbeSet) bool {
	return slices.EqualFunc(a, b, func(x, y *bfs.ProbeSet) bool { return reflect.DeepEqual(x.Probes, y.Probes) })
}

func setNames(sets []*bfs.ProbeSet) string {
	if len(sets) == 0 {
		return "none"
	}
	names := make([]string, len(sets))
	for i, s := range sets {
		names[i] = s.Name
	}
	return strings.Join(names, ",")
}

// canonicalProjs parses --proj into Hugging Face names, as the checkpoint stores them.
func canonicalProjs(s string) ([]string, error) {
	var out []string
	for _, p := range splitList(s) {
		c, err := patch.CanonicalProj(p)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
