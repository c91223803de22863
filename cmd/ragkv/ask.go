package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/internal/cliutil"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/server"
)

// ask: one question, answered by a server from a collection (retrieve → fused prefill
// → decode in one Generate call).
func init() { rootCmd.AddCommand(newAskCmd()) }

// askPassage is a retrieved passage in `ragkv ask --json`.
type askPassage struct {
	PassageID  string  `json:"passage_id"`
	DocID      string  `json:"doc_id"`
	Title      string  `json:"title,omitempty"`
	Score      float64 `json:"score"`
	ChunkID    string  `json:"chunk_id"`
	Key        string  `json:"key"`
	Source     string  `json:"source"`
	Tokens     int     `json:"tokens"`
	Recomputed int     `json:"recomputed"`
}

// askBreakdown is the fusion breakdown of `ragkv ask --json`.
type askBreakdown struct {
	Method           string         `json:"method"`
	Ratio            float64        `json:"ratio"`
	PromptTokens     int            `json:"prompt_tokens"`
	QueryTokens      int            `json:"query_tokens"`
	RecomputeFrac    float64        `json:"recompute_frac"`
	CacheHits        map[string]int `json:"cache_hits"`
	PassagesFromTier int            `json:"passages_from_tier"`
	PassagesComputed int            `json:"passages_computed"`
	TTFTSeconds      float64        `json:"ttft_seconds"`
	PrefillSeconds   float64        `json:"prefill_seconds"`
	DecodeSeconds    float64        `json:"decode_seconds"`
	Tokens           int            `json:"tokens"`
	Finish           string         `json:"finish"`
}

// askPrompt is the rendered prompt: the engine's prompt is BOS + system, then each
// chunk (tokenized alone, without BOS), then the query.
type askPrompt struct {
	System string   `json:"system"`
	Chunks []string `json:"chunks"`
	Query  string   `json:"query"`
}

type askResult struct {
	Answer    string       `json:"answer"`
	Passages  []askPassage `json:"passages"`
	Breakdown askBreakdown `json:"breakdown"`
	Prompt    askPrompt    `json:"prompt"`
}

