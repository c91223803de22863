package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/certs"
	"github.com/ragkv/ragkv/internal/cliutil"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/server"
	"github.com/ragkv/ragkv/server/auth"
	"github.com/ragkv/ragkv/store"
)

// benchLoadResult is the JSON line of `ragkv bench load`.
type benchLoadResult struct {
	Clients    int     `json:"clients"`
	Identities int     `json:"identities"`
	Seconds    float64 `json:"seconds"`
	TLS        bool    `json:"tls"`
	Auth       bool    `json:"auth"`
	Requests   int64   `json:"requests"`
	// Errors counts failed well-formed requests (must be 0).
	Errors     int64              `json:"errors"`
	ErrorCodes map[string]int64   `json:"error_codes"`
	PerRPC     map[string]int64   `json:"requests_per_rpc"`
	P99Ms      map[string]float64 `json:"p99_ms"`
	P50Ms      map[string]float64 `json:"p50_ms"`
	ReqPerSec  float64            `json:"requests_per_sec"`
	// BudgetViolations counts Stats samples where a tier held more than its capacity.
	BudgetViolations int64 `json:"budget_violations"`
	// IsolationViolations counts probes of another identity's namespace that did not
	// answer NotFound (must be 0).
	IsolationViolations int64 `json:"isolation_violations"`
	// QuotaViolations is null: per-namespace quotas are not implemented.
	QuotaViolations *int64  `json:"quota_violations"`
	RSSWarmBytes    int64   `json:"rss_after_warmup_bytes"`
	RSSEndBytes     int64   `json:"rss_end_bytes"`
	RSSGrowthFrac   float64 `json:"rss_growth_frac"`
	// HeapWarmBytes/HeapEndBytes are the Go heap in use (after a GC) at the same
	// points: RSS also counts Badger's memory-mapped files.
	HeapWarmBytes  uint64  `json:"heap_after_warmup_bytes"`
	HeapEndBytes   uint64  `json:"heap_end_bytes"`
	HeapGrowthFrac float64 `json:"heap_growth_frac"`
	Note           string  `json:"note"`
}

