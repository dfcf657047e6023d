package bfs

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime"
)

// partialSearch runs smallSearch(mode) with iters candidates and cancels it when stop says so,
// returning the interrupted result (its checkpoint is what a Ctrl-C or SIGTERM saves).
func partialSearch(t testing.TB, m *runtime.Model, o SearchOptions, stop func(Progress) bool) *Result {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.Progress = func(p Progress) {
		if stop(p) {
			cancel()
		}
	}
	res, err := Search(ctx, runtime.NewCPU(m), o)
	require.NoError(t, err)
	require.True(t, res.Report.Interrupted)
	return res
}

// sampleCheckpoints returns real checkpoints of the tiny 4-layer model: a greedy search
// stopped after 5 candidates, a fast one stopped in its walk and a fast one stopped inside its
// scan. They seed the validation tests and FuzzCheckpoint.
func sampleCheckpoints(t testing.TB, m *runtime.Model) map[string]*Checkpoint {
	t.Helper()
	after := func(k int) func(Progress) bool {
		return func(p Progress) bool { return p.Phase == "search" && p.Iteration >= k }
	}
	g := smallSearch(t, ModeGreedy)
	g.Iters = 30
	accepted := 0
	// Stopped right after an acceptance inside a batch, the rest of the batch stays pending.
	acceptedInBatch := func(p Progress) bool {
		stop := p.Accepted > accepted && p.Iteration >= 24 // the 27th of 27-30
		accepted = p.Accepted
		return stop
	}
	f := smallSearch(t, ModeFast)
	f.Iters, f.ScanSample = 16, 60
	s := smallSearch(t, ModeFast)
	s.Iters, s.ScanSample = 16, 60
	return map[string]*Checkpoint{
		"greedy":  partialSearch(t, m, g, acceptedInBatch).Checkpoint,
		"fast":    partialSearch(t, m, f, after(5)).Checkpoint,
		"in-scan": partialSearch(t, m, s, func(p Progress) bool { return p.Phase == "scan" && p.Iteration == 2*scanChunk }).Checkpoint,
	}
}

// TestSaveLoadCheckpoint round-trips real checkpoints through a file, replacing an older one in
// place, and rejects another format version. A failed write names the file, not a temporary.
func TestSaveLoadCheckpoint(t *testing.T) {
	smallScanChunks(t)
	m := tinyModel(t, 4)
	dir := t.TempDir()
	path := filepath.Join(dir, "search.ckpt.json")
	for name, ck := range sampleCheckpoints(t, m) {
		require.NoError(t, ck.Validate(), name)
		require.NoError(t, SaveCheckpoint(path, ck))
		got, err := LoadCheckpoint(path)
		require.NoError(t, err, name)
		require.Equal(t, ck, got, name)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")

	require.NoError(t, os.WriteFile(path, []byte(`{"version": 2, "options": {"newer": true}}`), 0o644))
	_, err = LoadCheckpoint(path)
	require.ErrorContains(t, err, "version 2, want 1")

	err = SaveCheckpoint(filepath.Join(dir, "missing", "c.json"), &Checkpoint{Version: CheckpointVersion})
	require.ErrorContains(t, err, filepath.Join(dir, "missing", "c.json"))
	require.NotContains(t, err.Error(), ".tmp")
}

// TestLoadCheckpointSizeCap refuses a file bigger than any checkpoint before reading it (a
// sparse file, so the test costs nothing).
func TestLoadCheckpointSizeCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.json")
	require.NoError(t, os.WriteFile(path, []byte(`{`), 0o644))
	require.NoError(t, os.Truncate(path, MaxCheckpointSize+1))
	_, err := LoadCheckpoint(path)
	require.ErrorContains(t, err, "more than a checkpoint can hold")
}

