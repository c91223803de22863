package chunkcache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/failpoint"
	"github.com/ragkv/ragkv/store"
)

// The fault suite: a workload of puts and full reads runs against a memory tier over a
// Badger tier, and a failpoint (internal/failpoint) fires at one write step of put,
// commit, demotion, eviction, promotion or the Badger store — as a crash of a child
// process (os.Exit in the middle of the step) or as a failing step in process. After a
// restart on the same directory: every acknowledged chunk reads back bit-exact (in
// the durable setup), no partial chunk is visible (every chunk present is whole and
// one of those put), and Verify finds the index, the trackers and the tiers in
// agreement.

// faultSetup is a tier configuration of the suite.
type faultSetup struct {
	name string
	// durable: the disk tier is write-through (as in `ragkv serve`), so an
	// acknowledged chunk must survive a crash. Otherwise chunks reach disk by
	// demotion only and a crash may lose what was only in RAM (but nothing partial).
	durable bool
	memCap  int64
	diskCap int64
}

const (
	faultChunkBytes = 4 * 4096 // 4 layers of 32 f32 tokens × 2 heads × 8 dims, K and V
	faultOps        = 40
)

var faultSetups = map[string]faultSetup{
	// RAM holds ~2 chunks (evictions; reads of older chunks promote), disk all of them.
	"durable": {name: "durable", durable: true, memCap: 2*faultChunkBytes + 4096, diskCap: 1 << 30},
	// RAM ~2 chunks demoting into a disk tier of ~6, which evicts (deletes) in turn.
	"demote": {name: "demote", memCap: 2*faultChunkBytes + 4096, diskCap: 6*faultChunkBytes + 8192},
}

func faultChunk(seed int) (PutSpec, [][]float32, [][]float32) {
	return testChunk(uint64(seed), "faults", F32, 4, 32)
}

