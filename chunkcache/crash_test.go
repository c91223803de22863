package chunkcache

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

// crashChunk is chunk `seed` of the crash test: 8 layers of 256 KiB (f32), so a commit
// takes long enough to be interrupted.
func crashChunk(seed int) (PutSpec, [][]float32, [][]float32) {
	return testChunk(uint64(seed), "crash", F32, 8, 512)
}

func openDiskCache(t testing.TB, dir string) *Cache {
	ctx := context.Background()
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, GCInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Options{
		Tiers: []TierConfig{
			{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 8 << 20}},
			{Tier: disk, Eviction: eviction.Config{Capacity: 1 << 30}, WriteThrough: true},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCrashDuringPutLeavesNoPartialChunk runs a child process (this test binary) that
// puts chunks in a loop and prints "ACK n" after each commit returns, kills it with
// SIGKILL at a random moment (usually in the middle of a put), reopens the store and
// checks: every acknowledged chunk is intact, and the only other chunk that may exist
// (the one in flight, if its commit completed before the kill) is complete and valid.
func TestCrashDuringPutLeavesNoPartialChunk(t *testing.T) {
	if dir := os.Getenv("RAGKV_CRASH_CHILD_DIR"); dir != "" {
		crashChild(t, dir)
		return
	}
	dir := t.TempDir()
	acked := map[int]bool{}
	var inflight []int
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	for round := 0; round < 3; round++ {
		start := round * 1000
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringPutLeavesNoPartialChunk$", "-test.count=1")
		cmd.Env = append(os.Environ(), "RAGKV_CRASH_CHILD_DIR="+dir, "RAGKV_CRASH_START="+strconv.Itoa(start))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 3 + r.IntN(6)
		sc := bufio.NewScanner(out)
		n := 0
		for n < killAfter && sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "ACK" {
				seed, _ := strconv.Atoi(f[1])
				acked[seed] = true
				n++
			}
		}
		time.Sleep(time.Duration(r.IntN(8000)) * time.Microsecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		if n < killAfter {
			t.Fatalf("child exited after %d acks", n)
		}
		// Acks the child printed before it died but that were not read yet.
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "ACK" {
				seed, _ := strconv.Atoi(f[1])
				acked[seed] = true
				n++
			}
		}
		_ = cmd.Wait()
		inflight = append(inflight, start+n)
	}
	c := openDiskCache(t, dir)
	defer c.Close()
	for seed := range acked {
		spec, ks, vs := crashChunk(seed)
		checkChunk(t, c, spec, ks, vs)
	}
	extra := 0
	for _, seed := range inflight {
		spec, ks, vs := crashChunk(seed)
		lr, err := c.Lookup(context.Background(), "crash", []Key{keyOf(t, spec)})
		if err != nil {
			t.Fatal(err)
		}
		if lr[0].Present {
			checkChunk(t, c, spec, ks, vs) // committed just before the kill: must be whole
			extra++
		}
	}
	if got, want := c.Stats().Chunks, len(acked)+extra; got != want {
		t.Fatalf("%d chunks after the crashes, want %d acknowledged + %d complete in-flight", got, len(acked), extra)
	}
	t.Logf("%d acknowledged chunks intact; %d of %d in-flight puts had committed", len(acked), extra, len(inflight))
}

func crashChild(t *testing.T, dir string) {
	start, _ := strconv.Atoi(os.Getenv("RAGKV_CRASH_START"))
	c := openDiskCache(t, dir)
	ctx := context.Background()
	for i := start; i < start+200; i++ {
		spec, ks, vs := crashChunk(i)
		if _, err := c.PutFloat32(ctx, spec, ks, vs); err != nil {
			fmt.Fprintln(os.Stderr, "child put:", err)
			os.Exit(3)
		}
		fmt.Printf("ACK %d\n", i)
	}
	time.Sleep(time.Minute) // wait for the kill
}