// smallScanChunks makes ModeFast scan in chunks of 16 candidates for the test, so that a scan
// of a 60-candidate sample has four chunks to be interrupted between.
func smallScanChunks(t testing.TB) {
	old := scanChunk
	scanChunk = 16
	t.Cleanup(func() { scanChunk = old })
}

// edit returns ck's JSON with change applied to its generic form.
func edit(t *testing.T, ck *Checkpoint, change func(map[string]any)) []byte {
	t.Helper()
	data, err := json.Marshal(ck)
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, json.Unmarshal(data, &v))
	change(v)
	data, err = json.Marshal(v)
	require.NoError(t, err)
	return data
}

// TestCheckpointValidation damages real checkpoints one field at a time: each is an error that
// names the field and what was expected, never a panic, and never a Go type name.
func TestCheckpointValidation(t *testing.T) {
	smallScanChunks(t)
	m := tinyModel(t, 4)
	cks := sampleCheckpoints(t, m)
	g, f, sc := cks["greedy"], cks["fast"], cks["in-scan"]
	require.NotEmpty(t, g.Pending, "the greedy sample has pending candidates")
	require.NotEmpty(t, sc.ScanScores, "the in-scan sample has scores")
	opt := func(v map[string]any) map[string]any { return v["options"].(map[string]any) }
	list := func(v any) []any { return v.([]any) }
	many := make([]any, MaxSearchBatch+1)
	for i := range many {
		many[i] = map[string]any{"layer": 3, "proj": "up_proj", "row": i, "group": -1, "col": -1}
	}
	for _, c := range []struct {
		name   string
		ck     *Checkpoint
		change func(map[string]any)
		want   string
	}{
		{"batch", g, func(v map[string]any) { opt(v)["batch"] = -3 }, `field "options.batch": -3, want 0 (default) to 1024`},
		{"batch type", g, func(v map[string]any) { opt(v)["batch"] = "x" }, `field "options.batch": want an integer, got a string`},
		{"draws", g, func(v map[string]any) { v["draws"] = 1 }, `field "draws": 1 draws for`},
		{"screen_probes", g, func(v map[string]any) { opt(v)["screen_probes"] = 99 }, `field "options.screen_probes": 99, more than the 4 target probes`},
		{"pending duplicate", g, func(v map[string]any) {
			p := list(v["pending"])
			v["pending"] = append(p, p[0])
		}, `field "pending[`},
		{"pending cap", g, func(v map[string]any) { v["pending"] = many }, `field "pending": more than 1024 entries`},
		{"tried layer", g, func(v map[string]any) { list(v["tried"])[0].(map[string]any)["layer"] = 0 }, `field "tried[0]": layer 0 is not among the searched layers [3 2]`},
		{"tried kind", g, func(v map[string]any) { list(v["tried"])[0].(map[string]any)["group"] = 2 }, `field "tried[0]": group 2, col -1: not a row flip`},
		{"flip field type", g, func(v map[string]any) { list(v["tried"])[1].(map[string]any)["row"] = "7" }, `field "tried[1].row": want an integer, got a string`},
		{"flip unknown key", g, func(v map[string]any) { list(v["tried"])[1].(map[string]any)["rows"] = 7 }, `field "tried[1]": unknown field "rows"`},
		{"pending not drawn", g, func(v map[string]any) {
			p := list(v["pending"])[0].(map[string]any)
			p["row"] = p["row"].(float64) + 1000
		}, `field "pending"`},
		{"mode", g, func(v map[string]any) { opt(v)["mode"] = "sideways" }, `field "options.mode": unknown search mode "sideways" (want greedy or fast)`},
		{"metric", g, func(v map[string]any) { opt(v)["metric"] = 3 }, `field "options.metric": want a string, got a number`},
		{"granularity", g, func(v map[string]any) { opt(v)["granularity"] = "byte" }, `field "options.granularity": unknown granularity "byte"`},
		{"iters", g, func(v map[string]any) { opt(v)["iters"] = 0 }, `field "options.iters": 0, want 1 to`},
		{"iters below iteration", g, func(v map[string]any) { opt(v)["iters"] = 2 }, `want 0 to options.iters (2)`},
		{"projs", g, func(v map[string]any) { opt(v)["projs"] = []any{"up_proj", "up_proj"} }, `field "options.projs[1]": projection up_proj listed twice`},
		{"probe", g, func(v map[string]any) {
			list(opt(v)["target"])[0].(map[string]any)["probes"].([]any)[1].(map[string]any)["wrong"] = " 4"
		}, `options.target[0]: probe 1 ("add_2"): field "wrong"`},
		{"base", g, func(v map[string]any) { v["base"] = list(v["base"])[1:] }, `field "base": 6 scores for 7 target and control probes`},
		{"best", g, func(v map[string]any) { v["best"] = 12.5 }, `field "best": 12.5, want the last accepted fitness`},
		{"counts", g, func(v map[string]any) { v["evaluated"] = 99 }, `field "evaluated": 99 evaluated`},
		{"rng", g, func(v map[string]any) { v["rng"] = "AAAA" }, `field "rng": not a random generator state (3 bytes)`},
		{"rng base64", g, func(v map[string]any) { v["rng"] = "!!" }, `field "rng": invalid base64 at byte 0`},
		{"unknown", g, func(v map[string]any) { v["color"] = "blue" }, `unknown field "color"`},
		{"missing", g, func(v map[string]any) { delete(v, "base") }, `field "base" missing`},
		{"top type", g, func(v map[string]any) { v["options"] = []any{} }, `field "options": want an object, got an array`},
		{"timings", g, func(v map[string]any) { v["timings"].(map[string]any)["total"] = -1 }, `field "timings.total": -1, want seconds >= 0`},
		{"order_pos", f, func(v map[string]any) { v["order_pos"] = 1e6 }, `field "order_pos": 1000000, want 0 to the`},
		{"fast tried", f, func(v map[string]any) { v["tried"] = v["order"] }, `field "tried": a fast search draws no candidates`},
		{"scan_pos", sc, func(v map[string]any) { v["scan_pos"] = -1 }, `field "scan_pos": -1, want 0 to`},
		{"scan score", sc, func(v map[string]any) { list(v["scan_scores"])[0].(map[string]any)["f"] = -5 }, `field "scan_scores[0].f": -5, want a finite fitness above best`},
		{"accepted order", f, func(v map[string]any) {
			a := list(v["accepted"])
			if len(a) > 0 {
				a[0].(map[string]any)["iteration"] = 0
			} else {
				v["accepted"] = []any{map[string]any{"layer": 3, "proj": "up_proj", "row": 1, "group": -1, "col": -1, "iteration": 0, "fitness": 1}}
			}
		}, `field "accepted[0].iteration": 0, want above 0`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseCheckpoint(edit(t, c.ck, c.change), "ck.json")
			require.Error(t, err)
			require.Contains(t, err.Error(), "checkpoint ck.json: ")
			require.Contains(t, err.Error(), c.want)
			for _, goName := range []string{"map[", "json.", "Go struct", "bfs.", "[]interface", "int64", "float64"} {
				require.NotContains(t, err.Error(), goName)
			}
		})
	}
	for _, bad := range []string{"", "null", "[]", `{"version":1`, `{"version":1} x`, `{"version":1,"version":1}`} {
		_, err := ParseCheckpoint([]byte(bad), "ck.json")
		require.Error(t, err, bad)
	}
}

