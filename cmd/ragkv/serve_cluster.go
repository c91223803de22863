package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/resp"
	"github.com/ragkv/ragkv/server"
	"github.com/ragkv/ragkv/store"
)

// cacheRemoteConfig is the shared remote tier (YAML `cache: remote:`).
type cacheRemoteConfig struct {
	// URL is redis://[user:password@]HOST:PORT[,HOST:PORT...][/DB][?prefix=P&ttl=D]
	// (empty: no remote tier).
	URL string `yaml:"url"`
	// TTL is the sliding expiry of the chunks in Redis (0: none; overrides ?ttl=).
	TTL time.Duration `yaml:"ttl"`
	// KVFormat is the remote tier's own chunk KV format (--remote-kv-format, e.g. q4
	// under f16 in RAM): puts and demotions into it are re-encoded. Empty: as written.
	KVFormat string `yaml:"kv_format"`
	// KVFormats overrides KVFormat per namespace (YAML only).
	KVFormats map[string]string `yaml:"kv_formats"`
}

// respConfig is the RESP endpoint (YAML `resp:`).
type respConfig struct {
	// Listen is a loopback host:port (empty: off).
	Listen       string `yaml:"listen"`
	Namespace    string `yaml:"namespace"`
	WriteThrough bool   `yaml:"write_through"`
}

// replicaConfig is this replica's identity for Locate and WatchChunks (YAML
// `replica:`).
type replicaConfig struct {
	// ID defaults to the bound gRPC address.
	ID    string   `yaml:"id"`
	Peers []string `yaml:"peers"`
}

func init() {
	f := serveCmd.Flags()
	rc := &serveCfg.Cache.Remote
	f.StringVar(&rc.URL, "remote", "", "shared remote tier below RAM and disk: redis://HOST:PORT[,HOST:PORT...] (one Redis or Redis Cluster nodes; empty: none)")
	f.DurationVar(&rc.TTL, "remote-ttl", 0, "sliding expiry of chunks in the remote tier (0: none, Redis's maxmemory policy decides)")
	f.StringVar(&rc.KVFormat, "remote-kv-format", "", "KV format of chunks in the remote tier, re-encoded on put and demotion (e.g. q4; empty: as put)")
	rs := &serveCfg.RESP
	f.StringVar(&rs.Listen, "resp-listen", "", "RESP2 endpoint (GET/SET/... for LMCache's resp adapter, redis-cli): a loopback host:port only, since it has no authentication yet (empty: off)")
	f.StringVar(&rs.Namespace, "resp-namespace", "resp", "chunk-cache namespace of the RESP endpoint's values")
	f.BoolVar(&rs.WriteThrough, "resp-write-through", false, "write every RESP SET to the disk and remote tiers at once (default: RAM first, lower tiers on eviction)")
	rp := &serveCfg.Replica
	f.StringVar(&rp.ID, "replica-id", "", "this replica's name in Locate answers and chunk events (default: the bound gRPC address)")
	f.StringSliceVar(&rp.Peers, "peers", nil, "gRPC addresses of the other replicas, asked by Locate (comma-separated)")
	serveComponents = append(serveComponents, serveComponent{name: "resp", needs: []string{"chunkcache"}, build: buildRESP})
}

// openRemoteTier opens the remote tier of the chunk cache, or returns nil without one.
func openRemoteTier(ctx context.Context, rc cacheRemoteConfig, log *slog.Logger) (*store.Redis, error) {
	if rc.URL == "" {
		return nil, nil
	}
	o, err := store.ParseRedisURL(rc.URL)
	if err != nil {
		return nil, flagErr("remote", "%v", err)
	}
	if rc.TTL != 0 {
		o.TTL = rc.TTL
	}
	if o.TTL < 0 {
		return nil, flagErr("remote-ttl", "must be ≥ 0, got %v", o.TTL)
	}
	o.Logger = log
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rt, err := store.OpenRedis(cctx, o)
	if errors.Is(err, store.ErrInvalid) {
		return nil, flagErr("remote", "%v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("--remote %s: %w", rc.URL, err)
	}
	log.Info("remote tier ready", "addrs", o.Addrs, "cluster", rt.Cluster(), "prefix", o.Prefix, "ttl", o.TTL)
	return rt, nil
}

// buildRESP is the "resp" serve component.
func buildRESP(ctx context.Context, cfg *serveConfig, env *serveEnv, deps map[string]any) (server.Option, any, io.Closer, error) {
	rs := cfg.RESP
	if rs.Listen == "" {
		return nil, nil, nil, nil
	}
	cache, ok := deps["chunkcache"].(*chunkcache.Cache)
	if !ok || cache == nil {
		return nil, nil, nil, fmt.Errorf("resp: the chunk cache component is not running")
	}
	if _, err := chunkcache.NormalizeNamespace(rs.Namespace); err != nil {
		return nil, nil, nil, flagErr("resp-namespace", "%v", err)
	}
	lis, err := resp.Listen(rs.Listen)
	if err != nil {
		return nil, nil, nil, flagErr("resp-listen", "%v", err)
	}
	log := env.log.With("component", "resp")
	s, err := resp.New(cache, resp.Options{Namespace: rs.Namespace, WriteThrough: rs.WriteThrough, Logger: log, Registerer: env.reg})
	if err != nil {
		lis.Close()
		return nil, nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	// Tests and scripts read this line to learn the bound address.
	fmt.Fprintf(os.Stdout, "ragkv serving resp=%s\n", lis.Addr())
	return nil, s, closerFunc(func() error {
		s.Close()
		return <-done
	}), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// replicaOption names this replica (default: its bound gRPC address) and its peers.
func replicaOption(cfg *serveConfig, bound net.Addr) (server.Option, error) {
	id := cfg.Replica.ID
	if id == "" {
		id = bound.String()
	}
	var peers []string
	for _, p := range cfg.Replica.Peers {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(p); err != nil {
			return nil, flagErr("peers", "%q: %v", p, err)
		}
		peers = append(peers, p)
	}
	dopts, _, err := clientTransportOptions() // --tls-ca etc. reach the peers too
	if err != nil {
		return nil, err
	}
	return server.WithReplica(server.ReplicaOptions{ID: id, Peers: peers, DialOptions: dopts}), nil
}
