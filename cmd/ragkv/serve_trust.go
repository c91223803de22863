package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/server"
	"github.com/ragkv/ragkv/server/auth"
)

// trustConfig is the `trust:` section of the serve configuration: TLS on the gRPC,
// admin and OpenAI listeners, the auth file, and the loopback rule.
type trustConfig struct {
	TLSCert     string `yaml:"tls_cert"`
	TLSKey      string `yaml:"tls_key"`
	TLSClientCA string `yaml:"tls_client_ca"`
	AuthFile    string `yaml:"auth_file"`
	// Insecure allows plaintext or unauthenticated listeners on non-loopback
	// addresses (behind a trusted proxy or network only).
	Insecure bool `yaml:"insecure"`
	// MaxHandles is the default bound on live Prefill handles per identity.
	MaxHandles int `yaml:"max_handles_per_identity"`

	// Resource limits (server.Limits).
	MaxConcurrentStreams int           `yaml:"max_concurrent_streams"`
	UnaryTimeout         time.Duration `yaml:"unary_timeout"`
	KeepaliveMinTime     time.Duration `yaml:"keepalive_min_time"`
	MaxStagedBytes       cacheBytes    `yaml:"max_staged_bytes"`
	PolicyMinCapacity    cacheBytes    `yaml:"policy_min_capacity"`
	// PolicyMaxMemory bounds the memory tier's SetPolicy capacity (default: the
	// host's memory, from /proc/meminfo; 0 where unknown: no bound).
	PolicyMaxMemory cacheBytes `yaml:"policy_max_memory"`
}

func init() {
	f := serveCmd.Flags()
	tc := &serveCfg.Trust
	f.StringVar(&tc.TLSCert, "tls-cert", "", "PEM certificate chain: serve gRPC, admin and OpenAI listeners over TLS (with --tls-key)")
	f.StringVar(&tc.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&tc.TLSClientCA, "tls-client-ca", "", "PEM CA: require client certificates signed by it (the subject CN may name an identity of --auth-file)")
	f.StringVar(&tc.AuthFile, "auth-file", "", "YAML identities (token hashes, roles, namespaces, collections, registries); reloaded on SIGHUP (see deploy/auth.example.yaml)")
	f.BoolVar(&tc.Insecure, "insecure", false, "allow listeners on non-loopback addresses without TLS or without --auth-file")
	f.IntVar(&tc.MaxHandles, "max-handles-per-identity", server.DefaultMaxHandlesPerIdentity, "live Prefill handles one identity may hold (auth file max_handles overrides)")
	f.IntVar(&tc.MaxConcurrentStreams, "max-concurrent-streams", server.DefaultMaxConcurrentStreams, "concurrent RPCs per client connection")
	f.DurationVar(&tc.UnaryTimeout, "unary-timeout", server.DefaultUnaryTimeout, "server-side deadline of unary RPCs")
	f.DurationVar(&tc.KeepaliveMinTime, "keepalive-min-time", 10*time.Second, "clients pinging more often than this are disconnected")
	f.Var(&tc.MaxStagedBytes, "max-staged-bytes", "layer bytes all PutChunk streams in flight may hold together")
	f.Var(&tc.PolicyMinCapacity, "policy-min-capacity", "smallest tier capacity SetPolicy may set")
	f.Var(&tc.PolicyMaxMemory, "policy-max-memory", "largest memory-tier capacity SetPolicy may set (default: the host's memory; 0: no bound)")
}

// hostMemory is MemTotal of /proc/meminfo in bytes (0 if unknown).
func hostMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}

// limits are the server limits of the section.
func (tc trustConfig) limits() server.Limits {
	l := server.Limits{MaxConcurrentStreams: tc.MaxConcurrentStreams, UnaryTimeout: tc.UnaryTimeout, KeepaliveMinTime: tc.KeepaliveMinTime,
		MaxStagedBytes: int64(tc.MaxStagedBytes), MinCapacityBytes: int64(tc.PolicyMinCapacity)}
	if tc.PolicyMaxMemory > 0 {
		l.MaxCapacityBytes = map[string]int64{"memory": int64(tc.PolicyMaxMemory)}
	}
	return l
}

func defaultTrustConfig() trustConfig {
	return trustConfig{MaxHandles: server.DefaultMaxHandlesPerIdentity, MaxConcurrentStreams: server.DefaultMaxConcurrentStreams,
		UnaryTimeout: server.DefaultUnaryTimeout, KeepaliveMinTime: 10 * time.Second, MaxStagedBytes: server.DefaultMaxStagedBytes,
		PolicyMinCapacity: server.DefaultMinCapacityBytes, PolicyMaxMemory: cacheBytes(hostMemory())}
}

// trust is what runServe needs from the trust section.
type trust struct {
	tls  *tls.Config
	auth *auth.Store
}

