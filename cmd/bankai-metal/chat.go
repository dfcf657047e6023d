package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

func init() {
	register(chatCommand())
	for name, cmd := range builtinChatCommands() {
		chatCommands[name] = cmd
	}
}

func chatCommand() *cli.Command {
	return &cli.Command{
		Name:      "chat",
		Usage:     "chat with a model in the terminal (or answer one message per line of piped stdin)",
		ArgsUsage: " ",
		Description: "Each turn is formatted with the Qwen3 chat template (thinking off unless --think) and the\n" +
			"conversation stays in the KV cache, so a new turn only feeds its new tokens. Type /? for the\n" +
			"commands. Ctrl-C stops an answer; Ctrl-C twice at the prompt, Ctrl-D or /bye quits. A line\n" +
			"starting with \"\"\" starts a multi-line message, which ends at a line that is \"\"\".\n\n" +
			"With stdin not a terminal (piped) every line is a message (or a /command) and stdout gets\n" +
			"exactly one line per message: the answer with each newline written as \\n, each carriage\n" +
			"return as \\r and each backslash as \\\\ (what /stats, /set and /? print follows as is).\n" +
			"Notes go to stderr. A message that does not fit the context ends the chat with exit status 1.\n\n" +
			"Example: bankai-metal chat -m Bonsai-8B.gguf --system \"Answer briefly.\"",
		Flags:  append([]cli.Flag{modelFlag}, generationFlags()...),
		Action: runChat,
	}
}

// chatCmd is one slash command of the chat. run gets the rest of the line after the name,
// trimmed; returning errBye ends the chat, any other error is printed and the chat goes on.
type chatCmd struct {
	args   string // argument synopsis shown by /? ("" if none)
	help   string
	run    func(ch *chatSession, args string) error
	hidden bool // an alias, left out of /?
}

// chatCommands maps a slash command's name (without the slash) to its handler. The built-in
// commands are added by this file's init; another file adds its own from an init function:
//
//	func init() {
//		chatCommands["patch"] = chatCmd{args: "apply FILE | revert NAME | list",
//			help: "manage weight patches", run: chatPatch}
//	}
//
// A handler changing weights must call ch.dropCache so the next turn re-feeds the conversation.
var chatCommands = map[string]chatCmd{}

// errBye ends the chat.
var errBye = errors.New("bye")

// chatSession is the state of one chat: the conversation, the tokens the KV cache holds and
// the settings. Commands may read and change it.
type chatSession struct {
	*genEnv               // model, tokenizer, backend, session
	out         io.Writer // answers (stdout)
	interactive bool      // stdin is a terminal

	cfg       runtime.SamplerConfig
	sampler   *runtime.Sampler
	maxTokens int
	system    string
	think     bool

	msgs       []tokenizer.Message // the conversation so far (without the system message)
	transcript []int32             // the conversation as tokens: the last prompt and its answer
	cached     []int32             // the tokens the session holds: a prefix of transcript, usually
	appendOK   bool                // the next turn may append to transcript instead of re-rendering

	turns, fed, reused, generated int // totals over the chat
	last                          runtime.GenerateStats
}

