package main

import (
	"context"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/server"
	"github.com/ragkv/ragkv/server/console"
)

// consoleConfig configures the operator console on the admin listener. YAML section
// `console:`.
type consoleConfig struct {
	Disabled bool          `yaml:"disabled"`
	Interval time.Duration `yaml:"interval"` // history sample period
	History  time.Duration `yaml:"history"`  // history kept
	Refresh  time.Duration `yaml:"refresh"`  // page poll period
}

func init() {
	f := serveCmd.Flags()
	cc := &serveCfg.Console
	f.BoolVar(&cc.Disabled, "console-disabled", false, "do not serve the operator console at / on the admin listener")
	f.DurationVar(&cc.Interval, "console-interval", 5*time.Second, "how often the console samples the counters it charts")
	f.DurationVar(&cc.History, "console-history", time.Hour, "how much history the console keeps")
	f.DurationVar(&cc.Refresh, "console-refresh", 2*time.Second, "how often the console page polls the server")
	serveComponents = append(serveComponents, serveComponent{name: "console", needs: []string{"chunkcache", "retrieval", "inference"},
		build: buildConsole})
}

// buildConsole is the "console" serve component: the page and its JSON API at / on
// the admin listener, over deps["chunkcache"], deps["retrieval"] (optional) and the
// engine's metrics in the registry.
func buildConsole(_ context.Context, cfg *serveConfig, env *serveEnv, deps map[string]any) (server.Option, any, io.Closer, error) {
	cc := cfg.Console
	if cc.Disabled || cfg.AdminListen == "" {
		return nil, nil, nil, nil
	}
	cache, _ := deps["chunkcache"].(*chunkcache.Cache)
	if cache == nil {
		return nil, nil, nil, nil
	}
	st, _ := deps["retrieval"].(*retrieval.Store)
	g, _ := env.reg.(prometheus.Gatherer)
	if _, ok := deps["inference"].(*blend.Engine); !ok {
		g = nil // no engine: nothing to read for it
	}
	con, err := console.New(console.Options{Cache: cache, Retrieval: st, Gatherer: g,
		Interval: cc.Interval, History: cc.History, Refresh: cc.Refresh, Logger: env.log.With("component", "console")})
	if err != nil {
		return nil, nil, nil, flagErr("console-interval", "%v", err)
	}
	con.Start()
	return server.WithAdminHandler("/", con.Handler()), con, con, nil
}
