package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/blend/blendeval"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/retrieval/beir"
)

// eval blend: quality of fused prefills against a full prefill (package blendeval).
func init() {
	var (
		modelPath, tokPath, storiesPath, ratios, craftCtx, deviation string
		kvDType, kvScore                                             string
		n, chunks, threads                                           int
		variants                                                     []string
		gradual                                                      float64
		asJSON, kvPreRoPE                                            bool
	)
	cmd := &cobra.Command{
		Use:   "blend",
		Short: "Continuation perplexity, KL and top-1 agreement of fused prefills (full, prefix, naive, cacheblend, cachecraft) vs a full prefill",
		Long: `For each story: tokens with BOS cut to the context; the last ⌊T/4⌋ tokens are the
continuation; the prompt is split into --chunks equal chunks whose caches are computed
alone at position 0 (only the first has the BOS); each method fuses them and the
continuation is scored with full attention over the fused prompt KV. A ratio r budgets
round(r × prompt tokens) recomputed tokens. Cache-Craft's statistics come from a
precompute-in-context pass over the story's chunks (--craft-context same) or with each
chunk after another story's chunks (--craft-context other).

--variant adds rows: method[:key=value,...] with keys dev=k|v|kv|random, gradual=G,
stale=1, check=L (cacheblend) and score=sum|first|max, global=1 (cachecraft).`,
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
			if storiesPath == "" {
				return flagErr("stories", "a JSONL file of {\"id\",\"text\"} lines is required")
			}
			if n < 0 {
				return flagErr("n", "must be ≥ 0 (0: every story), got %d", n)
			}
			if chunks < 1 {
				return flagErr("chunks", "must be ≥ 1, got %d", chunks)
			}
			rs, err := parseRatios(ratios)
			if err != nil {
				return flagErr("ratios", "%v", err)
			}
			bo, err := blendFlags(deviation, gradual)
			if err != nil {
				return err
			}
			o := blendeval.Options{Chunks: chunks, Ratios: rs, Context: blendeval.Context(craftCtx), Blend: bo, KVScore: kvScore, KVPreRoPE: kvPreRoPE}
			if kvDType != "" {
				f, err := chunkcache.ParseFormat(kvDType)
				if err != nil {
					return flagErr("kv-dtype", "%v", err)
				}
				o.KV = f
			}
			if kvPreRoPE && kvDType == "" {
				return flagErr("kv-prerope", "needs --kv-dtype (the stored format)")
			}
			if !slices.Contains(blendeval.KVScores, kvScore) {
				return flagErr("kv-score", "%q (want one of %s)", kvScore, strings.Join(blendeval.KVScores, ", "))
			}
			if err := o.Validate(); err != nil {
				return flagErr("craft-context", "%v", err)
			}
			for _, s := range variants {
				v, err := blendeval.ParseVariant(s)
				if err != nil {
					return flagErr("variant", "%v", err)
				}
				o.Variants = append(o.Variants, v)
			}
			m, err := model.Open(modelPath, model.Options{Tokenizer: tokPath, Threads: threads})
			if err != nil {
				return err
			}
			defer m.Close()
			stories, err := readStories(storiesPath, m, n)
			if err != nil {
				return err
			}
			prog := cliutil.NewProgress(os.Stderr, "eval blend", int64(len(stories)))
			last := 0
			o.Progress = func(done int) { prog.Add(int64(done - last)); last = done }
			rep, err := blendeval.Run(cmd.Context(), m, stories, o)
			prog.Finish()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printBlendTable(out, rep)
			if asJSON {
				return cliutil.PrintJSON(out, rep)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "model file")
	f.StringVar(&tokPath, "tokenizer", "", "tokenizer file (default: the model's own)")
	f.StringVar(&storiesPath, "stories", "", "JSONL stories ({\"id\",\"text\"} per line)")
	f.IntVar(&n, "n", 200, "stories to use (the first n; 0: all)")
	f.IntVar(&chunks, "chunks", 3, "chunks per prompt")
	f.StringVar(&ratios, "ratios", "0,0.05,0.1,0.15,0.2,0.3", "comma-separated recompute ratios for cacheblend and cachecraft")
	f.StringVar(&craftCtx, "craft-context", "same", "context of Cache-Craft's statistics: same (the story's own chunks) or other (another story's chunks)")
	f.StringVar(&deviation, "deviation", blend.DefaultDeviation, "CacheBlend token score of the default rows: k, v, kv or random")
	f.Float64Var(&gradual, "gradual", 0, "CacheBlend gradual filtering factor of the default rows (0: the default, 2; 1: off; up to 4)")
	f.StringArrayVar(&variants, "variant", nil, "extra rows: method[:key=value,...] (repeatable; see above)")
	f.IntVar(&threads, "threads", 0, "kernel threads (0: all cores)")
	f.StringVar(&kvDType, "kv-dtype", "", "store the chunk caches in this format first (f32, f16, bf16, int8, q4, q2, q2r, q4r, mixed[:bits=B,hi=4|8], options group=N, rot=1; empty: float32 as computed)")
	f.StringVar(&kvScore, "kv-score", "knorm", "importance signal of --kv-dtype mixed: "+strings.Join(blendeval.KVScores, ", "))
	f.BoolVar(&kvPreRoPE, "kv-prerope", false, "store K without its rotary embedding (quantized before RoPE; the loader rotates it to its position)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object as the last line")
	evalCmd.AddCommand(cmd)
}

// blendFlags checks the --deviation and --gradual flags of `eval blend` and `bench
// prefill` (each error names its flag) and returns the options they set.
func blendFlags(deviation string, gradual float64) (blend.Options, error) {
	for flag, o := range map[string]blend.Options{"deviation": {Deviation: deviation}, "gradual": {Gradual: gradual}} {
		o.EnsureDefaults()
		if err := o.Validate(); err != nil {
			return blend.Options{}, flagErr(flag, "%v", err)
		}
	}
	return blend.Options{Deviation: deviation, Gradual: gradual}, nil
}

func parseRatios(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || !(r >= 0 && r <= 1) {
			return nil, fmt.Errorf("%q is not a ratio in [0, 1]", f)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no ratios")
	}
	return out, nil
}

// readStories reads up to n (0: all) JSONL {"text"} lines, tokenized with BOS and cut to
// the model's context.
func readStories(path string, m *model.Model, n int) ([][]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, flagErr("stories", "%v", err)
	}
	defer f.Close()
	var out [][]int
	errEnough := errors.New("enough stories")
	err = beir.ScanJSONL(f, path, func(line int, b []byte) error {
		if n > 0 && len(out) == n {
			return errEnough
		}
		var s struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(b, &s); err != nil || s.Text == nil {
			return fmt.Errorf("%s:%d: want a JSON object with a \"text\" string", path, line)
		}
		toks := m.Tok.Encode(*s.Text, true, false)
		out = append(out, toks[:min(len(toks), m.Config.Ctx)])
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, flagErr("stories", "%v", err)
	}
	if len(out) == 0 {
		return nil, flagErr("stories", "%s: no stories", path)
	}
	return out, nil
}

func printBlendTable(w io.Writer, rep *blendeval.Report) {
	fmt.Fprintf(w, "%d stories (%d skipped), %d continuation tokens, %d chunks, cachecraft statistics context: %s\n",
		rep.Stories, rep.Skipped, rep.Tokens, rep.Chunks, rep.CraftContext)
	if k := rep.KV; k != nil {
		score := ""
		if k.Score != "" {
			score = ", score " + k.Score
		}
		fmt.Fprintf(w, "chunk KV stored as %s%s: %.3f bits/value (%.3f with scales), %.0f bytes/token (f16 %.0f)\n",
			k.Format, score, k.AvgBits, k.BitsPerValue, k.BytesPerToken, k.F16BytesPerToken)
	}
	fmt.Fprintf(w, "%-34s %6s %8s %9s %9s %7s %9s %8s %7s  %s\n", "method", "ratio", "ppl", "ppl_ratio", "kl", "top1", "recompute", "kl_rm", "flops", "chunk_fracs")
	for _, r := range rep.Methods {
		name := r.Method
		if r.Variant != "" {
			name = r.Variant
		}
		ratio := "-"
		if r.Ratio != nil {
			ratio = strconv.FormatFloat(*r.Ratio, 'g', 3, 64)
		}
		var fr []string
		for _, f := range r.ChunkFracs {
			fr = append(fr, fmt.Sprintf("%.3f", f))
		}
		fmt.Fprintf(w, "%-34s %6s %8.4f %9.5f %9.6f %7.4f %9.4f %8.3f %7.3f  %s\n", name, ratio, r.PPL, r.PPLRatio, r.KL, r.Top1,
			r.RecomputeFrac, r.KLRemoved, r.FLOPsFrac, strings.Join(fr, " "))
	}
}
