package main

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ragkv/ragkv/internal/shared"

	"github.com/spf13/pflag"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/server"
	"github.com/ragkv/ragkv/store"
)

// runFresh runs ragkv with args and then resets every flag of the command it ran to
// its default (cobra keeps flag values across runs in one process).
func runFresh(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := runRagkv(t, args...)
	c, _, ferr := rootCmd.Find(args)
	if ferr == nil {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				_ = sv.Replace(nil)
			} else {
				_ = f.Value.Set(f.DefValue)
			}
			f.Changed = false
		})
	}
	return out, err
}

// TestEvalBlendJSON: the eval prints the table and exactly one JSON object last, with
// the rows and fields the protocol defines; bad flags name the flag.
func TestEvalBlendJSON(t *testing.T) {
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	stories := filepath.Join(shared.Path(t), "data", "stories", "stories.dev.jsonl")
	out, err := runFresh(t, "eval", "blend", "--model", filepath.Join(dir, "stories260K.bin"), "--tokenizer", filepath.Join(dir, "tok512.bin"),
		"--stories", stories, "--n", "4", "--ratios", "0,0.3", "--variant", "cacheblend:dev=k,gradual=1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var rep struct {
		Methods []struct {
			Method        string    `json:"method"`
			Variant       string    `json:"variant"`
			Ratio         *float64  `json:"ratio"`
			PPL           float64   `json:"ppl"`
			PPLRatio      float64   `json:"ppl_ratio"`
			KL            *float64  `json:"kl"`
			Top1          float64   `json:"top1"`
			RecomputeFrac *float64  `json:"recompute_frac"`
			ChunkFracs    []float64 `json:"chunk_fracs"`
		} `json:"methods"`
		Stories int `json:"stories"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("last line is not the JSON object: %v\n%s", err, out)
	}
	if rep.Stories != 4 || len(rep.Methods) != 3+2*2+2 {
		t.Fatalf("%d stories, %d rows", rep.Stories, len(rep.Methods))
	}
	seen := map[string]int{}
	for _, r := range rep.Methods {
		seen[r.Method]++
		if r.PPL <= 1 || r.KL == nil || r.RecomputeFrac == nil || r.Top1 <= 0.5 {
			t.Fatalf("row %+v", r)
		}
		if r.Method == "cachecraft" && len(r.ChunkFracs) != 3 {
			t.Fatalf("cachecraft row without chunk fractions: %+v", r)
		}
	}
	if seen["full"] != 1 || seen["prefix"] != 1 || seen["naive"] != 1 || seen["cacheblend"] != 4 || seen["cachecraft"] != 2 {
		t.Fatalf("rows %v", seen)
	}
	// --kv-dtype stores the chunks in that format first and reports its cost.
	out, err = runFresh(t, "eval", "blend", "--model", filepath.Join(dir, "stories260K.bin"), "--tokenizer", filepath.Join(dir, "tok512.bin"),
		"--stories", stories, "--n", "2", "--ratios", "0.15", "--kv-dtype", "mixed:bits=2.5", "--kv-score", "craft-inv", "--kv-prerope", "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	var kvRep struct {
		KV struct {
			Format        string  `json:"format"`
			Score         string  `json:"score"`
			PreRoPE       bool    `json:"pre_rope"`
			AvgBits       float64 `json:"avg_bits"`
			BytesPerToken float64 `json:"bytes_per_token"`
		} `json:"kv"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &kvRep); err != nil {
		t.Fatal(err)
	}
	if k := kvRep.KV; k.Format != "mixed:group=32,bits=2.5,hi=4" || k.Score != "craft-inv" || !k.PreRoPE || !(k.AvgBits > 2 && k.AvgBits <= 2.5) || k.BytesPerToken <= 0 {
		t.Fatalf("kv report %+v", k)
	}
	if !strings.Contains(out, "chunk KV stored as mixed") {
		t.Fatalf("table lacks the storage line:\n%s", out)
	}
	if _, err := runFresh(t, "eval", "blend", "--model", filepath.Join(dir, "stories260K.bin"), "--stories", stories, "--kv-prerope"); err == nil || !strings.Contains(err.Error(), "--kv-prerope") {
		t.Fatalf("--kv-prerope without --kv-dtype: %v", err)
	}
	for _, c := range []struct{ flag, val string }{{"ratios", "0.1,x"}, {"chunks", "0"}, {"variant", "cacheblend:dev=zz"}, {"craft-context", "elsewhere"}, {"kv-dtype", "q3"}, {"kv-score", "loud"}} {
		_, err := runFresh(t, "eval", "blend", "--model", filepath.Join(dir, "stories260K.bin"), "--stories", stories, "--"+c.flag, c.val)
		if err == nil || !strings.Contains(err.Error(), "--"+c.flag) {
			t.Fatalf("--%s %s: %v", c.flag, c.val, err)
		}
	}
}