func openFaultCache(dir string, s faultSetup) (*Cache, error) {
	ctx := context.Background()
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, GCInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	return New(ctx, Options{
		Tiers: []TierConfig{
			{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: s.memCap}},
			{Tier: disk, Eviction: eviction.Config{Capacity: s.diskCap}, WriteThrough: s.durable},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
}

// faultWorkload puts chunks 0..faultOps-1 in order, after every fourth put re-puts an
// older one (whether or not that succeeds, the chunk must stay as it was), and after
// every second put reads an older chunk in full (a promotion when it is only on disk). It reports each put
// before it starts ("PUT n") and after it is acknowledged ("ACK n"). A failed put is
// reported ("FAIL n") and the workload goes on.
func faultWorkload(c *Cache, report func(string, int)) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < faultOps; i++ {
		spec, ks, vs := faultChunk(i)
		report("PUT", i)
		if _, err := c.PutFloat32(ctx, spec, ks, vs); err != nil {
			report("FAIL", i)
		} else {
			report("ACK", i)
		}
		if i%4 == 3 {
			// Re-put an earlier chunk (an overwrite of the same content key).
			spec, ks, vs := faultChunk(r.IntN(i))
			report("REPUT", 0)
			_, _ = c.PutFloat32(ctx, spec, ks, vs)
		}
		if i%2 == 1 {
			spec, _, _ := faultChunk(r.IntN(i))
			k, _ := c.Key(spec.ID())
			_, _, _, _ = c.GetFloat32(ctx, spec.Namespace, k) // a miss is fine
		}
	}
}

// TestFaultChild is the child process of the crash cases (skipped unless started by
// one).
func TestFaultChild(t *testing.T) {
	dir := os.Getenv("RAGKV_FAULT_DIR")
	if dir == "" {
		t.Skip("child of TestFaultSuite")
	}
	if err := failpoint.EnvError(); err != nil {
		fmt.Println("BADSPEC", err)
		os.Exit(2)
	}
	c, err := openFaultCache(dir, faultSetups[os.Getenv("RAGKV_FAULT_SETUP")])
	if err != nil {
		fmt.Println("OPEN", err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	faultWorkload(c, func(what string, n int) {
		fmt.Fprintf(w, "%s %d\n", what, n)
		_ = w.Flush() // unbuffered in effect: what is printed happened
	})
	_ = c.Close()
	fmt.Println("DONE")
}

// faultOutcome is what a restart found.
type faultOutcome struct {
	acked, lost, present, failed int
	problems                     []string
}

// checkAfterRestart opens dir and checks the rules of the suite. acked and attempted
// are the chunk numbers acknowledged and started.
func checkAfterRestart(t *testing.T, dir string, s faultSetup, acked map[int]bool, attempted int) faultOutcome {
	t.Helper()
	c, err := openFaultCache(dir, s)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer c.Close()
	out := faultOutcome{acked: len(acked)}
	rep, err := c.Verify(context.Background())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	out.problems = append(out.problems, rep.Problems...)
	for i := 0; i < attempted; i++ {
		present, err := faultIntact(c, i)
		if err != nil {
			out.problems = append(out.problems, fmt.Sprintf("chunk %d: %v", i, err))
		}
		if present {
			out.present++
		} else if acked[i] && s.durable {
			out.lost++
			out.problems = append(out.problems, fmt.Sprintf("acknowledged chunk %d is gone", i))
		}
	}
	if got := c.Stats().Chunks; got != out.present {
		out.problems = append(out.problems, fmt.Sprintf("%d chunks in the cache, %d of them put by the workload", got, out.present))
	}
	// The reopened cache takes puts and serves them.
	spec, ks, vs := faultChunk(1000)
	if _, err := c.PutFloat32(context.Background(), spec, ks, vs); err != nil {
		out.problems = append(out.problems, fmt.Sprintf("put after restart: %v", err))
	} else if ok, err := faultIntact(c, 1000); !ok || err != nil {
		out.problems = append(out.problems, fmt.Sprintf("read after restart: %v %v", ok, err))
	}
	return out
}

// faultIntact reports whether chunk n is present and, if so, checks that every layer is
// bit-exact (an error if not).
func faultIntact(c *Cache, n int) (bool, error) {
	ctx := context.Background()
	spec, ks, vs := faultChunk(n)
	k, err := c.Key(spec.ID())
	if err != nil {
		return false, err
	}
	r, err := c.Open(ctx, spec.Namespace, k)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnknownNamespace) {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("open: %w", err)
	}
	defer r.Close()
	l := spec.Layout
	l.EnsureDefaults()
	for i := range ks {
		want, err := l.AppendLayer(nil, len(spec.Tokens), ks[i], vs[i])
		if err != nil {
			return true, err
		}
		got, err := r.Section(ctx, i)
		if err != nil {
			return true, fmt.Errorf("layer %d: %w", i, err)
		}
		if !bytes.Equal(got, want) {
			return true, fmt.Errorf("layer %d differs", i)
		}
	}
	if info := r.Info(); info.PositionBase != spec.PositionBase || !equalTokens(info.Tokens, spec.Tokens) {
		return true, fmt.Errorf("info %+v does not match the put", info)
	}
	return true, nil
}

// faultCase is one row of the table: a point, the setups where the workload reaches
// it, the hits at which it fires, and whether an "error" there is a failing step.
type faultCase struct {
	point  string
	setups []string
	hits   []int
	errors bool
}

var faultCases = []faultCase{
	{"chunkcache/put/staged", []string{"durable", "demote"}, []int{1, 9}, true},
	{"chunkcache/commit/tier-reserved", []string{"durable", "demote"}, []int{1, 2, 17}, true},
	{"chunkcache/commit/tier-stored", []string{"durable", "demote"}, []int{1, 2, 17}, false},
	{"chunkcache/commit/indexed", []string{"durable", "demote"}, []int{1, 9}, false},
	{"chunkcache/commit/victims-processed", []string{"durable", "demote"}, []int{1, 9}, false},
	{"chunkcache/demote/read", []string{"demote"}, []int{1, 9}, true},
	{"chunkcache/demote/reserved", []string{"demote"}, []int{1, 9}, true},
	{"chunkcache/demote/stored", []string{"demote"}, []int{1, 9}, false},
	{"chunkcache/evict/delete", []string{"durable", "demote"}, []int{1, 9}, true},
	{"chunkcache/evict/deleted", []string{"durable", "demote"}, []int{1, 9}, false},
	{"chunkcache/promote/reserved", []string{"durable", "demote"}, []int{1, 4}, true},
	{"chunkcache/promote/stored", []string{"durable", "demote"}, []int{1, 4}, false},
	{"store/badger/put", []string{"durable", "demote"}, []int{1, 9}, true},
	{"store/badger/blob-written", []string{"durable", "demote"}, []int{1, 9}, true},
	{"store/badger/put-staged", []string{"durable", "demote"}, []int{1, 9}, false},
	{"store/badger/put-committed", []string{"durable", "demote"}, []int{1, 9}, false},
	{"store/badger/delete", []string{"demote"}, []int{1, 3}, true},
	{"store/badger/delete-committed", []string{"demote"}, []int{1, 3}, false},
	{"store/badger/blob-unlink", []string{"durable", "demote"}, []int{1, 3}, true},
}

var faultTotals struct {
	crashes, errorRuns, lost, acked atomic.Int64
}

// TestFaultSuite crashes a child process at every failpoint of the chunk cache and the
// Badger tier (each setup and moment in the table), restarts on the same directory and
// checks the rules above; then it fails each step that can fail, in process, and
// checks the same after a restart. Under -short only the first moment of each point
// runs.
func TestFaultSuite(t *testing.T) {
	declared := failpoint.Names("chunkcache/")
	declared = append(declared, failpoint.Names("store/badger/")...)
	covered := map[string]bool{}
	for _, fc := range faultCases {
		covered[fc.point] = true
	}
	for _, n := range declared {
		if !covered[n] {
			t.Errorf("failpoint %s has no case in the fault suite", n)
		}
	}
	t.Run("crash", func(t *testing.T) {
		for _, fc := range faultCases {
			for _, sn := range fc.setups {
				for hi, hit := range fc.hits {
					if testing.Short() && hi > 0 {
						continue
					}
					t.Run(fmt.Sprintf("%s/%s@%d", fc.point, sn, hit), func(t *testing.T) {
						t.Parallel()
						crashCase(t, fc.point, faultSetups[sn], hit)
					})
				}
			}
		}
	})
	t.Run("error", func(t *testing.T) {
		for _, fc := range faultCases {
			if !fc.errors {
				continue
			}
			for _, sn := range fc.setups {
				hit := fc.hits[len(fc.hits)-1]
				t.Run(fmt.Sprintf("%s/%s@%d+", fc.point, sn, hit), func(t *testing.T) {
					errorCase(t, fc.point, faultSetups[sn], hit)
				})
			}
		}
	})
	t.Logf("%d failpoints; %d crashes and %d in-process failure runs; %d acknowledged chunks checked after restarts (durable setup), %d lost",
		len(declared), faultTotals.crashes.Load(), faultTotals.errorRuns.Load(), faultTotals.acked.Load(), faultTotals.lost.Load())
}

func crashCase(t *testing.T, point string, s faultSetup, hit int) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RAGKV_FAULT_DIR="+dir, "RAGKV_FAULT_SETUP="+s.name,
		failpoint.EnvVar+"="+point+"=exit@"+strconv.Itoa(hit))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != failpoint.ExitCode {
		t.Fatalf("child did not crash at %s@%d: %v\n%s\n%s", point, hit, err, tail(string(outb)), stderr.String())
	}
	acked := map[int]bool{}
	attempted := 0
	for _, l := range strings.Split(string(outb), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "ACK":
			acked[n] = true
		case "PUT":
			attempted = n + 1
		}
	}
	out := checkAfterRestart(t, dir, s, acked, attempted)
	faultTotals.crashes.Add(1)
	if s.durable {
		faultTotals.acked.Add(int64(out.acked))
		faultTotals.lost.Add(int64(out.lost))
	}
	if len(out.problems) > 0 {
		t.Fatalf("after a crash at %s@%d (%d puts started, %d acknowledged, %d present):\n  %s",
			point, hit, attempted, len(acked), out.present, strings.Join(out.problems, "\n  "))
	}
}

