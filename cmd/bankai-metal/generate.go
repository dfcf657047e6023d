package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	goruntime "runtime"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

func init() { register(generateCommand()) }

func generateCommand() *cli.Command {
	return &cli.Command{
		Name:      "generate",
		Usage:     "generate an answer to a prompt (or continue raw text), streamed to stdout",
		ArgsUsage: " ",
		Description: "The prompt is formatted as one user turn with the Qwen3 chat template (thinking off unless\n" +
			"--think) unless --raw is given, in which case it is tokenized as is (special tokens such as\n" +
			"<|im_start|> are recognised). The output is followed by a newline. Sampling defaults are\n" +
			"Bonsai's recommended settings; --temp 0 is greedy decoding.\n\n" +
			"Examples:\n" +
			"   bankai-metal generate -m Bonsai-8B.gguf -p \"What is a 1-bit LLM?\"\n" +
			"   echo \"Once upon a time\" | bankai-metal generate -m builtin:tiny --raw -n 32 --temp 0",
		Flags: append([]cli.Flag{
			modelFlag,
			&cli.StringFlag{Name: "prompt", Aliases: []string{"p"}, Usage: "the prompt; - or none: read it from stdin"},
			&cli.BoolFlag{Name: "raw", Usage: "tokenize the prompt as is, without the chat template"},
			&cli.BoolFlag{Name: "verbose", Usage: "print token counts, speeds and peak memory to stderr"},
		}, generationFlags()...),
		Action: runGenerate,
	}
}

func runGenerate(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (the prompt goes in -p)", c.Args().First())
	}
	cfg, err := samplerFromFlags(c)
	if err != nil {
		return err
	}
	if c.Bool("raw") && (c.IsSet("system") || c.IsSet("think")) {
		return fmt.Errorf("--system and --think format the prompt as a chat: drop --raw")
	}
	text := c.String("prompt")
	if !c.IsSet("prompt") || text == "-" {
		b, err := readLimited(c.App.Reader, maxPromptInput, "the prompt on stdin")
		if err != nil {
			return err
		}
		text = trimNewline(string(b))
	}
	env, err := openGen(c)
	if err != nil {
		return err
	}
	defer env.close()
	if !c.Bool("raw") {
		env.checkTemplate()
		if text, err = renderChat(nil, c.String("system"), text, c.Bool("think")); err != nil {
			return err
		}
	}
	prompt := env.encode(text)
	if len(prompt) == 0 {
		return fmt.Errorf("empty prompt")
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt) // Ctrl-C ends the answer early
	defer stop()
	opt := runtime.GenerateOptions{MaxTokens: c.Int("max-tokens"), Sampler: runtime.NewSampler(cfg)}
	w := c.App.Writer
	st, err := runtime.Generate(ctx, env.sess, env.tok, prompt, opt, func(s string) error {
		_, err := io.WriteString(w, s)
		return err
	})
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	if c.Bool("verbose") {
		printStats(c.App.ErrWriter, st, env.sess)
	}
	if st.Stop == runtime.StopContext {
		fmt.Fprintf(c.App.ErrWriter, "bankai-metal: stopped at the context limit of %d tokens (raise it with --ctx)\n", env.sess.Max())
	}
	return nil
}

// genEnv is what generate and chat run on: a model, its tokenizer and one session.
type genEnv struct {
	model   *runtime.Model
	patches *patch.Applied // patches applied with --patch or /patch; bound to backend
	tok     *tokenizer.Tokenizer
	backend runtime.Backend
	sess    runtime.Session
	errOut  io.Writer
}

// openGen loads --model with its tokenizer and opens a session of --ctx tokens. The caller
// releases it all with close.
func openGen(c *cli.Context) (*genEnv, error) {
	m, applied, err := loadModelPatched(c)
	if err != nil {
		return nil, err
	}
	b, err := newBackend(c, m)
	if err != nil {
		m.Close()
		return nil, err
	}
	runtime.BindApplied(applied, b) // /patch refreshes the backend's copies
	env := &genEnv{model: m, patches: applied, backend: b, errOut: c.App.ErrWriter}
	n, err := contextSize(c, m)
	if err == nil {
		env.tok, err = m.Tokenizer()
	}
	if err == nil {
		env.sess, err = env.backend.NewSession(n)
	}
	if err != nil {
		env.close()
		return nil, err
	}
	return env, nil
}

// close releases the session, the backend and the model, in that order: lifetimes nest (a
// Metal backend's buffers wrap the model's mapping).
func (e *genEnv) close() {
	if e.sess != nil {
		e.sess.Close()
	}
	e.backend.Close()
	e.model.Close()
}

// checkTemplate warns once when the model's embedded chat template is not Qwen3's, which is
// what prompts are formatted with regardless.
func (e *genEnv) checkTemplate() {
	if tmpl := e.tok.ChatTemplate(); !tokenizer.IsQwen3Template(tmpl) {
		what := "is not the Qwen3 one"
		if tmpl == "" {
			what = "is missing"
		}
		fmt.Fprintf(e.errOut, "bankai-metal: warning: the model's chat template %s; formatting with the Qwen3 template anyway\n", what)
	}
}

// encode tokenizes text with special tokens recognised, adding BOS if the model asks for it.
func (e *genEnv) encode(text string) []int32 {
	ids := e.tok.Encode(text, true)
	if e.tok.AddBOS() && e.tok.BOS() >= 0 {
		ids = append([]int32{e.tok.BOS()}, ids...)
	}
	return ids
}

// renderChat formats a conversation (an optional system message, earlier messages, then the
// user's new message) with the Qwen3 template, ending with the assistant's generation prompt.
func renderChat(history []tokenizer.Message, system, user string, think bool) (string, error) {
	var msgs []tokenizer.Message
	if system != "" {
		msgs = append(msgs, tokenizer.Message{Role: "system", Content: system})
	}
	msgs = append(append(msgs, history...), tokenizer.Message{Role: "user", Content: user})
	return tokenizer.RenderChat(msgs, tokenizer.ChatOptions{AddGenerationPrompt: true, EnableThinking: &think})
}

// printStats writes prompt and generation speeds and the peak memory.
func printStats(w io.Writer, st runtime.GenerateStats, s runtime.Session) {
	fmt.Fprintf(w, "prompt: %d tokens in %.3f s (%.1f tok/s), %d reused from the cache\n",
		st.PromptTokens, st.PromptTime.Seconds(), st.PromptTPS(), st.CachedTokens)
	fmt.Fprintf(w, "generation: %d tokens in %.3f s (%.1f tok/s), stopped: %s\n",
		st.GenTokens, st.GenTime.Seconds(), st.GenTPS(), st.Stop)
	fmt.Fprintf(w, "context: %d of %d tokens\n", s.Len(), s.Max())
	if rss := peakRSS(); rss > 0 {
		fmt.Fprintf(w, "peak memory: %.1f MiB\n", float64(rss)/(1<<20))
	}
}

// peakRSS is the process's maximum resident set size in bytes (0 if unknown). getrusage
// reports it in bytes on macOS and in KiB on Linux.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if goruntime.GOOS == "darwin" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) * 1024
}

// trimNewline drops one trailing "\n" or "\r\n".
func trimNewline(s string) string {
	return strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r")
}
