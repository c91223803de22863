package console

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

var quiet = slog.New(slog.DiscardHandler)

var seed uint64 // distinct chunks on every putChunks call

func testCache(t *testing.T) *chunkcache.Cache {
	t.Helper()
	ctx := context.Background()
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: t.TempDir(), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := chunkcache.New(ctx, chunkcache.Options{
		Tiers: []chunkcache.TierConfig{
			{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 64 << 10}},
			{Tier: disk, Eviction: eviction.Config{Capacity: 1 << 20}, WriteThrough: true},
		},
		Namespaces: []string{"default", "tenant"}, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// putChunks stores n chunks of a few KiB and reads some back, so every counter moves.
func putChunks(t *testing.T, c *chunkcache.Cache, n int) []chunkcache.Key {
	t.Helper()
	ctx := context.Background()
	seed++
	r := rand.New(rand.NewPCG(seed, 2))
	var keys []chunkcache.Key
	for i := 0; i < n; i++ {
		l := chunkcache.Layout{Layers: 2, KVHeads: 2, HeadDim: 8, DType: chunkcache.F16}
		toks := make([]uint32, 16+i%32)
		for j := range toks {
			toks[j] = uint32(i*1000 + j + int(r.IntN(1<<20))*1_000_000)
		}
		elems := l.Elems(len(toks))
		var ks, vs [][]float32
		for j := 0; j < l.Layers; j++ {
			k, v := make([]float32, elems), make([]float32, elems)
			for x := range k {
				k[x], v[x] = float32(r.NormFloat64()), float32(r.NormFloat64())
			}
			ks, vs = append(ks, k), append(vs, v)
		}
		ns := "default"
		if i%4 == 0 {
			ns = "tenant"
		}
		res, err := c.PutFloat32(ctx, chunkcache.PutSpec{Namespace: ns, Model: chunkcache.Fingerprint{Architecture: "llama", WeightsDigest: "sha256:t"},
			Tokens: toks, Layout: l, Cost: float64(len(toks))}, ks, vs)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, res.Key)
		if i%3 == 0 {
			rd, err := c.Open(ctx, ns, res.Key)
			if err != nil {
				t.Fatal(err)
			}
			rd.Close()
		}
	}
	return keys
}

func newConsole(t *testing.T, o Options) *Console {
	t.Helper()
	o.Logger = quiet
	con, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { con.Close() })
	return con
}

