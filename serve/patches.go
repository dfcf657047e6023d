package serve

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// baseAlias is accepted in place of the model's id: "base+math" names the math stack.
const baseAlias = "base"

// maxCachedStacks bounds the stacks whose XOR composite is kept (there are 2^patches subsets).
const maxCachedStacks = 1024

// patchEntry is one patch file of the patch directory. A patch that failed to load or to
// validate against the model keeps its error: /v1/models lists it and requests naming it get
// a 400 with that error.
type patchEntry struct {
	Name    string // the file name without .json; requests address the patch by it
	File    string
	Flips   int
	ID      string // content hash of the flips (patch.Patch.ID)
	Warning string // a usable patch's caveat (no fingerprint)
	Err     error
	p       *patch.Patch
}

// stack is a set of patches applied together: the model's bits are the base's XOR composite.
type stack struct {
	key   string      // sorted names joined by "+"; "" is the base model
	names []string    // sorted
	flips []boundFlip // the XOR of the patches (patch.Stack), bound to the model, sorted
}

// baseStack is the unpatched model.
var baseStack = &stack{}

// catalog is the patch directory as loaded at start-up, and the stacks built from it.
type catalog struct {
	modelID string
	m       *runtime.Model
	entries map[string]*patchEntry
	order   []string // names, sorted

	mu     sync.Mutex
	stacks map[string]*stack // by key
}

// loadCatalog reads every *.json file of dir (none when dir is ""), checking each patch
// against m: flips in range, and made for this model (its fingerprint, or the base fingerprint
// of the patched copy m was loaded from).
func loadCatalog(dir, modelID string, m *runtime.Model) (*catalog, error) {
	c := &catalog{modelID: modelID, m: m, entries: map[string]*patchEntry{}, stacks: map[string]*stack{}}
	if dir == "" {
		return c, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("serve: patches: %w", err)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("serve: patches: %w", err)
	}
	accept := []string{m.Fingerprint()}
	if note, err := patch.ParseNote(m.Source.PatchNote); err == nil && note != nil && note.Base != "" {
		accept = append(accept, note.Base)
	}
	for _, f := range files {
		e := &patchEntry{Name: strings.TrimSuffix(filepath.Base(f), ".json"), File: f}
		c.entries[e.Name] = e
		c.order = append(c.order, e.Name)
		if strings.ContainsAny(e.Name, "+ ") || e.Name == baseAlias || e.Name == modelID {
			e.Err = fmt.Errorf("patch file name %q cannot name a patch (no '+' or space, not %q or %q)", e.Name, baseAlias, modelID)
			continue
		}
		p, err := patch.Load(f)
		if err != nil {
			e.Err = err
			continue
		}
		e.Flips = len(p.Flips)
		e.ID, _ = p.ID()
		switch {
		case p.Fingerprint == "":
			e.Warning = "the patch has no model fingerprint; it was not checked to be made for this model"
		case !slices.Contains(accept, p.Fingerprint):
			e.Err = fmt.Errorf("made for model %s, this model is %s", p.Fingerprint, accept[0])
			continue
		}
		if err := p.Validate(m); err != nil {
			e.Err = err
			continue
		}
		e.p = p
	}
	sort.Strings(c.order)
	return c, nil
}

// resolve turns a request's model name ("base", the model id, or either followed by
// "+patch+patch...") and its "patches" field into a stack. Errors are API errors: 404 for an
// unknown model or patch, 400 for a patch that failed its checks or is named twice.
func (c *catalog) resolve(model string, extra []string) (*stack, *apiError) {
	var names []string
	switch {
	case model == "" || model == baseAlias || model == c.modelID:
	default:
		rest, ok := strings.CutPrefix(model, c.modelID+"+")
		if !ok {
			rest, ok = strings.CutPrefix(model, baseAlias+"+")
		}
		if !ok {
			return nil, errNotFound("model_not_found", "model", "unknown model %q (GET /v1/models lists them)", model)
		}
		names = strings.Split(rest, "+")
	}
	names = append(names, extra...)
	seen := map[string]bool{}
	for _, n := range names {
		e := c.entries[n]
		switch {
		case n == "":
			return nil, errBadRequest("invalid_patch", "model", "empty patch name in %q", model)
		case seen[n]:
			return nil, errBadRequest("invalid_patch", "patches", "patch %q is named twice (XOR would cancel it)", n)
		case e == nil:
			return nil, errNotFound("patch_not_found", "patches", "unknown patch %q (GET /v1/models lists them)", n)
		case e.Err != nil:
			return nil, errBadRequest("invalid_patch", "patches", "patch %q cannot be used: %v", n, e.Err)
		}
		seen[n] = true
	}
	if len(names) == 0 {
		return baseStack, nil
	}
	slices.Sort(names)
	key := strings.Join(names, "+")
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.stacks[key]; s != nil {
		return s, nil
	}
	ps := make([]*patch.Patch, len(names))
	for i, n := range names {
		p := *c.entries[n].p
		p.Fingerprint = "" // checked at load; a patched copy's base may differ from the model's own
		ps[i] = &p
	}
	comp, _, err := patch.Stack(ps...)
	if err != nil {
		return nil, errBadRequest("invalid_patch", "patches", "stack %s: %v", key, err)
	}
	flips, err := bindFlips(c.m, comp.Flips)
	if err != nil {
		return nil, errBadRequest("invalid_patch", "patches", "stack %s: %v", key, err)
	}
	s := &stack{key: key, names: names, flips: flips}
	if len(c.stacks) < maxCachedStacks {
		c.stacks[key] = s
	}
	return s, nil
}

// modelName is the name a response reports for a stack.
func (c *catalog) modelName(s *stack) string {
	if s.key == "" {
		return c.modelID
	}
	return c.modelID + "+" + s.key
}
