package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/resp"
	"github.com/ragkv/ragkv/store"
)

// benchRESPTarget is one server's best round.
type benchRESPTarget struct {
	Addr    string  `json:"addr"`
	SetRPS  float64 `json:"set_rps"`
	GetRPS  float64 `json:"get_rps"`
	SetGBps float64 `json:"set_gbps"`
	GetGBps float64 `json:"get_gbps"`
}

// benchRESPResult is the JSON line of `ragkv bench resp`. GB/s are 10^9 bytes/s of
// values; ratios are ragkv over redis-server, both best of the rounds.
type benchRESPResult struct {
	ValueBytes   int             `json:"value_bytes"`
	Clients      int             `json:"clients"`
	Requests     int             `json:"requests"`
	Rounds       int             `json:"rounds"`
	RedisVersion string          `json:"redis_version"`
	Redis        benchRESPTarget `json:"redis"`
	Ragkv        benchRESPTarget `json:"ragkv"`
	GetRatio     float64         `json:"get_ratio"`
	SetRatio     float64         `json:"set_ratio"`
	// Targets of issue 12: GET ≥ 0.8×, SET ≥ 0.6× redis-server.
	GetTargetMet bool   `json:"get_target_met"`
	SetTargetMet bool   `json:"set_target_met"`
	Note         string `json:"note"`
}