func TestSnapshotMatchesStats(t *testing.T) {
	c := testCache(t)
	putChunks(t, c, 60)
	reg := prometheus.NewRegistry()
	con := newConsole(t, Options{Cache: c, Gatherer: reg})
	srv := httptest.NewServer(con.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/api/v1/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var snap Snapshot
	if err := json.NewDecoder(res.Body).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if len(snap.Tiers) != 2 || snap.Chunks != st.Chunks {
		t.Fatalf("snapshot %d tiers, %d chunks; stats %d chunks", len(snap.Tiers), snap.Chunks, st.Chunks)
	}
	for i, tv := range snap.Tiers {
		if tv.TierStats != st.Tiers[i] {
			t.Errorf("tier %s: snapshot %+v, Stats %+v", tv.Name, tv.TierStats, st.Tiers[i])
		}
		if tv.Policy != "lru" || tv.Admission != "none" {
			t.Errorf("tier %s policy %s/%s", tv.Name, tv.Policy, tv.Admission)
		}
	}
	if snap.Tiers[0].Evictions == 0 || snap.Tiers[0].Hits == 0 {
		t.Fatalf("the load did not evict or hit: %+v", snap.Tiers[0])
	}
	if len(snap.Usage.Namespaces) != 2 || len(snap.Usage.Largest) != 10 || len(snap.Usage.Hottest) == 0 {
		t.Fatalf("usage %+v", snap.Usage)
	}
	if len(snap.NamespaceStats) != len(st.NamespaceStats) || len(snap.NamespaceStats) == 0 || snap.NamespaceStats[0].Name != st.NamespaceStats[0].Name ||
		len(snap.NamespaceStats[0].Tiers) != 2 {
		t.Fatalf("namespace stats: snapshot %+v, Stats %+v", snap.NamespaceStats, st.NamespaceStats)
	}
	if snap.Engine.Available || snap.Retrieval {
		t.Fatalf("no engine and no retrieval were given: %+v", snap.Engine)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"} {
		if res.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
}

func TestPageAndAssets(t *testing.T) {
	con := newConsole(t, Options{Cache: testCache(t)})
	srv := httptest.NewServer(con.Handler())
	defer srv.Close()
	for path, want := range map[string]string{"/": "console.js", "/console.js": "api/v1/snapshot", "/console.css": "--accent"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, %d bytes, want %q in it", path, res.StatusCode, len(b), want)
		}
	}
	// The page uses relative URLs only (works behind TLS and path prefixes).
	res, _ := http.Get(srv.URL + "/console.js")
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	js := strings.ReplaceAll(string(b), "'http://www.w3.org/2000/svg'", "")
	if strings.Contains(js, "http://") || strings.Contains(js, "https://") || strings.Contains(js, "('/") || strings.Contains(js, "location.origin") {
		t.Error("console.js has an absolute URL")
	}
	if res, _ := http.Get(srv.URL + "/nope"); res.StatusCode != 404 {
		t.Errorf("unknown path: %d", res.StatusCode)
	}
}

func TestHistoryRing(t *testing.T) {
	c := testCache(t)
	con := newConsole(t, Options{Cache: c, Interval: 10 * time.Millisecond, History: 50 * time.Millisecond})
	var times []int64
	for i := 0; i < 8; i++ {
		s := con.Sample()
		times = append(times, s.UnixMilli)
		putChunks(t, c, 1)
		time.Sleep(2 * time.Millisecond)
	}
	h := con.History()
	if len(h) != 5 {
		t.Fatalf("%d samples kept, want 5", len(h))
	}
	for i := range h {
		if h[i].UnixMilli != times[3+i] {
			t.Fatalf("sample %d at %d, want %d (oldest first)", i, h[i].UnixMilli, times[3+i])
		}
		if i > 0 && h[i].Tiers[1].Admissions <= h[i-1].Tiers[1].Admissions {
			t.Fatalf("samples do not follow the counters: %+v then %+v", h[i-1].Tiers[1], h[i].Tiers[1])
		}
	}
	// The sampler goroutine samples on its own and stops on Close.
	con2 := newConsole(t, Options{Cache: c, Interval: 10 * time.Millisecond, History: time.Second})
	con2.Start()
	deadline := time.Now().Add(5 * time.Second)
	for len(con2.History()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := con2.Close(); err != nil {
		t.Fatal(err)
	}
	n := len(con2.History())
	if n < 3 {
		t.Fatalf("sampler took %d samples in 5 s", n)
	}
	time.Sleep(30 * time.Millisecond)
	if len(con2.History()) != n {
		t.Fatal("sampler still running after Close")
	}
	if _, err := New(Options{Cache: c, Interval: time.Millisecond}); err == nil {
		t.Error("1ms interval accepted")
	}
	if _, err := New(Options{}); err == nil {
		t.Error("no cache accepted")
	}
}

func post(t *testing.T, url string, body string, hdr map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res, m
}

func TestControlsRefuseCrossSiteRequests(t *testing.T) {
	c := testCache(t)
	con := newConsole(t, Options{Cache: c})
	srv := httptest.NewServer(con.Handler())
	defer srv.Close()
	u := srv.URL + "/api/v1/policy"
	good := map[string]string{"Content-Type": "application/json", ControlHeader: "1"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	body := `{"tier":"memory","policy":"sieve"}`
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		code int
	}{
		{"no custom header (a plain cross-site form or fetch)", with(ControlHeader, ""), http.StatusForbidden},
		{"form content type", with("Content-Type", "application/x-www-form-urlencoded"), http.StatusUnsupportedMediaType},
		{"text/plain (the CORS-simple type)", with("Content-Type", "text/plain"), http.StatusUnsupportedMediaType},
		{"foreign origin", with("Origin", "https://evil.example"), http.StatusForbidden},
		{"cross-site fetch metadata", with("Sec-Fetch-Site", "cross-site"), http.StatusForbidden},
	} {
		res, m := post(t, u, body, tc.hdr)
		if res.StatusCode != tc.code || m["error"] == nil {
			t.Errorf("%s: %d %v, want %d with an error", tc.name, res.StatusCode, m, tc.code)
		}
		if res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: a CORS allow header was sent", tc.name)
		}
	}
	if res, err := http.Get(u); err != nil || res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET on a control: %v %v", res.StatusCode, err)
	}
	if p := c.Policy()[0]; p.Policy != "lru" {
		t.Fatalf("a refused request changed the policy to %s", p.Policy)
	}
	// Same-origin requests (what the page sends) go through.
	res, m := post(t, u, body, with("Origin", srv.URL))
	if res.StatusCode != 200 || c.Policy()[0].Policy != "sieve" {
		t.Fatalf("same-origin policy change: %d %v, policy %s", res.StatusCode, m, c.Policy()[0].Policy)
	}
	res, _ = post(t, u, `{"tier":"memory","admission":"tinylfu","capacity_bytes":32768}`, with("Sec-Fetch-Site", "same-origin"))
	if p := c.Policy()[0]; res.StatusCode != 200 || p.Admission != "tinylfu" || p.Capacity != 32768 {
		t.Fatalf("admission and capacity: %d %+v", res.StatusCode, p)
	}
	for _, bad := range []struct {
		body string
		code int
	}{
		{`{"tier":"memory","policy":"mru"}`, 400},
		{`{"tier":"tape","policy":"lru"}`, 400},
		{`{"tier":"memory"}`, 400},
		{`{"tier":"memory","policy":"lru","colour":1}`, 400},
		{`{"tier":"memory","policy":"lru"} {}`, 400},
		{`{"tier":"memory","capacity_bytes":0}`, 400},
		{`not json`, 400},
		{`{"tier":"memory","policy":"` + strings.Repeat("x", maxBody) + `"}`, 400},
	} {
		if res, m := post(t, u, bad.body, good); res.StatusCode != bad.code || m["error"] == nil {
			t.Errorf("body %.60q: %d %v, want %d", bad.body, res.StatusCode, m, bad.code)
		}
	}
}

