package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

func init() {
	register(tokenizeCommand())
	register(detokenizeCommand())
}

func tokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "tokenize",
		Usage:     "print the token ids of a text as a JSON array",
		ArgsUsage: "[TEXT | -]",
		Description: "TEXT (several arguments are joined with spaces), or stdin when it is - or absent, is\n" +
			"tokenized exactly (a trailing newline of stdin included). No BOS is added.\n\n" +
			"Example: bankai-metal tokenize -m Bonsai-8B.gguf --special \"<|im_start|>user\"",
		Flags: []cli.Flag{modelFlag,
			&cli.BoolFlag{Name: "special", Usage: "recognise control tokens such as <|im_start|> written in the text"}},
		Action: func(c *cli.Context) error {
			text := strings.Join(c.Args().Slice(), " ")
			if c.NArg() == 0 || text == "-" {
				b, err := readLimited(c.App.Reader, maxTextInput, "stdin")
				if err != nil {
					return err
				}
				text = string(b)
			}
			m, tok, err := loadTokenizer(c)
			if err != nil {
				return err
			}
			defer m.Close()
			ids := tok.Encode(text, c.Bool("special"))
			if ids == nil {
				ids = []int32{}
			}
			b, err := json.Marshal(ids)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.App.Writer, "%s\n", b)
			return err
		},
	}
}

func detokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "detokenize",
		Usage:     "print the text of token ids",
		ArgsUsage: "[ID,ID,... | -]",
		Description: "Ids are separated by commas or white space (the JSON array printed by tokenize works too);\n" +
			"with no ids, or -, they are read from stdin. The text's bytes are written as they are,\n" +
			"followed by a newline.\n\n" +
			"Examples:\n" +
			"   bankai-metal detokenize -m Bonsai-8B.gguf 9707,11,1879\n" +
			"   bankai-metal tokenize -m Bonsai-8B.gguf \"Hello\" | bankai-metal detokenize -m Bonsai-8B.gguf",
		Flags: []cli.Flag{modelFlag},
		Action: func(c *cli.Context) error {
			var ids []int32
			var err error
			if arg := strings.Join(c.Args().Slice(), " "); c.NArg() == 0 || arg == "-" {
				ids, err = readIDs("-", c.App.Reader, 0)
			} else {
				ids, err = parseIDs(arg, 0)
			}
			if err != nil {
				return err
			}
			m, tok, err := loadTokenizer(c)
			if err != nil {
				return err
			}
			defer m.Close()
			for i, id := range ids {
				if int(id) >= tok.Vocab() {
					return fmt.Errorf("token %d (position %d) out of the vocabulary [0,%d)", id, i, tok.Vocab())
				}
			}
			w := c.App.Writer
			if _, err := w.Write(tok.Decode(ids)); err != nil {
				return err
			}
			_, err = fmt.Fprintln(w)
			return err
		},
	}
}

// loadTokenizer loads --model and its tokenizer; the caller closes the model.
func loadTokenizer(c *cli.Context) (*runtime.Model, *tokenizer.Tokenizer, error) {
	m, err := loadModel(c)
	if err != nil {
		return nil, nil, err
	}
	tok, err := m.Tokenizer()
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, tok, nil
}