// loadTrust loads the TLS files and the auth file and applies the loopback rule to
// every listener address: off loopback, the server needs TLS and an auth file
// unless --insecure.
func loadTrust(cfg *serveConfig) (*trust, error) {
	tc := cfg.Trust
	var t trust
	if tc.TLSCert != "" || tc.TLSKey != "" {
		c, err := server.ServerTLSConfig(server.TLSFiles{Cert: tc.TLSCert, Key: tc.TLSKey, CA: tc.TLSClientCA})
		if err != nil {
			flag := "tls-cert"
			if tc.TLSCert != "" && tc.TLSKey == "" {
				flag = "tls-key"
			}
			return nil, flagErr(flag, "%v", err)
		}
		t.tls = c
	} else if tc.TLSClientCA != "" {
		return nil, flagErr("tls-client-ca", "needs --tls-cert and --tls-key")
	}
	if tc.AuthFile != "" {
		st, err := auth.Load(tc.AuthFile)
		if err != nil {
			return nil, flagErr("auth-file", "%v", err)
		}
		t.auth = st
	}
	if tc.MaxHandles < 0 {
		return nil, flagErr("max-handles-per-identity", "must not be negative, got %d", tc.MaxHandles)
	}
	if tc.Insecure {
		return &t, nil
	}
	for _, l := range []struct{ flag, addr string }{
		{"listen", cfg.Listen}, {"admin-listen", cfg.AdminListen}, {"openai-listen", cfg.OpenAI.Listen},
	} {
		if l.addr == "" || server.IsLoopback(l.addr) {
			continue
		}
		switch {
		case t.tls == nil:
			return nil, flagErr(l.flag, "%s is not a loopback address: serving it in plaintext needs --insecure (or give --tls-cert and --tls-key)", l.addr)
		case t.auth == nil:
			return nil, flagErr(l.flag, "%s is not a loopback address: serving it without identities needs --insecure (or give --auth-file)", l.addr)
		}
	}
	return &t, nil
}

// options are the server options of the trust section; deps give the registry
// existence check.
func (t *trust) options(cfg *serveConfig, deps map[string]any) []server.Option {
	opts := []server.Option{server.WithLimits(cfg.Trust.limits())}
	if t.tls != nil {
		opts = append(opts, server.WithTLS(t.tls))
	}
	if t.auth != nil {
		ao := server.AuthOptions{MaxHandlesPerIdentity: cfg.Trust.MaxHandles}
		if st, ok := deps["retrieval"].(*retrieval.Store); ok {
			ao.RegistryExists = func(name string) bool { _, err := st.ToolRegistry(name); return err == nil }
		}
		opts = append(opts, server.WithAuth(t.auth, ao), server.WithAdminAuth(t.auth))
	}
	return opts
}

// mergeQuotas adds the auth file's namespace_quotas to quotas (tier → namespace →
// bytes, from --namespace-quota and the YAML config); the same namespace and tier in
// both is an error naming the flag and the file. t may be nil (no trust setup).
func (t *trust) mergeQuotas(quotas map[string]map[string]int64, diskOn bool) error {
	if t == nil || t.auth == nil {
		return nil
	}
	for ns, tiers := range t.auth.NamespaceQuotas() {
		n, err := chunkcache.NormalizeNamespace(ns)
		if err != nil {
			return flagErr("auth-file", "%s: namespace_quotas: %v", t.auth.Path(), err)
		}
		for tier, b := range tiers {
			if tier == "disk" && !diskOn {
				return flagErr("auth-file", "%s: namespace_quotas[%q]: a disk quota with the disk tier off (--disk-capacity 0)", t.auth.Path(), ns)
			}
			if _, dup := quotas[tier][n]; dup {
				return flagErr("namespace-quota", "%s=%s is also set in the auth file %s (namespace_quotas): set it in one place", ns, tier, t.auth.Path())
			}
			if quotas[tier] == nil {
				quotas[tier] = map[string]int64{}
			}
			quotas[tier][n] = b
		}
	}
	return nil
}

// listener wraps an HTTP listener in TLS when the server has it.
func (t *trust) listener(l net.Listener) net.Listener {
	if t.tls == nil {
		return l
	}
	return tls.NewListener(l, t.tls)
}

// watchReload reloads the auth file on SIGHUP until ctx is done. The returned func
// stops it and waits.
func (t *trust) watchReload(ctx context.Context, log *slog.Logger) func() {
	if t.auth == nil {
		return func() {}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if err := t.auth.Reload(); err != nil {
					log.Error("auth file reload failed; the identities loaded before stay in force", "err", err)
					continue
				}
				log.Info("auth file reloaded", "path", t.auth.Path(), "identities", t.auth.Len())
				if t.auth.QuotasChanged() {
					log.Warn("auth file: namespace_quotas changed; the running quotas stay until the next start", "path", t.auth.Path())
				}
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		cancel()
		<-done
	}
}

// String describes the trust setup for the startup log.
func (t *trust) String() string {
	return fmt.Sprintf("tls=%v mtls=%v auth=%v", t.tls != nil, t.tls != nil && t.tls.ClientCAs != nil, t.auth != nil)
}

// warnInsecure logs each non-loopback listener that --insecure lets run without TLS or
// without identities.
func (t *trust) warnInsecure(cfg *serveConfig, log *slog.Logger) {
	for _, l := range []struct{ flag, addr string }{
		{"listen", cfg.Listen}, {"admin-listen", cfg.AdminListen}, {"openai-listen", cfg.OpenAI.Listen},
	} {
		if l.addr != "" && !server.IsLoopback(l.addr) && (t.tls == nil || t.auth == nil) {
			log.Warn("insecure listener: reachable off loopback without TLS or identities (--insecure)", "flag", l.flag, "addr", l.addr,
				"tls", t.tls != nil, "auth", t.auth != nil)
		}
	}
}