func TestPinControl(t *testing.T) {
	c := testCache(t)
	keys := putChunks(t, c, 8)
	con := newConsole(t, Options{Cache: c})
	srv := httptest.NewServer(con.Handler())
	defer srv.Close()
	u := srv.URL + "/api/v1/pin"
	hdr := map[string]string{"Content-Type": "application/json; charset=utf-8", ControlHeader: "1"}
	k := keys[1] // namespace "default"
	res, m := post(t, u, `{"namespace":"default","key":"`+k.String()+`","pin":"hard"}`, hdr)
	if res.StatusCode != 200 || m["pin"] != "hard" {
		t.Fatalf("pin: %d %v", res.StatusCode, m)
	}
	l, err := c.Lookup(context.Background(), "default", []chunkcache.Key{k})
	if err != nil || l[0].Pin != chunkcache.HardPin {
		t.Fatalf("lookup after pin: %+v %v", l, err)
	}
	if u := c.Usage(5); u.PinnedChunks != 1 || u.Pinned[0].Key != k.String() {
		t.Fatalf("usage after pin: %+v", u.Pinned)
	}
	if res, _ := post(t, u, `{"namespace":"default","key":"`+k.String()+`","pin":"unpinned"}`, hdr); res.StatusCode != 200 {
		t.Fatalf("unpin: %d", res.StatusCode)
	}
	if l, _ := c.Lookup(context.Background(), "default", []chunkcache.Key{k}); l[0].Pin != chunkcache.Unpinned {
		t.Fatalf("still pinned: %+v", l)
	}
	var zero chunkcache.Key
	for _, bad := range []struct {
		body string
		code int
	}{
		{`{"namespace":"default","key":"` + zero.String() + `","pin":"hard"}`, 404},
		{`{"namespace":"nobody","key":"` + k.String() + `","pin":"hard"}`, 404},
		{`{"namespace":"default","key":"abc","pin":"hard"}`, 400},
		{`{"namespace":"default","key":"` + k.String() + `","pin":"forever"}`, 400},
	} {
		if res, m := post(t, u, bad.body, hdr); res.StatusCode != bad.code {
			t.Errorf("%s: %d %v, want %d", bad.body, res.StatusCode, m, bad.code)
		}
	}
}

func TestEngineView(t *testing.T) {
	old := EngineCounters{Available: true, Prefills: 10, PrefillSeconds: 5, TTFTSeconds: 6, ReusedTokens: 800, RecomputedTokens: 200,
		QueryTokens: 100, GeneratedTokens: 50, DecodeSeconds: 1}
	cur := EngineCounters{Available: true, Prefills: 20, PrefillSeconds: 7, TTFTSeconds: 8, ReusedTokens: 1700, RecomputedTokens: 300,
		QueryTokens: 200, GeneratedTokens: 250, DecodeSeconds: 3}
	v := engineView(cur, old, 10, true)
	// 1,100 prompt tokens in 2 s of prefill; 200 tokens in 2 s of decode; 900 of 1,000
	// chunk tokens reused; 10 prefills in 10 s with 2 s of TTFT.
	if v.PrefillTokensPerSecond != 550 || v.DecodeTokensPerSecond != 100 || v.ReuseFraction != 0.9 ||
		v.PrefillsPerSecond != 1 || v.MeanTTFTSeconds != 0.2 {
		t.Fatalf("%+v", v)
	}
	if v := engineView(cur, old, 0, true); v.PrefillTokensPerSecond != 0 {
		t.Fatal("rates without a window")
	}
}

func TestReadEngineFromRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	tok := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragkv_blend_prompt_tokens_total"}, []string{"kind"})
	pre := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragkv_blend_prefills_total"}, []string{"method"})
	sec := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ragkv_blend_prefill_seconds"}, []string{"method"})
	for _, c := range []prometheus.Collector{tok, pre, sec} {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	tok.WithLabelValues("reused").Add(30)
	tok.WithLabelValues("recomputed").Add(10)
	tok.WithLabelValues("query").Add(5)
	pre.WithLabelValues("cacheblend").Add(2)
	pre.WithLabelValues("full").Add(1)
	sec.WithLabelValues("full").Observe(1.5)
	e := readEngine(reg, quiet)
	if !e.Available || e.Prefills != 3 || e.ReusedTokens != 30 || e.RecomputedTokens != 10 || e.QueryTokens != 5 || e.PrefillSeconds != 1.5 {
		t.Fatalf("%+v", e)
	}
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(e)
	if !strings.Contains(buf.String(), `"reused_tokens":30`) {
		t.Fatal(buf.String())
	}
}
