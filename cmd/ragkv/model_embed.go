package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/model/encoder"
)

func init() { modelCmd.AddCommand(newModelEmbedCmd()) }

// model embed: sentence embeddings of texts with an in-engine encoder, to compare with
// another implementation (llama.cpp's llama-embedding prints the same L2-normalized
// vectors).
func newModelEmbedCmd() *cobra.Command {
	var (
		spec   string
		texts  []string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "embed",
		Short: "Sentence embeddings of --text values with an in-engine encoder (--model gguf:FILE[,pool=...] or FILE)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if spec == "" {
				return flagErr("model", "required (a GGUF or HF encoder, optionally gguf:FILE,pool=mean|cls|last,max=N,prefix=TEXT,query-prefix=TEXT,eos=true)")
			}
			if len(texts) == 0 {
				return flagErr("text", "at least one --text is required")
			}
			path, o, ok, err := encoder.ParseSpec(spec)
			if err != nil {
				return flagErr("model", "%v", err)
			}
			if !ok {
				path = spec
			}
			e, err := encoder.NewEmbedder(path, o)
			if err != nil {
				return flagErr("model", "%v", err)
			}
			defer e.Close()
			vs, err := e.Embed(cmd.Context(), texts)
			if err != nil {
				return err
			}
			toks := make([][]int, len(texts))
			for i, t := range texts {
				toks[i] = e.Tokens(t)
			}
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), map[string]any{"model": e.Name(), "dim": e.Dim(), "pooling": e.Pooling().String(),
					"tokens": toks, "embeddings": vs})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: dim %d, pooling %s\n", e.Name(), e.Dim(), e.Pooling())
			for i, v := range vs {
				n := min(8, len(v))
				fmt.Fprintf(w, "%d (%d tokens): %.6f ...\n", i, len(toks[i]), v[:n])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec, "model", "", "encoder: a GGUF (bert or a Llama-family decoder) or HF directory, optionally as gguf:FILE,pool=...,max=N,prefix=TEXT,query-prefix=TEXT,eos=true")
	f.StringArrayVar(&texts, "text", nil, "text to embed (repeatable)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