func runChat(c *cli.Context) error {
	cfg, err := samplerFromFlags(c)
	if err != nil {
		return err
	}
	env, err := openGen(c)
	if err != nil {
		return err
	}
	defer env.close()
	env.checkTemplate()
	in, interactive := newLineReader(c.App.Reader, c.App.Writer)
	ch := &chatSession{genEnv: env, out: c.App.Writer, interactive: interactive, cfg: cfg,
		sampler: runtime.NewSampler(cfg), maxTokens: c.Int("max-tokens"), system: c.String("system"), think: c.Bool("think")}
	if interactive {
		fmt.Fprintf(ch.out, "bankai-metal chat: %s, context %d tokens. /? for help, /bye or Ctrl-D to quit.\n",
			env.model.Source.Name, env.sess.Max())
	}
	interrupted := false // the previous input was a Ctrl-C
	for {
		line, err := in.readLine()
		switch {
		case errors.Is(err, errInterrupted):
			if interrupted {
				return nil
			}
			interrupted = true
			fmt.Fprintln(ch.out, "(Ctrl-C again, Ctrl-D or /bye to quit)")
			continue
		case errors.Is(err, io.EOF):
			if interactive {
				fmt.Fprintln(ch.out) // leave the shell prompt on a line of its own
			}
			return nil
		case err != nil:
			return err
		}
		interrupted = false
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, tripleQuote) {
			if line, err = readMultiline(in, line); err != nil {
				if !interactive {
					return err
				}
				ch.note("error: %v", err)
				continue
			}
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "/"):
			if err := ch.command(line); errors.Is(err, errBye) {
				return nil
			} else if err != nil {
				ch.note("error: %v", err)
			}
		default:
			if err := ch.answer(c.Context, line); err != nil {
				return err
			}
		}
	}
}

// note prints a message for the person: on stdout in a terminal, on stderr when piped (where
// stdout carries only the answers).
func (ch *chatSession) note(format string, args ...any) {
	w := ch.errOut
	if ch.interactive {
		w = ch.out
	}
	fmt.Fprintf(w, format+"\n", args...)
}

// command runs a slash command line ("/set temp 0.7").
func (ch *chatSession) command(line string) error {
	name, args, _ := strings.Cut(strings.TrimPrefix(line, "/"), " ")
	cmd, ok := chatCommands[strings.ToLower(name)]
	if !ok {
		return fmt.Errorf("unknown command /%s (/? lists the commands)", name)
	}
	return cmd.run(ch, strings.TrimSpace(args))
}

// dropCache empties the KV cache but keeps the conversation, which the next turn feeds again.
func (ch *chatSession) dropCache() {
	ch.sess.Truncate(0)
	ch.cached = nil
}

// answer runs one turn with Ctrl-C (SIGINT) stopping the answer instead of the program.
func (ch *chatSession) answer(parent context.Context, text string) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ch.turn(ctx, text)
}

// turn answers one user message, streaming the answer to ch.out.
func (ch *chatSession) turn(ctx context.Context, text string) error {
	user := tokenizer.Message{Role: "user", Content: text}
	prompt, err := ch.promptFor(user)
	if err != nil {
		return err
	}
	// Keep what the cache shares with the new prompt; Generate feeds the rest.
	keep := 0
	for keep < min(len(ch.cached), len(prompt)) && ch.cached[keep] == prompt[keep] {
		keep++
	}
	ch.sess.Truncate(keep)
	var reply strings.Builder
	st, err := runtime.Generate(ctx, ch.sess, ch.tok, prompt, runtime.GenerateOptions{MaxTokens: ch.maxTokens, Sampler: ch.sampler},
		func(s string) error {
			reply.WriteString(s)
			if !ch.interactive {
				s = escapeLine(s) // one line per answer
			}
			_, err := io.WriteString(ch.out, s)
			return err
		})
	transcript := append(slices.Clip(prompt), st.Tokens...)
	ch.cached = transcript[:ch.sess.Len()] // the session holds the prompt and all but the last token
	ch.last = st
	ch.fed += st.PromptTokens
	ch.reused += st.CachedTokens
	ch.generated += st.GenTokens
	if errors.Is(err, runtime.ErrContextFull) {
		if !ch.interactive {
			// No answer line can be given for this message: stop rather than print the
			// answers of later lines against the wrong inputs.
			return cli.Exit(fmt.Sprintf("bankai-metal: the conversation (%d tokens) no longer fits the context of %d tokens "+
				"(send /clear before the message, or use a larger --ctx)", len(prompt), ch.sess.Max()), 1)
		}
		ch.note("The conversation (%d tokens) no longer fits the context of %d tokens: /clear starts a new one "+
			"(or restart with a larger --ctx).", len(prompt), ch.sess.Max())
		return nil
	}
	if err != nil {
		return err
	}
	ch.turns++
	ch.msgs = append(ch.msgs, user, tokenizer.Message{Role: "assistant", Content: reply.String()})
	ch.transcript = transcript
	ch.appendOK = !ch.think
	fmt.Fprintln(ch.out)
	switch st.Stop {
	case runtime.StopContext:
		ch.note("(The context limit of %d tokens is reached: /clear starts a new conversation.)", ch.sess.Max())
	case runtime.StopCanceled:
		ch.note("(interrupted)")
	}
	if ch.interactive {
		fmt.Fprintln(ch.out)
	}
	return nil
}

