package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/bankai-metal/bankai-metal/bfs"
	"github.com/bankai-metal/bankai-metal/internal/atomicfile"
	"github.com/bankai-metal/bankai-metal/internal/fileid"
)

// periodicSaver returns the OnCheckpoint hook that keeps the checkpoint file up to date while
// a search runs. A failed write is reported once on errw and the search goes on: the final
// write is attempted again at the end.
func (f searchFiles) periodicSaver(errw io.Writer) func(*bfs.Checkpoint) {
	warned := false
	return func(ck *bfs.Checkpoint) {
		ck.Output, ck.Report = f.out, f.report
		if err := bfs.SaveCheckpoint(f.checkpoint, ck); err != nil && !warned {
			fmt.Fprintf(errw, "warning: periodic checkpoint: %v\n", err)
			warned = true
		}
	}
}

// save writes the result of a search: the patch and the report, and the checkpoint when the
// search was interrupted or anything failed to be written. If the patch cannot be written, it
// is printed on errw for the user to save. A finished, fully written search removes what it
// supersedes: its checkpoint, the checkpoint it resumed, and the partial patch and report of
// the interrupted run when they went elsewhere and still hold what was written then.
func (f searchFiles) save(errw io.Writer, res *bfs.Result) error {
	patchData, perr := res.Patch.Marshal()
	if perr == nil {
		perr = atomicfile.WriteBytes(f.out, patchData)
	}
	if perr != nil {
		perr = fmt.Errorf("could not write the patch to %s: %w", f.out, atomicfile.PlainError(perr))
		printPatch(errw, perr, res, patchData)
	}
	reportData, rerr := json.MarshalIndent(res.Report, "", "  ")
	if rerr == nil {
		reportData = append(reportData, '\n')
		rerr = atomicfile.WriteBytes(f.report, reportData)
	}
	if rerr != nil {
		rerr = fmt.Errorf("could not write the report to %s: %w", f.report, atomicfile.PlainError(rerr))
	}
	if !res.Report.Interrupted && perr == nil && rerr == nil {
		f.removeSuperseded()
		return nil
	}

	ck := res.Checkpoint
	ck.Output, ck.Report, ck.PartialFiles = f.out, f.report, nil
	if res.Report.Interrupted {
		if perr == nil {
			ck.PartialFiles = append(ck.PartialFiles, partialFile(f.out, patchData))
		}
		if rerr == nil {
			ck.PartialFiles = append(ck.PartialFiles, partialFile(f.report, reportData))
		}
	}
	cerr := bfs.SaveCheckpoint(f.checkpoint, ck)
	switch {
	case cerr != nil && f.resumed != "":
		cerr = fmt.Errorf("%w (the checkpoint resumed, %s, is left as it was)", cerr, f.resumed)
	case cerr == nil && f.resumed != "" && !sameFile(f.resumed, f.checkpoint):
		os.Remove(f.resumed) // superseded by the new checkpoint
	}
	if err := errors.Join(perr, rerr, cerr); err != nil {
		if cerr == nil {
			return fmt.Errorf("%w\nthe search is saved in %s: --resume %s -o OTHER writes it elsewhere", err, f.checkpoint, f.checkpoint)
		}
		return err
	}
	return nil
}

// printPatch prints a patch that could not be written, in the form of the patch file.
func printPatch(errw io.Writer, err error, res *bfs.Result, data []byte) {
	if data == nil {
		data, _ = json.MarshalIndent(res.Patch.Flips, "", "  ")
	}
	fmt.Fprintf(errw, "bankai-metal: %v\nthe patch (%d flips) is between the two lines below; save it to a file to keep it:\n", err, len(res.Patch.Flips))
	fmt.Fprintln(errw, "-----8<----- patch -----8<-----")
	errw.Write(data)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		fmt.Fprintln(errw)
	}
	fmt.Fprintln(errw, "-----8<----- end -----8<-----")
}

func partialFile(path string, data []byte) bfs.PartialFile {
	sum := sha256.Sum256(data)
	return bfs.PartialFile{Path: path, SHA256: hex.EncodeToString(sum[:])}
}

// removeSuperseded removes, after a finished search was written, its checkpoint (a periodic
// one), the checkpoint it resumed, and the resumed run's partial files that were not replaced
// by this run's outputs and still hold exactly what that run wrote.
func (f searchFiles) removeSuperseded() {
	os.Remove(f.checkpoint)
	if f.resumed != "" {
		os.Remove(f.resumed)
	}
	for _, p := range f.partials {
		if sameFile(p.Path, f.out) || sameFile(p.Path, f.report) {
			continue
		}
		if data, err := os.ReadFile(p.Path); err == nil && partialFile(p.Path, data).SHA256 == p.SHA256 {
			os.Remove(p.Path)
		}
	}
}

// sameFile is path equality or file identity.
func sameFile(a, b string) bool { return a == b || fileid.Same(a, b) }
