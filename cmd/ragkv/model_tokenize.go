package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/model/chat"
	"github.com/ragkv/ragkv/model/gguf"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// model tokenize: a model's (or a tokenizer file's) token ids for a text, optionally as
// the user message of its chat template.
func init() { modelCmd.AddCommand(newModelTokenizeCmd()) }

type tokenizeResult struct {
	// Text is what was tokenized (with --chat: the rendered prompt).
	Text string `json:"text"`
	IDs  []int  `json:"ids"`
	// Pieces are the tokens' vocabulary texts (as HF convert_ids_to_tokens shows them:
	// byte-level BPE in its byte-to-unicode form, SentencePiece spaces as U+2581).
	Pieces []string `json:"pieces"`
	// Template says where the chat template came from (with --chat).
	Template string `json:"template,omitempty"`
}

func newModelTokenizeCmd() *cobra.Command {
	var modelPath, tokPath, text, system string
	var chatMode, bos, special, asJSON bool
	cmd := &cobra.Command{
		Use:   "tokenize",
		Short: "Token ids of a text for a model or tokenizer file (--chat: through its chat template)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (modelPath == "") == (tokPath == "") {
				return flagErr("model", "give --model or --tokenizer (one of them)")
			}
			if !cmd.Flags().Changed("text") {
				return flagErr("text", "required")
			}
			var tok tokenizer.Tokenizer
			var tmpl *chat.Template
			var err error
			if modelPath != "" {
				if _, err := os.Stat(modelPath); err != nil {
					return flagErr("model", "%v", err)
				}
				m, err := model.Open(modelPath, model.Options{Threads: 1})
				if err != nil {
					return flagErr("model", "%v", err)
				}
				defer m.Close()
				tok = m.Tok
				if chatMode {
					if tmpl, err = chat.Load(modelPath, tok); err != nil {
						return flagErr("model", "%v", err)
					}
				}
			} else {
				if _, err := os.Stat(tokPath); err != nil {
					return flagErr("tokenizer", "%v", err)
				}
				switch {
				case strings.HasSuffix(tokPath, ".json"):
					tok, err = tokenizer.LoadHF(tokPath)
				case gguf.HasMagic(tokPath):
					var f *gguf.File
					if f, err = gguf.Open(tokPath); err == nil {
						tok, err = tokenizer.FromGGUF(f)
						f.Close()
					}
				default:
					return flagErr("tokenizer", "%s: a llama2.c tokenizer needs its model's vocabulary size: use --model", tokPath)
				}
				if err != nil {
					return flagErr("tokenizer", "%v", err)
				}
				if chatMode {
					if tmpl, err = chat.LoadTokenizerFile(tokPath, tok); err != nil {
						return flagErr("tokenizer", "%v", err)
					}
				}
			}
			res := tokenizeResult{Text: text}
			switch {
			case chatMode:
				var msgs []chat.Message
				if system != "" {
					msgs = append(msgs, chat.Message{Role: "system", Content: system})
				}
				msgs = append(msgs, chat.Message{Role: "user", Content: text})
				l, err := tmpl.Split(msgs)
				if err != nil {
					return flagErr("text", "%v", err)
				}
				p, q := l.Tokens(tok)
				res.Text, res.IDs, res.Template = l.Text(), append(p, q...), tmpl.Origin
			case special:
				res.IDs = tokenizer.EncodeSpecial(tok, text, bos, false)
			default:
				res.IDs = tok.Encode(text, bos, false)
			}
			res.Pieces = make([]string, len(res.IDs))
			for i, id := range res.IDs {
				res.Pieces[i] = tokenizer.TokenText(tok, id)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, err := json.Marshal(res)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, string(b))
				return nil
			}
			if chatMode {
				fmt.Fprintf(out, "prompt (%s template): %q\n", res.Template, res.Text)
			}
			fmt.Fprintf(out, "%d tokens\n", len(res.IDs))
			for i, id := range res.IDs {
				fmt.Fprintf(out, "%6d  %q\n", id, res.Pieces[i])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "model file (its tokenizer and chat template)")
	f.StringVar(&tokPath, "tokenizer", "", "tokenizer file instead of a model: tokenizer.json (its tokenizer_config.json beside it for --chat) or GGUF")
	f.StringVar(&text, "text", "", "text to tokenize (with --chat: the user message)")
	f.BoolVar(&chatMode, "chat", false, "render --text as the user message of the chat template (plain format without one), special tokens parsed")
	f.StringVar(&system, "system", "", "system message (with --chat)")
	f.BoolVar(&bos, "bos", false, "put the BOS token first (without --chat)")
	f.BoolVar(&special, "special", false, "parse special-token texts such as <|im_start|> (without --chat)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object {text, ids, pieces}")
	return cmd
}