// TestPrecomputePrefillGenerateCLI: `ragkv precompute` fills a Badger data directory
// (resumably), a server over it answers `ragkv prefill --addr` from the cache and
// `ragkv generate --addr` streams text.
func TestPrecomputePrefillGenerateCLI(t *testing.T) {
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	modelPath, tokPath := filepath.Join(dir, "stories260K.bin"), filepath.Join(dir, "tok512.bin")
	work := t.TempDir()
	chunks := filepath.Join(work, "chunks.jsonl")
	texts := []string{"Once upon a time, there was a little girl named Lily.", "She had a big red ball.", "One day, she lost it in the park."}
	var b strings.Builder
	for i, tx := range texts {
		l, _ := json.Marshal(map[string]string{"id": string(rune('a' + i)), "text": tx})
		b.Write(append(l, '\n'))
	}
	if err := os.WriteFile(chunks, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(work, "keys.jsonl")
	data := filepath.Join(work, "data")
	for round, want := range []string{`"computed":3`, `"skipped":3`} {
		out, err := runFresh(t, "precompute", "--chunks", chunks, "--model", modelPath, "--tokenizer", tokPath, "--data-dir", data,
			"--keys-out", keys, "--sync-writes=false", "--json")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, want) {
			t.Fatalf("round %d: %s", round, out)
		}
	}
	kb, err := os.ReadFile(keys)
	if err != nil || strings.Count(string(kb), "\n") != 3 {
		t.Fatalf("keys file: %q %v", kb, err)
	}
	var first struct{ Key string }
	_ = json.Unmarshal([]byte(strings.Split(string(kb), "\n")[0]), &first)
	if _, err := runFresh(t, "precompute", "--chunks", chunks); err == nil || !strings.Contains(err.Error(), "--model") {
		t.Fatalf("neither --model nor --addr: %v", err)
	}

	// A server over the same directory.
	ctx := context.Background()
	m, err := model.Open(modelPath, model.Options{Tokenizer: tokPath, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: filepath.Join(data, "chunkcache"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	keyer, err := chunkcache.OpenKeyer(filepath.Join(data, chunkcache.SaltSecretFile)) // the one precompute created
	if err != nil {
		t.Fatal(err)
	}
	cache, err := chunkcache.New(ctx, chunkcache.Options{Tiers: []chunkcache.TierConfig{
		{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 64 << 20}},
		{Tier: disk, Eviction: eviction.Config{Capacity: 1 << 30}, WriteThrough: true}}, Keyer: keyer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	st, err := blend.NewStore(m, cache, blend.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := blend.NewEngine(st, blend.EngineOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.WithInference(eng), server.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		srv.Stop(sctx)
	}()
	addr := lis.Addr().String()

	out, err := runFresh(t, "prefill", "--addr", addr, "--chunk", "key:"+first.Key, "--chunk", texts[1], "--chunk", texts[2],
		"--query", "Where is the ball?", "--method", "cachecraft", "--keep-handle", "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var resp struct {
		Handle    string `json:"handle"`
		Breakdown struct {
			Segments []struct {
				Key    string `json:"key"`
				Source string `json:"source"`
				Exact  bool   `json:"exact"`
			} `json:"segments"`
			CacheHits map[string]int `json:"cache_hits"`
		} `json:"breakdown"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &resp); err != nil {
		t.Fatal(err)
	}
	sg := resp.Breakdown.Segments
	if resp.Handle == "" || len(sg) != 4 || sg[1].Key != first.Key || !sg[1].Exact || sg[2].Source != "disk" || resp.Breakdown.CacheHits["computed"] != 0 {
		t.Fatalf("prefill response %s", lines[len(lines)-1])
	}
	if _, err := runFresh(t, "prefill", "--addr", addr, "--chunk", "key:zz"); err == nil || !strings.Contains(err.Error(), "--chunk") {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := runFresh(t, "prefill", "--addr", addr, "--method", "best"); err == nil || !strings.Contains(err.Error(), "--method") {
		t.Fatalf("bad method: %v", err)
	}

	out, err = runFresh(t, "generate", "--addr", addr, "--chunk", texts[0], "--chunk", texts[1], "--query", "Lily",
		"--temperature", "0", "--max-tokens", "20")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	if !sc.Scan() || len(strings.TrimSpace(sc.Text())) < 10 {
		t.Fatalf("generate printed %q", out)
	}

	// A prefill without --keep-handle keeps nothing.
	out, err = runFresh(t, "prefill", "--addr", addr, "--chunk", texts[0], "--query", "Lily", "--json")
	if err != nil || strings.Contains(out, `"handle"`) {
		t.Fatalf("prefill without --keep-handle: %v\n%s", err, out)
	}
	// generate --handle continues a prefill of the same prompt: the same greedy text.
	out, err = runFresh(t, "prefill", "--addr", addr, "--chunk", texts[0], "--chunk", texts[1], "--query", "Lily", "--keep-handle", "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &resp); err != nil || resp.Handle == "" {
		t.Fatalf("prefill for a handle: %v %s", err, out)
	}
	fromHandle, err := runFresh(t, "generate", "--addr", addr, "--handle", resp.Handle, "--keep-handle", "--temperature", "0", "--max-tokens", "20")
	if err != nil {
		t.Fatal(err)
	}
	if fromHandle != out0(t, addr, texts) {
		t.Fatalf("generate --handle printed %q, the same prompt generated %q", fromHandle, out0(t, addr, texts))
	}
	again, err := runFresh(t, "generate", "--addr", addr, "--handle", resp.Handle, "--temperature", "0", "--max-tokens", "20")
	if err != nil || again != fromHandle {
		t.Fatalf("kept handle, second generation: %q %v", again, err)
	}
	if _, err := runFresh(t, "generate", "--addr", addr, "--handle", resp.Handle, "--max-tokens", "5"); err == nil || !strings.Contains(err.Error(), "NotFound") && !strings.Contains(err.Error(), "handle") {
		t.Fatalf("consumed handle reused: %v", err)
	}
	for _, bad := range []struct {
		flag string
		args []string
	}{
		{"--chunk", []string{"--addr", addr, "--handle", resp.Handle, "--chunk", "x"}},
		{"--method", []string{"--addr", addr, "--handle", resp.Handle, "--method", "full"}},
		{"--keep-handle", []string{"--addr", addr, "--keep-handle", "--chunk", "x"}},
		{"--handle", []string{"--handle", resp.Handle, "--model", modelPath}},
	} {
		if _, err := runFresh(t, append([]string{"generate"}, bad.args...)...); err == nil || !strings.Contains(err.Error(), bad.flag) {
			t.Fatalf("generate %v: want an error naming %s, got %v", bad.args, bad.flag, err)
		}
	}
}

// out0 generates greedily from the fused prompt texts[0], texts[1], query "Lily".
func out0(t *testing.T, addr string, texts []string) string {
	t.Helper()
	out, err := runFresh(t, "generate", "--addr", addr, "--chunk", texts[0], "--chunk", texts[1], "--query", "Lily",
		"--temperature", "0", "--max-tokens", "20")
	if err != nil {
		t.Fatal(err)
	}
	return out
}
