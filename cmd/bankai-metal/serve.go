package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/serve"
)

func init() { register(serveCommand()) }

// Defaults of serve's flags.
const (
	defaultServeHost  = "127.0.0.1"
	defaultServePort  = 8080
	defaultDrainLimit = 30 * time.Second
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve an OpenAI-compatible API in which every request can name its patches",
		ArgsUsage: " ",
		Description: "POST /v1/chat/completions and /v1/completions (streaming with server-sent events), GET\n" +
			"/v1/models (the model and every patch in --patches as MODEL+NAME) and GET /health. A request\n" +
			"selects a patch stack with \"model\": \"MODEL+math+calculus\" (or \"base+math\") or a \"patches\"\n" +
			"field; switching stacks XORs only their difference into the weights, between requests.\n" +
			"Absent sampling fields take Bonsai's defaults. SIGTERM or Ctrl-C stops accepting requests and\n" +
			"lets the running ones finish (at most --drain).\n\n" +
			"Example: bankai-metal serve -m Bonsai-8B.gguf --patches patches/ --port 8080",
		Flags: append([]cli.Flag{
			modelFlag,
			&cli.StringFlag{Name: "patches", Usage: "directory of *.json patch files, each offered as MODEL+NAME"},
			&cli.StringFlag{Name: "host", Value: defaultServeHost, Usage: "address to listen on (the default serves this machine only)"},
			&cli.IntFlag{Name: "port", Value: defaultServePort, Usage: "TCP port; 0 picks a free one (printed on stderr)"},
			&cli.IntFlag{Name: "ctx", Usage: "context limit of each sequence in tokens",
				DefaultText: fmt.Sprintf("the model's, at most %d", defaultCtx)},
			&cli.IntFlag{Name: "parallel", Value: serve.DefaultParallel, Usage: "sequences decoded at once (each has its own KV cache)"},
			&cli.IntFlag{Name: "queue", Value: serve.DefaultQueue, Usage: "requests that may wait for a slot; beyond, 429"},
			&cli.Int64Flag{Name: "max-body", Value: serve.DefaultMaxBody, Usage: "largest request body in bytes; beyond, 413"},
			&cli.StringFlag{Name: "api-key", EnvVars: []string{"BANKAI_API_KEY"}, Usage: "require Authorization: Bearer KEY"},
			&cli.StringFlag{Name: "name", Usage: "the model's id in the API", DefaultText: "the model's name"},
			&cli.DurationFlag{Name: "drain", Value: defaultDrainLimit, Usage: "on SIGTERM, how long running requests may take to finish"},
			&cli.BoolFlag{Name: "verbose", Usage: "log every request and stack switch"},
			numericsFlag,
		}, deviceFlags...),
		Action: runServe,
	}
}

func runServe(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", c.Args().First())
	}
	if p := c.Int("port"); p < 0 || p > 65535 {
		return fmt.Errorf("--port %d: want 0 to 65535", p)
	}
	if c.Int("parallel") < 1 || c.Int("queue") < 0 {
		return fmt.Errorf("--parallel %d --queue %d: want at least 1 slot and 0 or more queue places", c.Int("parallel"), c.Int("queue"))
	}
	level := slog.LevelWarn
	if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))

	m, err := loadPath(c.String("model"))
	if err != nil {
		return err
	}
	defer m.Close()
	b, err := newBackend(c, m)
	if err != nil {
		return err
	}
	defer b.Close()
	tok, err := m.Tokenizer()
	if err != nil {
		return err
	}
	n, err := contextSize(c, m)
	if err != nil {
		return err
	}
	queue := c.Int("queue")
	if queue == 0 {
		queue = -1 // serve.Config: 0 is the default, negative none
	}
	srv, err := serve.New(serve.Config{Backend: b, Tokenizer: tok, ModelID: c.String("name"), PatchDir: c.String("patches"),
		Context: n, Parallel: c.Int("parallel"), Queue: queue, MaxBody: c.Int64("max-body"),
		APIKey: c.String("api-key"), Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close() // sessions before the backend (deferred above), the backend before the model

	ln, err := net.Listen("tcp", net.JoinHostPort(c.String("host"), strconv.Itoa(c.Int("port"))))
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	ctx, stop := signalContext(c.Context)
	defer stop()
	fmt.Fprintf(c.App.ErrWriter, "bankai-metal: serving %s (%s, context %d) on http://%s\n",
		srv.ModelID(), b.Name(), n, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintf(c.App.ErrWriter, "bankai-metal: %v; finishing running requests (at most %s)\n", context.Cause(ctx), c.Duration("drain"))
	dctx, cancel := context.WithTimeout(context.Background(), c.Duration("drain"))
	defer cancel()
	if err := hs.Shutdown(dctx); err != nil {
		srv.Abort()
		hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	st := srv.Stats()
	fmt.Fprintf(c.App.ErrWriter, "bankai-metal: stopped after %d requests (%d canceled), %d stack switches\n",
		st.Completed, st.Canceled, st.Switches)
	return srv.Close()
}