// TestResumeChecksModel refuses flips outside the model's matrices and a scan position past
// the scan, with the field named, before touching the model.
func TestResumeChecksModel(t *testing.T) {
	smallScanChunks(t)
	m := tinyModel(t, 4)
	cks := sampleCheckpoints(t, m)
	rows := m.Layers[3].Proj[runtime.ProjUp].Rows
	for _, c := range []struct {
		ck     *Checkpoint
		change func(*Checkpoint)
		want   string
	}{
		{cks["greedy"], func(ck *Checkpoint) { ck.Tried[0].Row = rows + 5 }, `field "tried[0]": row`},
		{cks["greedy"], func(ck *Checkpoint) { ck.Options.Layers = append(ck.Options.Layers, 9) }, `field "options.layers[2]": layer 9 out of range [0,4)`},
		{cks["in-scan"], func(ck *Checkpoint) { ck.ScanPos = 61 }, `field "scan_pos": 61, more than the 60 candidates`},
		{cks["greedy"], func(ck *Checkpoint) { ck.Fingerprint = "other" }, `is for model other`},
	} {
		data, err := json.Marshal(c.ck)
		require.NoError(t, err)
		var ck Checkpoint
		require.NoError(t, json.Unmarshal(data, &ck))
		c.change(&ck)
		before := weightsHash(m)
		_, err = Resume(context.Background(), runtime.NewCPU(m), &ck, Callbacks{Tokenizer: tinyTok(t)})
		require.ErrorContains(t, err, c.want)
		require.Equal(t, before, weightsHash(m))
	}
}

