package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/model"
)

// generate: text generation with the in-process engine, printing exactly what
// llama2.c's reference run program prints (prompt, then the continuation).
func init() {
	var (
		modelPath, tokPath, prompt string
		steps, threads             int
		temperature, topP          float64
		seed                       uint64
	)
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate text with a local model file (output as llama2.c's run prints it)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" {
				return flagErr("model", "a model file is required (or --addr to generate on a server)")
			}
			// The remote mode's flags that mean nothing locally (the local prompt is
			// computed in full: --method full only).
			for _, name := range []string{"namespace", "ratio", "timeout", "max-tokens"} {
				if cmd.Flags().Changed(name) {
					return flagErr(name, "applies only with --addr (generating on a server)")
				}
			}
			if meth, _ := cmd.Flags().GetString("method"); cmd.Flags().Changed("method") && meth != "full" {
				return flagErr("method", "%s applies only with --addr; a local generation is method full", meth)
			}
			parts, err := localPromptParts(cmd)
			if err != nil {
				return err
			}
			if parts != nil && prompt != "" {
				return flagErr("prompt", "give --prompt or the prompt's parts (--system, --chunk, --chunks-file, --query), not both")
			}
			if _, err := os.Stat(modelPath); err != nil {
				return flagErr("model", "%v", err)
			}
			if tokPath != "" {
				if _, err := os.Stat(tokPath); err != nil {
					return flagErr("tokenizer", "%v", err)
				}
			}
			if steps < 0 {
				return flagErr("steps", "must be ≥ 0 (0: the context length), got %d", steps)
			}
			if temperature < 0 {
				return flagErr("temperature", "must be ≥ 0, got %g", temperature)
			}
			if topP < 0 || topP > 1 {
				return flagErr("top-p", "must be in [0, 1], got %g", topP)
			}
			if threads < 0 {
				return flagErr("threads", "must be ≥ 0, got %d", threads)
			}
			m, err := model.Open(modelPath, model.Options{Tokenizer: tokPath, Threads: threads})
			if err != nil {
				return err
			}
			defer m.Close()
			if seed == 0 {
				seed = uint64(time.Now().Unix())
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			var toks []int
			if parts != nil {
				toks = parts.tokens(m)
			}
			st, err := m.Generate(cmd.Context(), w, prompt, model.GenerateOptions{
				Tokens:    toks,
				Steps:     steps,
				Sampler:   model.NewSampler(float32(temperature), float32(topP), seed),
				StopAtEOS: m.Format != "llama2c",
			})
			if ferr := w.Flush(); err == nil {
				err = ferr
			}
			if err != nil {
				return err
			}
			if st.GeneratedTokens > 0 && st.DecodeTime > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "achieved tok/s: %.1f (prefill %d tokens in %s)\n",
					float64(st.GeneratedTokens)/st.DecodeTime.Seconds(), st.PromptTokens, st.PrefillTime.Round(time.Microsecond))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "model file: GGUF, llama2.c checkpoint, safetensors file or HF directory")
	f.StringVar(&tokPath, "tokenizer", "", "tokenizer file (llama2.c .bin or tokenizer.json); default: the model's own")
	f.StringVar(&prompt, "prompt", "", "prompt text")
	f.IntVar(&steps, "steps", 256, "positions to run, including the prompt (0: the context length)")
	f.Float64Var(&temperature, "temperature", 1.0, "sampling temperature (0: greedy)")
	f.Float64Var(&topP, "top-p", 0.9, "nucleus sampling threshold (0 or 1: off)")
	f.Uint64Var(&seed, "seed", 0, "random seed (0: time of day)")
	f.IntVar(&threads, "threads", 0, "kernel threads (0: all cores)")
	addRemoteGenerate(cmd) // --addr: generate on a server (cmd/ragkv/blend.go)
	rootCmd.AddCommand(cmd)
}

// promptParts is a prompt given in parts, rendered as the fused prefill renders it: BOS
// + system text, each chunk tokenized alone (no BOS), then the query.
type promptParts struct {
	system, query string
	chunks        []string
}

func (p *promptParts) tokens(m *model.Model) []int {
	toks := m.Tok.Encode(p.system, true, false)
	for _, c := range p.chunks {
		toks = append(toks, m.Tok.Encode(c, false, false)...)
	}
	return append(toks, m.Tok.Encode(p.query, false, false)...)
}

// localPromptParts reads --system, --chunks-file, --chunk and --query for a local
// generation (nil when none is given); chunks by key need a server.
func localPromptParts(cmd *cobra.Command) (*promptParts, error) {
	rg := &remoteGenerate.p
	fl := cmd.Flags()
	if !fl.Changed("system") && !fl.Changed("chunk") && !fl.Changed("chunks-file") && !fl.Changed("query") {
		return nil, nil
	}
	p := &promptParts{system: rg.system, query: rg.query}
	if rg.chunksFile != "" {
		cs, err := readChunksFile("chunks-file", rg.chunksFile, false)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if c.Text == "" {
				return nil, flagErr("chunks-file", "chunk %s is given by key: stored chunks need --addr", c.ID)
			}
			p.chunks = append(p.chunks, c.Text)
		}
	}
	for _, c := range rg.chunks {
		if strings.HasPrefix(c, "key:") {
			return nil, flagErr("chunk", "%q: a stored chunk (key:) needs --addr", c)
		}
		if c == "" {
			return nil, flagErr("chunk", "empty chunk text")
		}
		p.chunks = append(p.chunks, c)
	}
	return p, nil
}
