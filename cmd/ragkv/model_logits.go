package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/internal/cpu"
	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model"
)

// model logits.
func init() {
	modelCmd.AddCommand(newModelLogitsCmd())
}

type modelLogitsResult struct {
	Model       string      `json:"model"`
	WeightType  string      `json:"weight_type"`
	CPUPath     string      `json:"cpu_path"`
	Activations string      `json:"activations"` // "int8" (per 32-block), "ggml" or "float" for quantized weights
	Tokens      int         `json:"tokens"`
	Positions   []int       `json:"positions"` // the position of each row of Logits
	Logits      [][]float32 `json:"logits"`
}

// parseTokenList parses comma-separated token ids for --tokens.
func parseTokenList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, flagErr("tokens", "no token ids (give a comma-separated list, e.g. 1,2,3)")
	}
	var out []int
	for i, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, flagErr("tokens", "item %d (%q) is not a token id", i, f)
		}
		out = append(out, v)
	}
	return out, nil
}

func newModelLogitsCmd() *cobra.Command {
	var (
		modelPath, tokPath, tokens string
		all, asJSON, ggmlAct       bool
		floatAct, int8Act          bool
		threads                    int
	)
	cmd := &cobra.Command{
		Use:   "logits",
		Short: "Print a model's next-token logits after a token sequence (the last position, or every one with --all)",
		Long: `Runs the token ids of --tokens through the model (one prefill, positions 0, 1, ...) and prints the
next-token logits after the last token, or after every token with --all. With --json the last
stdout line is one JSON object: model, weight_type, cpu_path, activations, tokens, positions and
logits (one row of vocabulary-size values per reported position).

Quantized weights multiply activations quantized exactly as llama.cpp's CPU backend does by
default, except on the neon path (q8_0 with fp16 scales, q8_K for the k-quants; --ggml-act
selects it everywhere); --int8-act
quantizes them per 32-element block with a float32 scale (the engine's former default);
--float-act multiplies by float activations.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" {
				return flagErr("model", "a model file is required")
			}
			if _, err := os.Stat(modelPath); err != nil {
				return flagErr("model", "%v", err)
			}
			if tokPath != "" {
				if _, err := os.Stat(tokPath); err != nil {
					return flagErr("tokenizer", "%v", err)
				}
			}
			ids, err := parseTokenList(tokens)
			if err != nil {
				return err
			}
			if n := btoi(ggmlAct) + btoi(floatAct) + btoi(int8Act); n > 1 {
				return flagErr("ggml-act", "--ggml-act, --int8-act and --float-act exclude each other")
			}
			if threads < 0 {
				return flagErr("threads", "must be ≥ 0 (0: all cores), got %d", threads)
			}
			m, err := model.Open(modelPath, model.Options{Tokenizer: tokPath, Threads: threads})
			if err != nil {
				return err
			}
			defer m.Close()
			c := &m.Config
			for i, id := range ids {
				if id < 0 || id >= c.Vocab {
					return flagErr("tokens", "token id %d (item %d) outside the model's vocabulary of %d", id, i, c.Vocab)
				}
			}
			if c.Ctx > 0 && len(ids) > c.Ctx {
				return flagErr("tokens", "%d tokens exceed the model's context of %d", len(ids), c.Ctx)
			}
			switch {
			case ggmlAct:
				m.Pool().SetActivations(kernels.ActGGML)
			case int8Act:
				m.Pool().SetActivations(kernels.ActInt8)
			case floatAct:
				m.Pool().SetActivations(kernels.ActFloat)
			}
			act := m.Pool().Activations().String()
			if m.WeightType.BlockElems() == 1 {
				act = "float"
			}
			pos := []int{len(ids) - 1}
			if all {
				pos = make([]int, len(ids))
				for i := range pos {
					pos[i] = i
				}
			}
			_, res, err := m.Prefill(cmd.Context(), ids, 0, 0, model.ExtendOptions{Logits: pos})
			if err != nil {
				return err
			}
			r := modelLogitsResult{Model: modelPath, WeightType: m.WeightType.String(), CPUPath: cpu.Active().String(),
				Activations: act, Tokens: len(ids), Positions: pos}
			for i := range pos {
				r.Logits = append(r.Logits, res.Logits[i*c.Vocab:(i+1)*c.Vocab])
			}
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), r)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "model %s (%s, %s activations, cpu %s), %d tokens\n", r.Model, r.WeightType, r.Activations, r.CPUPath, r.Tokens)
			for i, p := range pos {
				fmt.Fprintf(w, "position %d (token %d): top %s\n", p, ids[p], topLogits(r.Logits[i], 5))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "model file (GGUF, safetensors file or HF directory, llama2.c checkpoint)")
	f.StringVar(&tokPath, "tokenizer", "", "tokenizer file, for models without one of their own")
	f.StringVar(&tokens, "tokens", "", "comma-separated token ids, e.g. 1,2,3")
	f.BoolVar(&all, "all", false, "logits after every token, not only the last")
	f.BoolVar(&ggmlAct, "ggml-act", false, "quantize activations exactly as llama.cpp's CPU backend (quantized weights; the default)")
	f.BoolVar(&int8Act, "int8-act", false, "quantize activations per 32-element block with a float32 scale (quantized weights)")
	f.BoolVar(&floatAct, "float-act", false, "multiply quantized weights by float activations")
	f.IntVar(&threads, "threads", 0, "worker threads (0: all cores)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// topLogits formats the k largest logits as "id:value ...".
func topLogits(l []float32, k int) string {
	idx := make([]int, len(l))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case l[a] > l[b]:
			return -1
		case l[a] < l[b]:
			return 1
		}
		return 0
	})
	var parts []string
	for _, i := range idx[:min(k, len(idx))] {
		parts = append(parts, fmt.Sprintf("%d:%.4f", i, l[i]))
	}
	return strings.Join(parts, " ")
}
