package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// normalizeArgs checks a command line against the commands' own flag definitions and rewrites
// it the way urfave/cli reads it. urfave/cli v2 stops reading flags at the first positional
// argument, so `tokenize "hi" -m M` would tokenize "hi -m M"; here every flag (with its value)
// moves before the positional arguments, which follow a "--" so that none is read as a flag.
// "--" on the command line ends the flags as usual, and a negative number is an argument, not
// a flag. Subcommands (patch info) are followed, each level with its own flags. It also turns
// the usual mistakes into one line each, instead of urfave's help page: an unknown command or
// flag, a flag without its value or with a value of the wrong type, a single-value flag given
// twice, a missing required flag. With --help, -h or help nothing is required and the help
// itself is left to urfave.
func normalizeArgs(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	root := cliLevel{path: app.Name, flags: app.Flags, subs: visibleSubs(app.Commands), needsSub: true,
		version: app.Version != ""}
	rest, err := root.parse(args[1:], false)
	if err != nil {
		return nil, err
	}
	return append([]string{args[0]}, rest...), nil
}

// cliLevel is the app or one (sub)command: the flags it reads and the subcommands under it.
type cliLevel struct {
	path     string // "bankai-metal patch info", for messages
	flags    []cli.Flag
	subs     []*cli.Command
	needsSub bool // the first positional argument must name a subcommand
	version  bool // --version / -v is a flag here (the app, when it has a version)
}

func commandLevel(parent string, c *cli.Command) cliLevel {
	return cliLevel{path: parent + " " + c.Name, flags: c.Flags, subs: visibleSubs(c.Subcommands),
		needsSub: len(c.Subcommands) > 0 && c.Action == nil}
}

// visibleSubs leaves out urfave's own help command, which is handled by name.
func visibleSubs(cmds []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cmds {
		if c.Name != "help" {
			out = append(out, c)
		}
	}
	return out
}

// parse reads the arguments after this level's name and returns them rewritten. help says a
// level above asked for help (then nothing is required).
func (l cliLevel) parse(args []string, help bool) ([]string, error) {
	var flagArgs, pos []string
	seen := map[cli.Flag]string{} // flag -> how it was first written
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if isFlagArg(a) {
			out, typed, f, next, err := l.readFlag(args, i)
			switch {
			case err != nil:
				return nil, err
			case f == nil: // --help, --version
				help = help || out == "-h" || out == "--help"
			case seen[f] != "" && !isSliceFlag(f):
				return nil, fmt.Errorf("%s: %s is given twice (%s, then %s): give it once",
					l.name(), flagNames(f), short(seen[f]), short(typed))
			case seen[f] == "":
				seen[f] = typed
			}
			flagArgs, i = append(flagArgs, out), next
			continue
		}
		if len(l.subs) > 0 && len(pos) == 0 {
			if sub := findCommand(l.subs, a); sub != nil {
				tail, err := commandLevel(l.path, sub).parse(args[i+1:], help)
				if err != nil {
					return nil, err
				}
				return append(append(flagArgs, a), tail...), nil
			}
			if a == "help" || a == "h" {
				if i+1 < len(args) && findCommand(l.subs, args[i+1]) == nil && !isFlagArg(args[i+1]) {
					return nil, l.unknownCommand(args[i+1])
				}
				return append(flagArgs, args[i:]...), nil
			}
			if l.needsSub {
				return nil, l.unknownCommand(a)
			}
		}
		pos = append(pos, a)
	}
	if !help && !l.needsSub {
		if err := l.checkRequired(seen); err != nil {
			return nil, err
		}
	}
	if len(pos) > 0 && !help { // with --help, urfave would take an argument for a help topic
		flagArgs = append(append(flagArgs, "--"), pos...)
	}
	return flagArgs, nil
}

// readFlag reads the flag at args[i] (and its value, in the next argument if not after "=").
// It returns the flag as urfave will read it, as it was typed, its definition (nil for --help
// and --version) and the index of its last argument.
func (l cliLevel) readFlag(args []string, i int) (out, typed string, f cli.Flag, last int, err error) {
	a := args[i]
	name, val, hasVal := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
	f = l.lookup(name)
	// urfave adds --help (and the app's --version) to the flags when it runs a command; before
	// that they are not in the definitions.
	switch {
	case (name == "help" || name == "h") && (f == nil || f == cli.HelpFlag):
		return flagDisplay(name), a, nil, i, nil
	case f == nil && l.version && (name == "version" || name == "v"):
		return a, a, nil, i, nil
	case f == nil:
		return "", "", nil, 0, l.unknownFlag(a, name)
	}
	typed = a
	if takesValue(f) && !hasVal {
		if i+1 == len(args) {
			return "", "", nil, 0, fmt.Errorf("%s: %s needs a value (see '%s --help')", l.name(), a, l.path)
		}
		i++
		val, hasVal = args[i], true
		typed += " " + val
	}
	if !hasVal {
		return a, typed, f, i, nil
	}
	if err := checkValue(f, name, val); err != nil {
		return "", "", nil, 0, fmt.Errorf("%s: %s %q: %v", l.name(), flagDisplay(name), short(val), err)
	}
	return flagDisplay(name) + "=" + val, typed, f, i, nil
}

