package main

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/urfave/cli/v2"
)

func init() { register(infoCommand()) }

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:      "info",
		Usage:     "print a model's architecture, shapes, tensor types, size and fingerprint",
		ArgsUsage: " ",
		Flags:     []cli.Flag{modelFlag, &cli.BoolFlag{Name: "json", Usage: "print one JSON object"}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("info: unexpected argument %q (the model goes in -m)", c.Args().First())
			}
			m, err := loadModel(c)
			if err != nil {
				return err
			}
			defer m.Close()
			info := map[string]any{
				"path": m.Source.Path, "format": m.Source.Format, "name": m.Source.Name,
				"architecture": m.Arch, "layers": m.NumLayers(), "hidden": m.Hidden, "ffn": m.FFN,
				"heads": m.Heads, "kv_heads": m.KVHeads, "head_dim": m.HeadDim, "vocab": m.Vocab,
				"context": m.Context, "tied_embeddings": m.Tied, "rms_eps": m.RMSEps,
				"rope_base": m.Rope.Base, "tensor_types": m.Source.TensorTypes,
				"parameters": m.Params(), "file_bytes": m.Source.Size, "fingerprint": m.Fingerprint(),
			}
			if m.Rope.Factor > 1 {
				info["rope_scaling"] = map[string]any{"type": "yarn", "factor": m.Rope.Factor, "original_context": m.Rope.OrigContext}
			}
			w := c.App.Writer
			if c.Bool("json") {
				e := json.NewEncoder(c.App.Writer)
				e.SetIndent("", "  ")
				return e.Encode(info)
			}
			fmt.Fprintf(w, "model         %s (%s)\n", m.Source.Path, m.Source.Format)
			if m.Source.Name != "" {
				fmt.Fprintf(w, "name          %s\n", m.Source.Name)
			}
			fmt.Fprintf(w, "architecture  %s, %d layers, hidden %d, ffn %d\n", m.Arch, m.NumLayers(), m.Hidden, m.FFN)
			fmt.Fprintf(w, "attention     %d heads / %d kv heads x %d (q width %d)\n", m.Heads, m.KVHeads, m.HeadDim, m.QDim())
			rope := "none"
			if m.Rope.Factor > 1 {
				rope = fmt.Sprintf("yarn x%g from %d", m.Rope.Factor, m.Rope.OrigContext)
			}
			fmt.Fprintf(w, "rope          base %g, scaling %s\n", m.Rope.Base, rope)
			head := "untied"
			if m.Tied {
				head = "tied to the embedding"
			}
			fmt.Fprintf(w, "vocab         %d, LM head %s, context %d\n", m.Vocab, head, m.Context)
			var types []string
			for k := range m.Source.TensorTypes {
				types = append(types, k)
			}
			sort.Strings(types)
			fmt.Fprint(w, "tensors      ")
			for _, k := range types {
				fmt.Fprintf(w, " %s:%d", k, m.Source.TensorTypes[k])
			}
			fmt.Fprintln(w)
			fmt.Fprintf(w, "parameters    %d (%.2f B)\n", m.Params(), float64(m.Params())/1e9)
			fmt.Fprintf(w, "size          %d bytes (%.1f MiB, %.3f bits/weight)\n", m.Source.Size, float64(m.Source.Size)/(1<<20),
				float64(m.Source.Size)*8/float64(m.Params()))
			fmt.Fprintf(w, "fingerprint   %s\n", m.Fingerprint())
			return nil
		},
	}
}