func init() {
	var (
		clients, identities int
		duration            time.Duration
		memCap, diskCap     cacheBytes = 64 << 20, 256 << 20
		asJSON              bool
	)
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Load an in-process server (TLS, tokens, several identities and namespaces) with mixed put/get/lookup and cross-tenant probes",
		Long: `Starts a server in this process (memory + Badger tiers in a temporary directory,
TLS with a private CA, an auth file with --identities writers, one namespace each) and runs
--clients concurrent clients for --duration, each as one identity: 20% PutChunk (4 layers of
16 f16 tokens), 40% GetChunk of its own chunks, 30% Lookup, 10% Lookup in another identity's
namespace (must answer NotFound). A sampler checks that no tier exceeds its capacity. RSS is
read after a warm-up (a fifth of the run) and at the end (clients included).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clients < 1 || identities < 1 {
				return flagErr("clients", "--clients and --identities must be positive")
			}
			if duration <= 0 {
				return flagErr("duration", "must be positive")
			}
			res, err := runBenchLoad(cmd.Context(), clients, identities, duration, int64(memCap), int64(diskCap))
			if err != nil {
				return err
			}
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d requests in %.1fs (%.0f/s), %d errors, budget violations %d, isolation violations %d, rss growth %.3f\n",
				res.Requests, res.Seconds, res.ReqPerSec, res.Errors, res.BudgetViolations, res.IsolationViolations, res.RSSGrowthFrac)
			for _, k := range slices.Sorted(mapKeys(res.P99Ms)) {
				fmt.Fprintf(cmd.OutOrStdout(), "  %-10s %8d requests  p50 %.2f ms  p99 %.2f ms\n", k, res.PerRPC[k], res.P50Ms[k], res.P99Ms[k])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&clients, "clients", 64, "concurrent clients")
	f.IntVar(&identities, "identities", 8, "identities (one namespace each)")
	f.DurationVar(&duration, "duration", 30*time.Second, "how long to run")
	f.Var(&memCap, "mem-capacity", "memory tier capacity")
	f.Var(&diskCap, "disk-capacity", "disk tier capacity")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	benchCmd.AddCommand(cmd)
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// heapInUse is the Go heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// rssBytes is VmRSS of this process (0 if unknown).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

func runBenchLoad(ctx context.Context, clients, identities int, duration time.Duration, memCap, diskCap int64) (*benchLoadResult, error) {
	dir, err := os.MkdirTemp("", "ragkv-bench-load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)
	tf, err := certs.Write(filepath.Join(dir, "tls"), []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		return nil, err
	}
	tokens := make([]string, identities)
	var y strings.Builder
	y.WriteString("identities:\n  - name: bench-admin\n    role: admin\n    token_sha256: " + auth.HashToken("bench-admin-token") + "\n    namespaces: [\"*\"]\n")
	for i := range tokens {
		tokens[i] = fmt.Sprintf("bench-token-%d-%d", i, rand.Uint64())
		fmt.Fprintf(&y, "  - name: tenant-%d\n    role: writer\n    token_sha256: %s\n    namespaces: [\"tenant-%d\"]\n", i, auth.HashToken(tokens[i]), i)
	}
	authPath := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(authPath, []byte(y.String()), 0o600); err != nil {
		return nil, err
	}
	st, err := auth.Load(authPath)
	if err != nil {
		return nil, err
	}
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: filepath.Join(dir, "disk"), Logger: quiet})
	if err != nil {
		return nil, err
	}
	cache, err := chunkcache.New(ctx, chunkcache.Options{Tiers: []chunkcache.TierConfig{
		{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: memCap}},
		{Tier: disk, Eviction: eviction.Config{Capacity: diskCap}},
	}, Logger: quiet})
	if err != nil {
		return nil, err
	}
	defer cache.Close()
	scfg, err := server.ServerTLSConfig(server.TLSFiles{Cert: tf.Cert, Key: tf.Key})
	if err != nil {
		return nil, err
	}
	srv, err := server.New(server.WithChunkCache(cache), server.WithLogger(quiet), server.WithTLS(scfg), server.WithAuth(st, server.AuthOptions{}))
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop(context.Background())
	ccfg, err := server.ClientTLSConfig(server.TLSFiles{CA: tf.CA})
	if err != nil {
		return nil, err
	}
	dial := func(tok string) (*grpc.ClientConn, error) {
		return grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ccfg)),
			grpc.WithPerRPCCredentials(tokenCreds{token: tok, secure: true}))
	}
	adminConn, err := dial("bench-admin-token")
	if err != nil {
		return nil, err
	}
	defer adminConn.Close()
	admin := ragkvv1.NewChunkCacheClient(adminConn)

	type sample struct {
		rpc string
		d   time.Duration
	}
	var (
		mu        sync.Mutex
		lat       = map[string][]time.Duration{}
		errs      atomic.Int64
		isolation atomic.Int64
		budget    atomic.Int64
		firstErr  atomic.Value
		codesMu   sync.Mutex
		errCodes  = map[string]int64{}
	)
	countCode := func(rpc string, err error) {
		codesMu.Lock()
		errCodes[rpc+":"+status.Code(err).String()]++
		codesMu.Unlock()
	}
	runCtx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var wg sync.WaitGroup
	// Budget sampler.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			s, err := admin.Stats(runCtx, &ragkvv1.ChunkCacheStatsRequest{})
			if err != nil {
				continue
			}
			for _, tr := range s.GetTiers() {
				if tr.GetBytes() > tr.GetCapacityBytes() {
					budget.Add(1)
				}
			}
		}
	}()
	var rssWarm atomic.Int64
	var heapWarm atomic.Uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-runCtx.Done():
		case <-time.After(duration / 5):
			rssWarm.Store(rssBytes())
			heapWarm.Store(heapInUse())
		}
	}()
	start := time.Now()
	// Clients stop starting requests at stopAt; their calls carry no deadline, so that
	// requests in flight at the end complete instead of failing DeadlineExceeded.
	stopAt := start.Add(duration)
	callCtx, cancelCalls := context.WithCancel(ctx)
	defer cancelCalls()
	for c := 0; c < clients; c++ {
		id := c % identities
		conn, err := dial(tokens[id])
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		cl := ragkvv1.NewChunkCacheClient(conn)
		wg.Add(1)
		go func(c, id int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 42))
			ns := fmt.Sprintf("tenant-%d", id)
			other := fmt.Sprintf("tenant-%d", (id+1)%identities)
			var keys [][]byte
			local := map[string][]time.Duration{}
			seq := uint64(0)
			for time.Now().Before(stopAt) {
				op := r.IntN(10)
				t0 := time.Now()
				var name string
				var err error
				switch {
				case op < 2 || len(keys) == 0:
					name = "put"
					seq++
					var key []byte
					key, err = benchPut(callCtx, cl, ns, uint64(c)<<32|seq)
					if err == nil {
						keys = append(keys, key)
						if len(keys) > 256 {
							keys = keys[1:]
						}
					}
				case op < 6:
					name = "get"
					err = benchGet(callCtx, cl, ns, keys[r.IntN(len(keys))])
					if status.Code(err) == codes.NotFound {
						err = nil // evicted: a well-formed miss
					}
				case op < 9:
					name = "lookup"
					_, err = cl.Lookup(callCtx, &ragkvv1.ChunkLookupRequest{Namespace: ns, Keys: [][]byte{keys[r.IntN(len(keys))]}})
				default:
					name = "probe"
					_, perr := cl.Lookup(callCtx, &ragkvv1.ChunkLookupRequest{Namespace: other, Keys: [][]byte{keys[r.IntN(len(keys))]}})
					if identities > 1 && status.Code(perr) != codes.NotFound {
						isolation.Add(1)
						countCode("probe", perr)
					}
				}
				local[name] = append(local[name], time.Since(t0))
				if err != nil {
					errs.Add(1)
					countCode(name, err)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", name, err))
				}
			}
			mu.Lock()
			for k, v := range local {
				lat[k] = append(lat[k], v...)
			}
			mu.Unlock()
		}(c, id)
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := &benchLoadResult{Clients: clients, Identities: identities, Seconds: elapsed.Seconds(), TLS: true, Auth: true,
		Errors: errs.Load(), ErrorCodes: errCodes, PerRPC: map[string]int64{}, P99Ms: map[string]float64{}, P50Ms: map[string]float64{},
		BudgetViolations: budget.Load(), IsolationViolations: isolation.Load(),
		RSSWarmBytes: rssWarm.Load(), RSSEndBytes: rssBytes(), HeapWarmBytes: heapWarm.Load(), HeapEndBytes: heapInUse(),
		Note: "in-process server and clients; RSS covers both; quotas are not implemented (quota_violations null)"}
	for k, v := range lat {
		slices.Sort(v)
		res.PerRPC[k] = int64(len(v))
		res.Requests += int64(len(v))
		res.P99Ms[k] = float64(v[(len(v)*99)/100]) / 1e6
		res.P50Ms[k] = float64(v[len(v)/2]) / 1e6
	}
	res.ReqPerSec = float64(res.Requests) / elapsed.Seconds()
	if res.RSSWarmBytes > 0 {
		res.RSSGrowthFrac = float64(res.RSSEndBytes-res.RSSWarmBytes) / float64(res.RSSWarmBytes)
	}
	if res.HeapWarmBytes > 0 {
		res.HeapGrowthFrac = (float64(res.HeapEndBytes) - float64(res.HeapWarmBytes)) / float64(res.HeapWarmBytes)
	}
	if e := firstErr.Load(); e != nil {
		res.Note += "; first error: " + e.(string)
	}
	return res, nil
}

// benchPut puts a 4-layer f16 chunk of 16 tokens derived from seed.
func benchPut(ctx context.Context, cl ragkvv1.ChunkCacheClient, ns string, seed uint64) ([]byte, error) {
	const layers, heads, dim, tokens = 4, 2, 16, 16
	toks := make([]uint32, tokens)
	for i := range toks {
		toks[i] = uint32(seed*31+uint64(i)) & 0xffff
	}
	st, err := cl.PutChunk(ctx)
	if err != nil {
		return nil, err
	}
	h := &ragkvv1.ChunkPutHeader{Namespace: ns, TokenIds: toks, PositionBase: int64(seed & 0xffff),
		Model:  &ragkvv1.ChunkModelFingerprint{Architecture: "llama", WeightsDigest: "sha256:bench", TokenizerDigest: "sha256:bench"},
		Layout: &ragkvv1.ChunkKVLayout{Layers: layers, KvHeads: heads, HeadDim: dim, Dtype: ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16}}
	if err := st.Send(&ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Header{Header: h}}); err != nil {
		_, err2 := st.CloseAndRecv()
		return nil, fmt.Errorf("%w (%v)", err, err2)
	}
	n := tokens * heads * dim * 2
	for l := 0; l < layers; l++ {
		k, v := make([]byte, n), make([]byte, n)
		for i := 0; i+8 <= n; i += 8 {
			binary.LittleEndian.PutUint64(k[i:], seed^uint64(i))
			binary.LittleEndian.PutUint64(v[i:], seed+uint64(i))
		}
		if err := st.Send(&ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Layer{Layer: &ragkvv1.ChunkLayerFrame{Layer: uint32(l), K: k, V: v}}}); err != nil {
			_, err2 := st.CloseAndRecv()
			return nil, fmt.Errorf("%w (%v)", err, err2)
		}
	}
	res, err := st.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return res.GetKey(), nil
}

func benchGet(ctx context.Context, cl ragkvv1.ChunkCacheClient, ns string, key []byte) error {
	st, err := cl.GetChunk(ctx, &ragkvv1.GetChunkRequest{Chunk: &ragkvv1.ChunkRef{Namespace: ns, Ref: &ragkvv1.ChunkRef_Key{Key: key}}})
	if err != nil {
		return err
	}
	for {
		if _, err := st.Recv(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}
