package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/server"
)

// serveConfig is the whole service configuration: YAML file (--config) first, then any
// flag given on the command line overrides it. Feature files add their own section.
type serveConfig struct {
	Listen      string `yaml:"listen"`
	AdminListen string `yaml:"admin_listen"`
	DataDir     string `yaml:"data_dir"`
	LogLevel    string `yaml:"log_level"`
	// StopTimeout bounds the graceful stop on SIGTERM.
	StopTimeout time.Duration `yaml:"stop_timeout"`

	Cache     cacheConfig     `yaml:"cache"`
	Retrieval retrievalConfig `yaml:"retrieval"`
	Inference inferenceConfig `yaml:"inference"`
	Console   consoleConfig   `yaml:"console"`
	RESP      respConfig      `yaml:"resp"`
	Replica   replicaConfig   `yaml:"replica"`
	OpenAI    openaiConfig    `yaml:"openai"`
	Trust     trustConfig     `yaml:"trust"`
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		Listen:      "127.0.0.1:7431",
		AdminListen: "127.0.0.1:7432",
		DataDir:     "./data",
		LogLevel:    "info",
		StopTimeout: 30 * time.Second,
		Cache:       defaultCacheConfig(),
		Console:     consoleConfig{Interval: 5 * time.Second, History: time.Hour, Refresh: 2 * time.Second},
		RESP:        respConfig{Namespace: "resp"},
		OpenAI:      openaiConfig{Listen: "127.0.0.1:7433"},
		Trust:       defaultTrustConfig(),
	}
}

// serveEnv is what components get besides the config.
type serveEnv struct {
	log *slog.Logger
	reg prometheus.Registerer
	// listeners are extra listeners components ask for (the OpenAI HTTP API): runServe
	// binds them after the gRPC listener, serves them, and stops them before the server.
	listeners []serveListener
	// trust is the TLS and identity setup (serve_trust.go), for components that serve
	// their own listeners.
	trust *trust
}

// serveListener is an extra listener of a component: addr is bound (errors name flag),
// serve runs until stop is called.
type serveListener struct {
	name, flag, addr string
	serve            func(net.Listener) error
	stop             func(context.Context) error
}

// serveComponent builds one part of the service (chunk cache, retrieval, engine, ...)
// and returns the server option that attaches it plus a closer run after the server
// stopped. Feature files append to serveComponents from init; components are built after
// the ones they name in needs (whose values they find in deps), whatever the order of
// registration.
type serveComponent struct {
	name  string
	needs []string
	build func(ctx context.Context, cfg *serveConfig, env *serveEnv, deps map[string]any) (opt server.Option, value any, closer io.Closer, err error)
}

var serveComponents []serveComponent

var (
	serveCfg     = defaultServeConfig()
	serveCfgFile string
	serveCmd     = &cobra.Command{
		Use:   "serve",
		Short: "Run the ragkv service (gRPC + admin HTTP)",
		Args:  cobra.NoArgs,
		RunE:  runServe,
	}
)

func init() {
	f := serveCmd.Flags()
	f.StringVar(&serveCfgFile, "config", "", "YAML config file (flags given on the command line override it)")
	f.StringVar(&serveCfg.Listen, "listen", serveCfg.Listen, "gRPC listen address")
	f.StringVar(&serveCfg.AdminListen, "admin-listen", serveCfg.AdminListen, "admin HTTP listen address (console at /, /metrics, /healthz); empty disables it")
	f.StringVar(&serveCfg.DataDir, "data-dir", serveCfg.DataDir, "directory for persistent data")
	f.StringVar(&serveCfg.LogLevel, "log-level", serveCfg.LogLevel, "log level: debug, info, warn, error")
	f.DurationVar(&serveCfg.StopTimeout, "stop-timeout", serveCfg.StopTimeout, "how long a graceful stop waits for in-flight RPCs")
	rootCmd.AddCommand(serveCmd)
}

// loadServeConfig applies the YAML file under the flags that were set explicitly.
func loadServeConfig(cmd *cobra.Command) error {
	if serveCfgFile == "" {
		return nil
	}
	changed := map[string]string{}
	cmd.Flags().Visit(func(fl *pflag.Flag) { changed[fl.Name] = fl.Value.String() })
	b, err := os.ReadFile(serveCfgFile)
	if err != nil {
		return flagErr("config", "%v", err)
	}
	cfg := defaultServeConfig()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return flagErr("config", "%s: %v", serveCfgFile, err)
	}
	serveCfg = cfg
	for name, val := range changed {
		if name == "config" {
			continue
		}
		if err := cmd.Flags().Set(name, val); err != nil {
			return flagErr(name, "%v", err)
		}
	}
	return nil
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, flagErr("log-level", "unknown level %q (want debug, info, warn or error)", s)
	}
	return l, nil
}