func newAskCmd() *cobra.Command {
	var (
		addr, collection, query, method, mode, ns, system string
		k, maxTokens                                      int
		ratio, temperature, topP                          float64
		seed                                              uint64
		asJSON                                            bool
		timeout                                           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "ask --collection C -q QUESTION [--k 5] [--method M] [--ratio R] [--json]",
		Short: "Answer a question on a server: retrieve k passages, fuse their cached KVs, stream the answer and the breakdown",
		Long: `Sends one Generate call whose prompt has a retrieval source: the server retrieves
the --k passages of --collection best matching the question, fuses them in rank order
(each as its text + "\n\n", from the chunk cache where ` + "`ragkv precompute --collection`" + ` or an
earlier request stored it) after BOS + --system, with the question as the query, and
streams the answer. Then it prints per passage where its KV came from (a tier, or
computed now). With --json it prints only one JSON object: answer, passages, breakdown
(and the rendered prompt).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if collection == "" {
				return flagErr("collection", "required")
			}
			if strings.TrimSpace(query) == "" {
				return flagErr("query", "required (the question)")
			}
			if k < 1 || k > server.MaxRetrievalK {
				return flagErr("k", "want 1 to %d, got %d", server.MaxRetrievalK, k)
			}
			if _, err := blend.ParseMethod(method); err != nil {
				return flagErr("method", "%v", err)
			}
			if !(ratio >= 0 && ratio <= 1) {
				return flagErr("ratio", "want a number in [0, 1], got %g", ratio)
			}
			if cmd.Flags().Changed("ratio") && (method != string(blend.CacheBlend) && method != string(blend.CacheCraft)) {
				return flagErr("ratio", "applies to --method cacheblend or cachecraft only, not %s", method)
			}
			rm, err := retrieval.ParseMode(mode)
			if err != nil {
				return flagErr("mode", "want bm25, dense or hybrid, got %q", mode)
			}
			if maxTokens < 1 {
				return flagErr("max-tokens", "must be ≥ 1, got %d", maxTokens)
			}
			if temperature < 0 {
				return flagErr("temperature", "must be ≥ 0, got %g", temperature)
			}
			if topP < 0 || topP > 1 {
				return flagErr("top-p", "must be in [0, 1], got %g", topP)
			}
			src := &ragkvv1.RetrievalSource{Collection: collection, K: int32(k), Mode: server.ModeToProto(rm)}
			r := ratio
			req := &ragkvv1.GenerateRequest{MaxTokens: uint32(maxTokens), Temperature: float32(temperature), TopP: float32(topP), Seed: seed,
				Source: &ragkvv1.GenerateRequest_Prefill{Prefill: &ragkvv1.PrefillRequest{Namespace: ns, System: system, Query: query,
					Method: method, Ratio: &r, Retrieval: src}}}
			cl, done, err := dialInference(addr)
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var live io.Writer
			if !asJSON {
				live = cmd.OutOrStdout()
			}
			res, err := ask(ctx, cl, req, live)
			if err != nil {
				return err
			}
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), res)
			}
			printAskBreakdown(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:7431", "address of the ragkv server")
	f.StringVar(&collection, "collection", "", "collection to retrieve from")
	f.StringVarP(&query, "query", "q", "", "the question (search text and the prompt's query)")
	f.IntVar(&k, "k", server.DefaultRetrievalK, "passages to retrieve")
	f.StringVar(&mode, "mode", "", "retrieval mode: bm25, dense or hybrid (default: the collection's)")
	f.StringVar(&method, "method", "cacheblend", "full, prefix, naive, cacheblend or cachecraft")
	f.Float64Var(&ratio, "ratio", 0.15, "recompute ratio of cacheblend and cachecraft")
	f.StringVar(&ns, "namespace", "", "chunk cache namespace (default \"default\")")
	f.StringVar(&system, "system", "", "system text after the BOS token (as precompute --collection used it)")
	f.IntVar(&maxTokens, "max-tokens", 128, "tokens to generate at most")
	f.Float64Var(&temperature, "temperature", 0, "sampling temperature (0: greedy)")
	f.Float64Var(&topP, "top-p", 0, "nucleus sampling threshold (0 or 1: off)")
	f.Uint64Var(&seed, "seed", 1, "random seed of sampling")
	f.BoolVar(&asJSON, "json", false, "print one JSON object (answer, passages, breakdown) instead of streaming")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "deadline of the call")
	return cmd
}

// ask runs one Generate with a retrieval source, writing the answer's text to live as
// it streams (nil: not at all).
func ask(ctx context.Context, cl ragkvv1.InferenceClient, req *ragkvv1.GenerateRequest, live io.Writer) (*askResult, error) {
	t0 := time.Now()
	stream, err := cl.Generate(ctx, req)
	if err != nil {
		return nil, cacheRPCErr("ask", err)
	}
	var bw *bufio.Writer
	if live != nil {
		bw = bufio.NewWriter(live)
		defer bw.Flush()
	}
	res := &askResult{Passages: []askPassage{}}
	var answer strings.Builder
	write := func(s string) {
		answer.WriteString(s)
		if bw != nil && s != "" {
			bw.WriteString(s)
			bw.Flush()
		}
	}
	pr := req.GetPrefill()
	res.Prompt = askPrompt{System: pr.GetSystem(), Query: pr.GetQuery(), Chunks: []string{}}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, cacheRPCErr("ask", err)
		}
		switch {
		case msg.GetPrefill() != nil:
			p := msg.GetPrefill()
			b := p.GetBreakdown()
			bd := &res.Breakdown
			bd.TTFTSeconds = time.Since(t0).Seconds()
			bd.Method, bd.Ratio, bd.PromptTokens, bd.QueryTokens = b.GetMethod(), b.GetRatio(), int(b.GetTotalTokens()), int(b.GetQueryTokens())
			bd.RecomputeFrac, bd.PrefillSeconds = b.GetRecomputeFrac(), b.GetTotalSeconds()
			bd.CacheHits = map[string]int{}
			for s, n := range b.GetCacheHits() {
				bd.CacheHits[s] = int(n)
			}
			segs := b.GetSegments()
			for _, pp := range p.GetPassages() {
				ap := askPassage{PassageID: pp.GetPassageId(), DocID: pp.GetDocId(), Title: pp.GetTitle(), Score: pp.GetScore(),
					ChunkID: pp.GetChunkId(), Key: hex.EncodeToString(pp.GetKey()), Source: pp.GetSource(), Tokens: int(pp.GetTokens())}
				if i := int(pp.GetSegment()); i < len(segs) {
					ap.Recomputed = int(segs[i].GetRecomputed())
				}
				if ap.Source == "computed" || ap.Source == "none" {
					bd.PassagesComputed++
				} else {
					bd.PassagesFromTier++
				}
				res.Passages = append(res.Passages, ap)
				res.Prompt.Chunks = append(res.Prompt.Chunks, server.PassageChunkText(pp.GetText()))
			}
		case msg.GetToken() != nil:
			res.Breakdown.Tokens++
			write(msg.GetToken().GetText())
		case msg.GetDone() != nil:
			d := msg.GetDone()
			write(d.GetText())
			res.Breakdown.DecodeSeconds, res.Breakdown.Finish = d.GetDecodeSeconds(), d.GetReason()
		}
	}
	if bw != nil {
		bw.WriteString("\n")
	}
	res.Answer = answer.String()
	return res, nil
}

func printAskBreakdown(w io.Writer, r *askResult) {
	b := &r.Breakdown
	fmt.Fprintf(w, "--\n%s ratio %g: %d prompt tokens (%d query), recomputed %.3f, first token after %.3fs (prefill %.3fs), %d tokens (%s) in %.3fs\n",
		b.Method, b.Ratio, b.PromptTokens, b.QueryTokens, b.RecomputeFrac, b.TTFTSeconds, b.PrefillSeconds, b.Tokens, b.Finish, b.DecodeSeconds)
	var srcs []string
	for s, n := range b.CacheHits {
		srcs = append(srcs, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(srcs)
	fmt.Fprintf(w, "passages: %d from a tier, %d computed; segments from: %s\n", b.PassagesFromTier, b.PassagesComputed, strings.Join(srcs, ", "))
	for i, p := range r.Passages {
		fmt.Fprintf(w, "  %d %-20s score %7.3f  %4d tokens  recomputed %4d  %-8s key %s\n", i+1, p.PassageID, p.Score, p.Tokens, p.Recomputed, p.Source, p.Key[:min(16, len(p.Key))])
	}
}