func init() {
	var (
		valueBytes, clients, requests, rounds int
		memCap                                cacheBytes = 1 << 30
		ragkvAddr, redisAddr                  string
		asJSON                                bool
	)
	cmd := &cobra.Command{
		Use:   "resp",
		Short: "redis-benchmark GET/SET against ragkv's RESP endpoint and a redis-server, side by side",
		Long: `Runs redis-benchmark -t set,get -d --value-bytes -c --clients -n --requests against
ragkv's RESP endpoint (an in-process one over a memory tier of --mem-capacity, as
` + "`ragkv serve --resp-listen`" + ` serves it, unless --ragkv names a running one) and against a
redis-server (started here with persistence off on a free loopback port, unless --redis
names one), alternating the two for --rounds rounds, and reports each one's best round.
Needs redis-benchmark and (without --redis) redis-server (Debian: redis-server,
redis-tools).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if valueBytes < 1 || valueBytes > 512<<20 {
				return flagErr("value-bytes", "want 1..512MiB, got %d", valueBytes)
			}
			if clients < 1 || requests < 1 || rounds < 1 {
				return flagErr("clients", "--clients, --requests and --rounds must be ≥ 1")
			}
			bench, err := exec.LookPath("redis-benchmark")
			if err != nil {
				return usageError{fmt.Errorf("redis-benchmark not found in PATH (Debian: apt-get install redis-tools)")}
			}
			ctx := cmd.Context()
			res := &benchRESPResult{ValueBytes: valueBytes, Clients: clients, Requests: requests, Rounds: rounds}
			if redisAddr == "" {
				srv, err := startRedisServer(ctx)
				if err != nil {
					return err
				}
				defer srv.stop()
				redisAddr = srv.addr
			}
			if ragkvAddr == "" {
				addr, stop, err := startRESP(int64(memCap))
				if err != nil {
					return err
				}
				defer stop()
				ragkvAddr = addr
			}
			res.Redis.Addr, res.Ragkv.Addr = redisAddr, ragkvAddr
			res.RedisVersion = redisVersion(redisAddr)
			for r := 0; r < rounds; r++ {
				order := []*benchRESPTarget{&res.Redis, &res.Ragkv}
				if r%2 == 1 {
					order[0], order[1] = order[1], order[0]
				}
				for _, t := range order {
					set, get, err := runRedisBenchmark(ctx, bench, t.Addr, valueBytes, clients, requests)
					if err != nil {
						return err
					}
					fmt.Fprintf(os.Stderr, "round %d %s: SET %.0f/s GET %.0f/s\n", r, t.Addr, set, get)
					t.SetRPS, t.GetRPS = max(t.SetRPS, set), max(t.GetRPS, get)
				}
			}
			for _, t := range []*benchRESPTarget{&res.Redis, &res.Ragkv} {
				t.SetGBps = t.SetRPS * float64(valueBytes) / 1e9
				t.GetGBps = t.GetRPS * float64(valueBytes) / 1e9
			}
			res.GetRatio = res.Ragkv.GetRPS / res.Redis.GetRPS
			res.SetRatio = res.Ragkv.SetRPS / res.Redis.SetRPS
			res.GetTargetMet, res.SetTargetMet = res.GetRatio >= 0.8, res.SetRatio >= 0.6
			res.Note = "same machine, same run, rounds alternate the two servers; best round of each; wall-clock rates on a shared machine"
			if asJSON {
				return cliutil.PrintJSON(os.Stdout, res)
			}
			fmt.Printf("%d-byte values, %d clients, %d requests, best of %d rounds\n", valueBytes, clients, requests, rounds)
			fmt.Printf("  redis-server %s: SET %.0f/s (%.2f GB/s)  GET %.0f/s (%.2f GB/s)\n", res.RedisVersion, res.Redis.SetRPS, res.Redis.SetGBps, res.Redis.GetRPS, res.Redis.GetGBps)
			fmt.Printf("  ragkv resp:   SET %.0f/s (%.2f GB/s)  GET %.0f/s (%.2f GB/s)\n", res.Ragkv.SetRPS, res.Ragkv.SetGBps, res.Ragkv.GetRPS, res.Ragkv.GetGBps)
			fmt.Printf("  ragkv/redis:  SET %.2f (target 0.6)  GET %.2f (target 0.8)\n", res.SetRatio, res.GetRatio)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&valueBytes, "value-bytes", 4<<20, "value size (redis-benchmark -d)")
	f.IntVar(&clients, "clients", 8, "parallel connections (redis-benchmark -c)")
	f.IntVar(&requests, "requests", 1000, "requests per test (redis-benchmark -n)")
	f.IntVar(&rounds, "rounds", 3, "rounds (each runs both servers; the best is reported)")
	f.Var(&memCap, "mem-capacity", "memory tier of the in-process RESP endpoint")
	f.StringVar(&ragkvAddr, "ragkv", "", "address of a running ragkv RESP endpoint (default: start one in-process)")
	f.StringVar(&redisAddr, "redis", "", "address of a running redis-server (default: start one)")
	f.BoolVar(&asJSON, "json", false, "print the result as one JSON line")
	benchCmd.AddCommand(cmd)
}

// startRESP serves a memory-tier chunk cache over RESP on a loopback port.
func startRESP(memCap int64) (string, func(), error) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	c, err := chunkcache.New(ctx, chunkcache.Options{
		Tiers:  []chunkcache.TierConfig{{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: memCap}}},
		Logger: quiet})
	if err != nil {
		return "", nil, err
	}
	s, err := resp.New(c, resp.Options{Logger: quiet})
	if err != nil {
		c.Close()
		return "", nil, err
	}
	lis, err := resp.Listen("127.0.0.1:0")
	if err != nil {
		c.Close()
		return "", nil, err
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	return lis.Addr().String(), func() {
		s.Close()
		<-done
		c.Close()
	}, nil
}

// redisServer is a redis-server child process.
type redisServer struct {
	addr string
	cmd  *exec.Cmd
	dir  string
}

func (r *redisServer) stop() {
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	os.RemoveAll(r.dir)
}

// startRedisServer starts redis-server on a free loopback port with persistence off.
func startRedisServer(ctx context.Context) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, usageError{fmt.Errorf("redis-server not found in PATH (Debian: apt-get install redis-server), or name one with --redis")}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "ragkv-bench-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r := &redisServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, dir: dir}
	for i := 0; i < 200; i++ {
		if c, err := net.DialTimeout("tcp", r.addr, 100*time.Millisecond); err == nil {
			c.Close()
			return r, nil
		}
		select {
		case <-ctx.Done():
			r.stop()
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	r.stop()
	return nil, fmt.Errorf("redis-server did not start on %s", r.addr)
}

func redisVersion(addr string) string {
	out, err := exec.Command("redis-cli", "-h", strings.Split(addr, ":")[0], "-p", addr[strings.LastIndexByte(addr, ':')+1:], "INFO", "server").Output()
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			return v
		}
	}
	return ""
}

// runRedisBenchmark runs redis-benchmark -t set,get --csv and returns the two rates.
func runRedisBenchmark(ctx context.Context, bin, addr string, valueBytes, clients, requests int) (set, get float64, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, 0, flagErr("ragkv", "%v", err)
	}
	cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-t", "set,get", "-d", strconv.Itoa(valueBytes),
		"-c", strconv.Itoa(clients), "-n", strconv.Itoa(requests), "--csv")
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("redis-benchmark against %s: %w", addr, err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil {
		return 0, 0, fmt.Errorf("redis-benchmark output: %w: %q", err, out)
	}
	for _, r := range recs {
		if len(r) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(r[1], 64)
		if err != nil {
			continue
		}
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, 0, fmt.Errorf("redis-benchmark against %s finished %s too fast to time; use more requests", addr, r[0])
		}
		switch r[0] {
		case "SET":
			set = v
		case "GET":
			get = v
		}
	}
	if set == 0 || get == 0 {
		return 0, 0, fmt.Errorf("redis-benchmark against %s printed no SET/GET rates: %q", addr, out)
	}
	return set, get, nil
}