// short cuts a long argument for a message.
func short(s string) string {
	if len(s) > 100 {
		return s[:96] + "..."
	}
	return s
}

// name is the level's path without the program name ("patch info"), or the program name.
func (l cliLevel) name() string {
	if _, rest, ok := strings.Cut(l.path, " "); ok {
		return rest
	}
	return l.path
}

func (l cliLevel) lookup(name string) cli.Flag {
	for _, f := range l.flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func (l cliLevel) unknownCommand(name string) error {
	var names []string
	for _, c := range l.subs {
		if !c.Hidden {
			names = append(names, c.Name)
		}
	}
	what := "command"
	if l.name() != l.path {
		what = l.name() + " command"
	}
	return fmt.Errorf("unknown %s %q; the commands are: %s", what, name, strings.Join(names, ", "))
}

func (l cliLevel) unknownFlag(arg, name string) error {
	hint := ""
	if s := l.suggest(name); s != "" {
		hint = ", did you mean " + flagDisplay(s) + "?"
	}
	return fmt.Errorf("%s: unknown flag %s%s (see '%s --help')", l.name(), arg, hint, l.path)
}

// suggest returns the flag name closest to a mistyped one, if one is close (within two edits,
// or a prefix of it).
func (l cliLevel) suggest(name string) string {
	best, bestD := "", 3
	for _, f := range l.flags {
		for _, n := range f.Names() {
			d := editDistance(name, n)
			if len(name) >= 3 && strings.HasPrefix(n, name) {
				d = 1
			}
			if d < bestD && len(n) > 1 {
				best, bestD = n, d
			}
		}
	}
	return best
}

// checkRequired fails when a required flag was neither given nor set in its environment
// variable.
func (l cliLevel) checkRequired(seen map[cli.Flag]string) error {
	var missing []string
	for _, f := range l.flags {
		rf, ok := f.(cli.RequiredFlag)
		if !ok || !rf.IsRequired() {
			continue
		}
		if _, given := seen[f]; given || fromEnv(f) {
			continue
		}
		missing = append(missing, flagNames(f))
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s: missing %s (see '%s --help')", l.name(), strings.Join(missing, ", "), l.path)
}

func fromEnv(f cli.Flag) bool {
	df, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return false
	}
	for _, e := range df.GetEnvVars() {
		if _, ok := os.LookupEnv(e); ok {
			return true
		}
	}
	return false
}

// isFlagArg says whether a looks like a flag: a dash and more, but not a negative number.
func isFlagArg(a string) bool {
	if len(a) < 2 || a[0] != '-' {
		return false
	}
	_, err := strconv.ParseFloat(a, 64)
	return err != nil
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func takesValue(f cli.Flag) bool {
	df, ok := f.(cli.DocGenerationFlag)
	return ok && df.TakesValue()
}

func isSliceFlag(f cli.Flag) bool {
	sf, ok := f.(cli.DocGenerationSliceFlag)
	return ok && sf.IsSliceFlag()
}

// checkValue parses val as f would, on a scratch flag set, and says what was expected.
func checkValue(f cli.Flag, name, val string) error {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := f.Apply(fs); err != nil {
		return nil // let urfave report it
	}
	if err := fs.Set(name, val); err != nil {
		switch f.(type) {
		case *cli.IntFlag, *cli.Int64Flag, *cli.IntSliceFlag, *cli.Int64SliceFlag:
			return fmt.Errorf("want an integer")
		case *cli.UintFlag, *cli.Uint64Flag, *cli.UintSliceFlag, *cli.Uint64SliceFlag:
			return fmt.Errorf("want a non-negative integer")
		case *cli.Float64Flag, *cli.Float64SliceFlag:
			return fmt.Errorf("want a number")
		case *cli.BoolFlag:
			return fmt.Errorf("want true or false")
		case *cli.DurationFlag:
			return fmt.Errorf("want a duration such as 90s or 2h")
		}
		return err
	}
	return nil
}

// flagDisplay writes a flag name as typed: -m, --model.
func flagDisplay(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// flagNames writes a flag with its aliases: --model (-m).
func flagNames(f cli.Flag) string {
	names := f.Names()
	s := flagDisplay(names[0])
	if len(names) > 1 {
		var alt []string
		for _, n := range names[1:] {
			alt = append(alt, flagDisplay(n))
		}
		s += " (" + strings.Join(alt, ", ") + ")"
	}
	return s
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
