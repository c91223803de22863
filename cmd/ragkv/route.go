package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/internal/cliutil"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/route"
)

// routeResult is the JSON line of `ragkv route`.
type routeResult struct {
	Replica     string        `json:"replica"`
	Scores      []route.Score `json:"scores"`
	Chunks      []routeChunk  `json:"chunks"`
	Unreachable []string      `json:"unreachable,omitempty"`
}

type routeChunk struct {
	Key         string              `json:"key"`
	Kind        string              `json:"kind,omitempty"`
	Tokens      int                 `json:"tokens"`
	Replicas    map[string][]string `json:"replicas,omitempty"`
	SharedTiers []string            `json:"shared_tiers,omitempty"`
}

func init() {
	var (
		replicas, keys, chunks []string
		namespace, system      string
		timeout                time.Duration
		asJSON                 bool
	)
	cmd := &cobra.Command{
		Use:   "route",
		Short: "Pick the replica holding the most of a request's cached chunk tokens (asks each replica's Locate)",
		Long: `Asks every replica in --replicas (in parallel, Locate with local_only) where the
request's chunks are cached — chunks given by --key, or by --chunk text (keyed by the
replicas' model as Prefill keys them under --system, the system prefix included) — and
prints the replica holding the most of their tokens in its local tiers (ties: more
tokens in RAM, then the order of --replicas), with every replica's score. The
algorithm is package route's; replicas that do not answer are skipped and listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(replicas) == 0 {
				return flagErr("replicas", "give the replicas' gRPC addresses")
			}
			if len(keys) == 0 && len(chunks) == 0 {
				return flagErr("chunk", "give the request's chunks with --chunk TEXT or --key HEX")
			}
			req := &ragkvv1.LocateRequest{Namespace: namespace, System: system, ChunkTexts: chunks, LocalOnly: true}
			for _, k := range keys {
				b, err := chunkcache.ParseKey(k)
				if err != nil {
					return flagErr("key", "%v", err)
				}
				req.Keys = append(req.Keys, b[:])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := routeRequest(ctx, replicas, req)
			if err != nil {
				return err
			}
			if asJSON {
				return cliutil.PrintJSON(os.Stdout, res)
			}
			fmt.Printf("route to %s\n", res.Replica)
			for _, s := range res.Scores {
				fmt.Printf("  %-24s cached %6d tokens (%d chunks), in RAM %6d\n", s.Replica, s.CachedTokens, s.CachedChunks, s.FastTokens)
			}
			for _, u := range res.Unreachable {
				fmt.Printf("  unreachable: %s\n", u)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&replicas, "replicas", nil, "gRPC addresses of the candidate replicas, in order of preference (comma-separated)")
	f.StringArrayVar(&chunks, "chunk", nil, "a chunk's text (repeatable; needs replicas started with --model)")
	f.StringArrayVar(&keys, "key", nil, "a chunk's key in hex (repeatable)")
	f.StringVar(&namespace, "namespace", "", "chunk-cache namespace")
	f.StringVar(&system, "system", "", "system text of the prompt (part of the chunk keys)")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "deadline of the Locate calls")
	f.BoolVar(&asJSON, "json", false, "print the result as one JSON line")
	rootCmd.AddCommand(cmd)
}

// routeRequest asks every replica and ranks them.
func routeRequest(ctx context.Context, replicas []string, req *ragkvv1.LocateRequest) (*routeResult, error) {
	answers := make([]*ragkvv1.LocateResponse, len(replicas))
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for i, addr := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := dialServer(addr)
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close()
			answers[i], errs[i] = ragkvv1.NewChunkCacheClient(conn).Locate(ctx, req)
		}()
	}
	wg.Wait()
	res := &routeResult{}
	var candidates []string
	var chunks []route.Chunk
	for i, a := range answers {
		if errs[i] != nil {
			var ue usageError
			if errors.As(errs[i], &ue) {
				return nil, errs[i]
			}
			res.Unreachable = append(res.Unreachable, fmt.Sprintf("%s: %v", replicas[i], cacheRPCErr("Locate", errs[i])))
			continue
		}
		if chunks == nil {
			chunks = make([]route.Chunk, len(a.GetChunks()))
			res.Chunks = make([]routeChunk, len(a.GetChunks()))
			for j, c := range a.GetChunks() {
				res.Chunks[j] = routeChunk{Key: hex.EncodeToString(c.GetKey()), Kind: c.GetKind(), SharedTiers: c.GetSharedTiers()}
				chunks[j].Replicas = map[string][]string{}
				res.Chunks[j].Replicas = chunks[j].Replicas
			}
		}
		if len(a.GetChunks()) != len(chunks) {
			res.Unreachable = append(res.Unreachable, fmt.Sprintf("%s: answered %d chunks for %d", replicas[i], len(a.GetChunks()), len(chunks)))
			continue
		}
		candidates = append(candidates, replicas[i])
		for j, c := range a.GetChunks() {
			if hex.EncodeToString(c.GetKey()) != res.Chunks[j].Key {
				return nil, fmt.Errorf("route: replicas %s and %s key chunk %d differently (another model or tokenizer?)", candidates[0], replicas[i], j)
			}
			chunks[j].Tokens = max(chunks[j].Tokens, int(c.GetTokens()))
			res.Chunks[j].Tokens = chunks[j].Tokens
			for _, loc := range c.GetReplicas() {
				if len(loc.GetTiers()) > 0 {
					chunks[j].Replicas[replicas[i]] = loc.GetTiers() // a local-only answer is about this replica
				}
			}
		}
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("route: no replica answered: %s", strings.Join(res.Unreachable, "; "))
	}
	res.Scores = route.Rank(candidates, chunks)
	res.Replica = res.Scores[0].Replica
	return res, nil
}

// cache watch: stream a replica's chunk events.
func newCacheWatchCmd() *cobra.Command {
	var c cacheClientFlags
	var epoch, after uint64
	var count int
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Stream the server's chunk events (stored, evicted, promoted, demoted, deleted per tier)",
		Long: `Prints one line per chunk event (--json: one JSON object per line) from WatchChunks,
starting with RESET, a snapshot of every chunk in every local tier, and SNAPSHOT_DONE
(whose epoch and seq are the resume point), unless --epoch and --after-seq resume a
previous watch. Stops after --count events (0: never).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := dialServer(c.addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			st, err := ragkvv1.NewChunkCacheClient(conn).WatchChunks(cmd.Context(), &ragkvv1.WatchChunksRequest{Epoch: epoch, AfterSeq: after, Namespace: c.namespace})
			if err != nil {
				return cacheRPCErr("WatchChunks", err)
			}
			for n := 0; count == 0 || n < count; n++ {
				ev, err := st.Recv()
				if errors.Is(err, io.EOF) || cmd.Context().Err() != nil {
					return nil
				}
				if err != nil {
					return cacheRPCErr("WatchChunks", err)
				}
				if c.json {
					if err := cliutil.PrintJSON(os.Stdout, ev); err != nil {
						return err
					}
					continue
				}
				fmt.Printf("%d/%d %s %s %s%s %s tokens=%d bytes=%d\n", ev.GetEpoch(), ev.GetSeq(), strings.TrimPrefix(ev.GetType().String(), "CHUNK_EVENT_"),
					hex.EncodeToString(ev.GetKey()), ev.GetTier(), map[bool]string{true: " from " + ev.GetFromTier()}[ev.GetFromTier() != ""],
					ev.GetNamespace(), ev.GetTokens(), ev.GetBytes())
			}
			return nil
		},
	}
	c.register(cmd, true)
	f := cmd.Flags()
	f.Uint64Var(&epoch, "epoch", 0, "resume: the epoch of the last event applied")
	f.Uint64Var(&after, "after-seq", 0, "resume: the seq of the last event applied")
	f.IntVar(&count, "count", 0, "stop after this many events (0: never)")
	return cmd
}

func init() { cacheCmd.AddCommand(newCacheWatchCmd()) }