func runServe(cmd *cobra.Command, _ []string) error {
	if err := loadServeConfig(cmd); err != nil {
		return err
	}
	cfg := &serveCfg
	level, err := parseLogLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register process metrics: %w", err)
		}
	}
	env := &serveEnv{log: log, reg: reg}
	ctx := cmd.Context()

	tr, err := loadTrust(cfg)
	if err != nil {
		return err
	}
	env.trust = tr
	stopReload := tr.watchReload(ctx, log)
	defer stopReload()
	log.Info("trust", "setup", tr.String())
	tr.warnInsecure(cfg, log)

	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return flagErr("data-dir", "%v", err)
	}

	opts := []server.Option{server.WithLogger(log), server.WithMetrics(reg)}
	var closers []io.Closer
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i].Close(); err != nil {
				log.Error("close component", "err", err)
			}
		}
	}()
	order, err := orderComponents(serveComponents)
	if err != nil {
		return err
	}
	deps := map[string]any{}
	for _, c := range order {
		opt, val, closer, err := c.build(ctx, cfg, env, deps)
		if err != nil {
			return fmt.Errorf("start %s: %w", c.name, err)
		}
		if closer != nil {
			closers = append(closers, closer)
		}
		if opt != nil {
			opts = append(opts, opt)
		}
		deps[c.name] = val
		if chk, ok := val.(interface{ Check(context.Context) error }); ok {
			opts = append(opts, server.WithHealthCheck(healthName(c.name), chk.Check))
		}
	}
	opts = append(opts, tr.options(cfg, deps)...)
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return flagErr("listen", "%v", err)
	}
	ropt, err := replicaOption(cfg, lis.Addr())
	if err != nil {
		lis.Close()
		return err
	}
	srv, err := server.New(append(opts, ropt)...)
	if err != nil {
		lis.Close()
		return err
	}
	errc := make(chan error, 2+len(env.listeners))
	go func() { errc <- srv.Serve(lis) }()
	addrs := fmt.Sprintf("grpc=%s", lis.Addr())
	if cfg.AdminListen != "" {
		alis, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			srv.Stop(context.Background())
			return flagErr("admin-listen", "%v", err)
		}
		go func() { errc <- srv.ServeAdmin(tr.listener(alis)) }()
		addrs += fmt.Sprintf(" admin=%s", alis.Addr())
	}
	var stops []func(context.Context) error
	stopListeners := func(ctx context.Context) {
		for _, stop := range stops {
			if err := stop(ctx); err != nil {
				log.Error("stop listener", "err", err)
			}
		}
	}
	for _, l := range env.listeners {
		xl, err := net.Listen("tcp", l.addr)
		if err != nil {
			stopListeners(context.Background())
			srv.Stop(context.Background())
			return flagErr(l.flag, "%v", err)
		}
		go func() { errc <- l.serve(tr.listener(xl)) }()
		stops = append(stops, l.stop)
		addrs += fmt.Sprintf(" %s=%s", l.name, xl.Addr())
	}
	// Tests and scripts read this line to learn the bound addresses.
	fmt.Fprintf(os.Stdout, "ragkv serving %s\n", addrs)

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("signal received; stopping gracefully")
	case serveErr = <-errc:
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.StopTimeout)
	defer cancel()
	stopListeners(stopCtx)
	srv.Stop(stopCtx)
	log.Info("stopped")
	return serveErr
}

// orderComponents returns the components with each one after those it needs (stable
// otherwise), or an error naming a missing or circular dependency.
func orderComponents(cs []serveComponent) ([]serveComponent, error) {
	byName := make(map[string]serveComponent, len(cs))
	for _, c := range cs {
		byName[c.name] = c
	}
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var out []serveComponent
	var visit func(c serveComponent) error
	visit = func(c serveComponent) error {
		switch state[c.name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("serve components: circular dependency through %q", c.name)
		}
		state[c.name] = visiting
		for _, n := range c.needs {
			d, ok := byName[n]
			if !ok {
				return fmt.Errorf("serve component %q needs %q, which is not registered", c.name, n)
			}
			if err := visit(d); err != nil {
				return err
			}
		}
		state[c.name] = done
		out = append(out, c)
		return nil
	}
	for _, c := range cs {
		if err := visit(c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// healthName is the gRPC health service name a component's check reports under (its
// gRPC service where it has one).
func healthName(component string) string {
	switch component {
	case "chunkcache":
		return server.ChunkCacheServiceName
	case "inference":
		return server.InferenceServiceName
	case "retrieval":
		return ragkvv1.Retrieval_ServiceDesc.ServiceName
	}
	return "ragkv.component." + component
}
