package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/patch"
)

// TestFlagsAfterArguments: flags are read wherever they are on the command line, as people
// expect (urfave/cli alone stops at the first positional argument, and `tokenize "hi" -m M`
// tokenized "hi -m M"); "--" still ends the flags.
func TestFlagsAfterArguments(t *testing.T) {
	model := synthGGUF(t)
	require.Equal(t, tokenizeIDs(t, "", "-m", model, "the cats"), tokenizeIDs(t, "", "the cats", "-m", model))

	special := tokenizeIDs(t, "", "-m", model, "--special", "<|im_start|>user")
	require.Equal(t, special, tokenizeIDs(t, "", "<|im_start|>user", "--special", "-m", model))
	require.Equal(t, special, tokenizeIDs(t, "", "<|im_start|>user", "-m", model, "--special=true"))
	require.Less(t, len(special), len(tokenizeIDs(t, "", "-m", model, "<|im_start|>user")), "--special was read as a flag")

	// after "--", and for the word help, arguments are text
	require.Equal(t, tokenizeIDs(t, "--special", "-m", model), tokenizeIDs(t, "", "-m", model, "--", "--special"))
	require.Equal(t, tokenizeIDs(t, "help", "-m", model), tokenizeIDs(t, "", "-m", model, "help"))
	// a negative number is an argument (detokenize rejects it), not a flag
	_, _, err := runCLI(t, "", "detokenize", "-m", model, "-5")
	require.ErrorContains(t, err, `entry 0 ("-5"): want a token id`)

	// subcommands: patch info FILE --json
	pf := filepath.Join(t.TempDir(), "p.json")
	require.NoError(t, (&patch.Patch{Name: "p", Flips: []patch.Flip{patch.RowFlip(0, "up_proj", 3)}}).Save(pf))
	out, _ := mustRun(t, "", "patch", "info", pf, "--json")
	var info map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &info), out)
	require.EqualValues(t, 1, info["flips"])
}

// TestUsageErrors: each mistake is one line naming it, with nothing else printed (urfave/cli
// used to print the whole help page, then the error a second time).
func TestUsageErrors(t *testing.T) {
	model := synthGGUF(t)
	t.Setenv("BANKAI_MODEL", "")
	os.Unsetenv("BANKAI_MODEL")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"frob"}, `unknown command "frob"; the commands are: `},
		{[]string{"help", "frob"}, `unknown command "frob"`},
		{[]string{"patch", "frob"}, `unknown patch command "frob"; the commands are: apply, `},
		{[]string{"--bogus"}, `bankai-metal: unknown flag --bogus (see 'bankai-metal --help')`},
		{[]string{"tokenize", "-m", model, "--bogus", "x"}, `tokenize: unknown flag --bogus (see 'bankai-metal tokenize --help')`},
		{[]string{"tokenize", "-m", model, "--specail"}, `tokenize: unknown flag --specail, did you mean --special?`},
		{[]string{"patch", "info", "--jsn", "p.json"}, `patch info: unknown flag --jsn, did you mean --json? (see 'bankai-metal patch info --help')`},
		{[]string{"tokenize", "-m", "a.gguf", "-m", model, "x"}, `tokenize: --model (-m) is given twice (-m a.gguf, then -m ` + model + `)`},
		{[]string{"generate", "-m", model, "--temp", "0", "-p", "x", "--temp=1"}, `generate: --temp is given twice`},
		{[]string{"generate", "-m", model, "-n", "2", "--max-tokens", "3"}, `generate: --max-tokens (-n) is given twice`},
		{[]string{"generate", "-m", model, "--top-k", "abc"}, `generate: --top-k "abc": want an integer`},
		{[]string{"generate", "-m", model, "--temp", "warm"}, `generate: --temp "warm": want a number`},
		{[]string{"generate", "-m", model, "-p"}, `generate: -p needs a value`},
		{[]string{"tokenize", "x"}, `tokenize: missing --model (-m) (see 'bankai-metal tokenize --help')`},
		{[]string{"info", model, "-m", model}, `info: unexpected argument "` + model + `" (the model goes in -m)`},
	} {
		out, errOut, err := runCLI(t, "", c.args...)
		require.ErrorContains(t, err, c.want, c.args)
		require.NotContains(t, err.Error(), "\n", c.args)
		require.Empty(t, out, c.args)
		require.Empty(t, errOut, c.args)
	}
	// a repeatable flag may be repeated
	_, _, err := runCLI(t, "", "eval", "-m", model, "--probes", "math", "--probes", "nosuchset")
	require.ErrorContains(t, err, `"nosuchset" is neither a built-in set`)
}

func TestVersion(t *testing.T) {
	out, _ := mustRun(t, "", "--version")
	require.True(t, strings.HasPrefix(out, "bankai-metal version "), out)
	require.Equal(t, 1, strings.Count(out, "\n"), out)

	info := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/bankai-metal/bankai-metal", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-07-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	require.Equal(t, "devel (revision 0123456789ab, 2026-07-01T10:00:00Z, modified), go1.26.8", versionOf(info))
	info.Main.Version, info.Settings = "v0.3.0", nil
	require.Equal(t, "v0.3.0, go1.26.8", versionOf(info))
}

// TestHelpOneDefault: every flag's help shows its default once (urfave prints "(default: x)";
// some usage strings used to carry a second one).
func TestHelpOneDefault(t *testing.T) {
	var walk func(path string, cmds []*cli.Command)
	n := 0
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				require.LessOrEqual(t, strings.Count(f.String(), "(default:"), 1, "%s %s: %s", path, c.Name, f.String())
				n++
			}
			walk(path+" "+c.Name, c.Subcommands)
		}
	}
	walk("bankai-metal", newApp().Commands)
	require.Greater(t, n, 50)
	out, _ := mustRun(t, "", "generate", "--help")
	require.Contains(t, out, "random seed, for reproducible sampling (default: a random one)")
}

// TestHelpAnywhere: asking for help never fails on a missing required flag, wherever it is.
func TestHelpAnywhere(t *testing.T) {
	for _, args := range [][]string{{"tokenize", "--help"}, {"--help", "tokenize"}, {"help", "tokenize"},
		{"patch", "apply", "-h"}, {"patch", "help", "apply"}, {"tokenize", "x", "--help"}} {
		out, _ := mustRun(t, "", args...)
		require.Contains(t, out, "USAGE:", args)
	}
}