// escapeLine escapes a piece of a piped answer so that the whole answer stays on one line:
// backslash as \\, newline as \n, carriage return as \r.
func escapeLine(s string) string {
	if !strings.ContainsAny(s, "\\\n\r") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`).Replace(s)
}

// promptFor returns the token sequence of the conversation followed by a new user message.
// Without thinking, the new turn is appended to the transcript as fed, so the whole earlier
// conversation stays in the cache. Otherwise (and after a change of system message or of the
// thinking mode) the conversation is rendered again with the template, which drops earlier
// reasoning; the cache then keeps only the common prefix.
func (ch *chatSession) promptFor(user tokenizer.Message) ([]int32, error) {
	if ch.appendOK && !ch.think && len(ch.transcript) > 0 {
		turn, err := renderChat(nil, "", user.Content, false)
		if err != nil {
			return nil, err
		}
		return append(slices.Clip(ch.transcript), ch.tok.Encode("<|im_end|>\n"+turn, true)...), nil
	}
	text, err := renderChat(ch.msgs, ch.system, user.Content, ch.think)
	if err != nil {
		return nil, err
	}
	return ch.encode(text), nil
}

func builtinChatCommands() map[string]chatCmd {
	bye := chatCmd{help: "quit (also /exit, /quit)", run: func(*chatSession, string) error { return errBye }}
	help := chatCmd{help: "list the commands (also /help)", run: chatHelp}
	alias := func(c chatCmd) chatCmd { c.hidden = true; return c }
	return map[string]chatCmd{
		"bye": bye, "exit": alias(bye), "quit": alias(bye), "?": help, "help": alias(help),
		"clear": {help: "forget the conversation and empty the context", run: func(ch *chatSession, _ string) error {
			ch.msgs, ch.transcript, ch.appendOK = nil, nil, false
			ch.dropCache() // so /stats shows the context empty
			ch.last = runtime.GenerateStats{}
			ch.note("(conversation cleared)")
			return nil
		}},
		"set":   {args: "[NAME VALUE]", help: "show the settings, or change one (/set temp 0.7)", run: chatSet},
		"stats": {help: "token counts, speeds, context use and peak memory", run: chatStats},
	}
}

// chatHelp prints the commands and the /set parameters in aligned columns.
func chatHelp(ch *chatSession, _ string) error {
	names := make([]string, 0, len(chatCommands))
	for n, c := range chatCommands {
		if !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(ch.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Commands:")
	for _, n := range names {
		fmt.Fprintf(tw, "  /%s %s\t%s\n", n, chatCommands[n].args, chatCommands[n].help)
	}
	fmt.Fprintln(tw, "Parameters of /set:")
	for _, s := range chatSettings {
		fmt.Fprintf(tw, "  %s\t%s\n", s.names[0], s.help)
	}
	fmt.Fprintln(tw, "Ctrl-C stops an answer; Ctrl-C twice at the prompt or Ctrl-D quits.")
	return tw.Flush()
}

// chatStats prints the chat's totals, then the last turn's counts and speeds.
func chatStats(ch *chatSession, _ string) error {
	fmt.Fprintf(ch.out, "turns: %d; in total %d prompt tokens fed, %d reused from the cache, %d generated\n",
		ch.turns, ch.fed, ch.reused, ch.generated)
	printStats(ch.out, ch.last, ch.sess)
	return nil
}