func errorCase(t *testing.T, point string, s faultSetup, hit int) {
	dir := t.TempDir()
	c, err := openFaultCache(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := failpoint.Enable(point, "error@"+strconv.Itoa(hit)+"+"); err != nil {
		t.Fatal(err)
	}
	acked := map[int]bool{}
	failed := 0
	faultWorkload(c, func(what string, n int) {
		switch what {
		case "ACK":
			acked[n] = true
		case "FAIL":
			failed++
		}
	})
	p, _ := failpoint.Lookup(point)
	hits := p.Hits()
	failpoint.Disable(point)
	if hits < int64(hit) {
		t.Fatalf("the workload reached %s %d times, fewer than %d", point, hits, hit)
	}
	// In process, before the restart: a failed eviction delete leaves the object in its
	// tier untracked until the retry after the next eviction (run here directly: the
	// workload is over); then, as after every other failure, the accounting is exact.
	if point == "chunkcache/evict/delete" || point == "store/badger/delete" {
		if c.PendingDeletes() == 0 {
			t.Errorf("failed eviction deletes at %s left no pending delete", point)
		}
		c.retryOrphans(context.Background())
		if n := c.PendingDeletes(); n != 0 {
			t.Errorf("%d pending deletes after the retry", n)
		}
	}
	rep, err := c.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range rep.Problems {
		// A failed blob unlink leaves the file pending until the next GC tick (the
		// suite runs without GC); the restart below must find none.
		if point == "store/badger/blob-unlink" && strings.Contains(pr, "blob files that no object references") {
			continue
		}
		t.Errorf("in process after failures at %s: %s", point, pr)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	out := checkAfterRestart(t, dir, s, acked, faultOps)
	faultTotals.errorRuns.Add(1)
	if s.durable {
		faultTotals.acked.Add(int64(out.acked))
		faultTotals.lost.Add(int64(out.lost))
	}
	if len(out.problems) > 0 {
		t.Fatalf("after failures at %s from hit %d (%d puts failed, %d acknowledged):\n  %s",
			point, hit, failed, len(acked), strings.Join(out.problems, "\n  "))
	}
	t.Logf("%s: %d hits, %d puts failed, %d acknowledged, %d present after restart", point, hits, failed, len(acked), out.present)
}

func tail(s string) string {
	if len(s) > 400 {
		return "..." + s[len(s)-400:]
	}
	return s
}
