// Package atomicfile replaces a file so that readers see either its old or its complete new contents.
//
// The new contents go to a temporary file beside the target, named
// ".NAME.tmp-PID-RANDOM" (NAME is the target's file name, PID the writer's process id). If
// SIGINT or SIGTERM arrives while it is written, the write stops and the temporary file is
// removed; a temporary file left by a process that died some other way (SIGKILL, a crash) is
// removed by the next write to the same target, once its PID no longer runs.
package atomicfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// ErrInterrupted is returned when SIGINT or SIGTERM arrives during a write. Nothing was
// written: the target is as it was and the temporary file is gone.
var ErrInterrupted = errors.New("interrupted by a signal; nothing was written")

// Write creates or replaces path with what fill writes. fill writes (unbuffered) into a
// temporary file in path's directory, which is then given mode 0644, synced, closed and renamed
// over path; finally the directory is synced so the rename survives a crash (best effort: not
// every platform can sync a directory, and the file is complete and in place by then). On any
// error, and on SIGINT or SIGTERM (ErrInterrupted), the temporary file is removed and path is
// left as it was. Errors name no temporary file; the caller wraps them with path.
func Write(path string, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	removeStale(path)
	ctx, stop := watchSignals()
	defer stop()
	tmp, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return fmt.Errorf("cannot create a file in %s: %w", dir, PlainError(err))
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = fill(&ctxWriter{ctx: ctx, w: tmp}); err != nil {
		if ctx.Err() != nil {
			return ErrInterrupted
		}
		return PlainError(err)
	}
	steps := []func() error{func() error { return tmp.Chmod(0o644) }, tmp.Sync, tmp.Close, ctx.Err}
	for _, step := range steps {
		if err = step(); err != nil {
			if ctx.Err() != nil {
				return ErrInterrupted
			}
			return PlainError(err)
		}
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot replace %s: %w", path, PlainError(err))
	}
	syncDir(dir)
	return nil
}

// WriteBytes replaces path with data, as Write does.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteDir creates the directory path with what fill puts in it: fill gets a new temporary
// directory beside path (named like Write's temporary files) and a context that is cancelled
// on SIGINT or SIGTERM; the directory is then renamed to path. path must not exist unless
// replace is true, in which case the old directory is renamed aside once the new one is
// complete, the new one takes its place and the old one is removed. On any error, and on a
// signal (ErrInterrupted), the temporary directory is removed and path is as it was.
func WriteDir(path string, replace bool, fill func(ctx context.Context, dir string) error) (err error) {
	parent := filepath.Dir(path)
	removeStale(path)
	st, statErr := os.Lstat(path)
	switch {
	case statErr == nil && !replace:
		return fmt.Errorf("%s already exists", path)
	case statErr == nil && !st.IsDir():
		return fmt.Errorf("%s exists and is not a directory", path)
	}
	ctx, stop := watchSignals()
	defer stop()
	tmp, err := os.MkdirTemp(parent, tempPattern(path))
	if err != nil {
		return fmt.Errorf("cannot create a directory in %s: %w", parent, PlainError(err))
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err = fill(ctx, tmp); err == nil {
		err = ctx.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			return ErrInterrupted
		}
		return PlainError(err)
	}
	var old string
	if statErr == nil {
		// The old directory moves to a name of ours, so a crash before RemoveAll leaves
		// something the next write cleans up.
		old = filepath.Join(parent, tempPrefix(path)+strconv.Itoa(os.Getpid())+"-0")
		if err = os.Rename(path, old); err != nil {
			return fmt.Errorf("cannot replace %s: %w", path, PlainError(err))
		}
	}
	if err = os.Rename(tmp, path); err != nil {
		if old != "" {
			_ = os.Rename(old, path)
		}
		return fmt.Errorf("cannot create %s: %w", path, PlainError(err))
	}
	syncDir(parent)
	if old != "" {
		_ = os.RemoveAll(old)
	}
	return nil
}

// WriteFileIn writes data to a new file dir/name and syncs it, stopping with ErrInterrupted
// when ctx is cancelled (for WriteDir's fill).
func WriteFileIn(ctx context.Context, dir, name string, data []byte) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", name, PlainError(err))
	}
	if _, err = (&ctxWriter{ctx: ctx, w: f}).Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if ctx.Err() != nil {
			return ErrInterrupted
		}
		return fmt.Errorf("%s: %w", name, PlainError(err))
	}
	return nil
}

// ctxWriter writes in chunks of at most 4 MiB and stops once ctx is cancelled.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	const chunk = 4 << 20
	n := 0
	for len(p) > 0 {
		if err := c.ctx.Err(); err != nil {
			return n, ErrInterrupted
		}
		k, err := c.w.Write(p[:min(len(p), chunk)])
		n += k
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// PlainError drops the file name from an *os.PathError or *os.LinkError (often a temporary
// file's name, which means nothing to the person reading the message), keeping the cause for
// errors.Is; callers name the real file themselves.
func PlainError(err error) error {
	var pe *os.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case errors.As(err, &le):
		return le.Err
	}
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