// TestPeriodicCheckpoints: with an interval of 1 ns a checkpoint comes after every decided
// candidate and after every chunk of a fast scan, and a checkpoint taken in the middle of the
// scan resumes to the uninterrupted result without rescoring the finished chunks.
func TestPeriodicCheckpoints(t *testing.T) {
	smallScanChunks(t)
	m := tinyModel(t, 4)
	o := smallSearch(t, ModeFast)
	o.Iters, o.ScanSample = 12, 60
	full, err := Search(context.Background(), runtime.NewCPU(m), o)
	require.NoError(t, err)

	var cks []*Checkpoint
	o.CheckpointInterval = time.Nanosecond
	o.OnCheckpoint = func(ck *Checkpoint) { cks = append(cks, ck) }
	again, err := Search(context.Background(), runtime.NewCPU(m), o)
	require.NoError(t, err)
	require.Equal(t, full.Patch.Flips, again.Patch.Flips)
	var inScan *Checkpoint
	decided := map[int]bool{}
	for _, ck := range cks {
		require.NoError(t, ck.Validate())
		if ck.ScanPos > 0 && inScan == nil {
			inScan = ck
		}
		decided[ck.Iteration] = true
	}
	require.NotNil(t, inScan, "a checkpoint inside the first scan")
	require.EqualValues(t, scanChunk, inScan.ScanPos)
	for i := 1; i <= again.Report.Iterations; i++ {
		require.True(t, decided[i], "a checkpoint after candidate %d", i)
	}

	// Interrupted inside the scan: the checkpoint keeps the finished chunk.
	part := partialSearch(t, m, func() SearchOptions { p := o; p.OnCheckpoint = nil; return p }(),
		func(p Progress) bool { return p.Phase == "scan" && p.Iteration == 2*scanChunk })
	require.EqualValues(t, 2*scanChunk, part.Checkpoint.ScanPos)
	var scanned []int
	res, err := Resume(context.Background(), runtime.NewCPU(m), part.Checkpoint, Callbacks{Tokenizer: tinyTok(t),
		Progress: func(p Progress) {
			if p.Phase == "scan" {
				scanned = append(scanned, p.Iteration)
			}
		}})
	require.NoError(t, err)
	require.Equal(t, 3*scanChunk, scanned[0], "the resumed scan starts after the finished chunks")
	require.Equal(t, full.Patch.Flips, res.Patch.Flips)
	require.Equal(t, full.Report.Fitness, res.Report.Fitness)
	require.Equal(t, full.Report.Accepted, res.Report.Accepted)
	require.True(t, strings.HasPrefix(res.Patch.Metadata["search_algorithm"].(string), "bfs_scan_greedy"))
}
