package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/server"
)

// inferenceConfig configures the "inference" serve component (fused prefill and
// generation over the chunk cache). YAML section `inference:`. Without a model the
// component is off.
type inferenceConfig struct {
	// Model and Tokenizer files (Tokenizer empty: the model's own).
	Model     string `yaml:"model"`
	Tokenizer string `yaml:"tokenizer"`
	Threads   int    `yaml:"threads"`
	// KVDType is the stored chunk KV dtype (f32, f16, bf16, int8; default f16). It is
	// part of the chunk keys: `ragkv precompute --dtype` must match.
	KVDType string `yaml:"kv_dtype"`
	// Ratio is the default recompute ratio (default 0.15).
	Ratio float64 `yaml:"ratio"`
	// HandleTTL, MaxHandles and MaxHandleBytes bound the prefilled KVs kept for
	// Generate; MaxConcurrent the computations running at once.
	HandleTTL      time.Duration `yaml:"handle_ttl"`
	MaxHandles     int           `yaml:"max_handles"`
	MaxHandleBytes cacheBytes    `yaml:"max_handle_bytes"`
	MaxConcurrent  int           `yaml:"max_concurrent"`
	// ContextChunks is the default statistics context of PrecomputeChunks.
	ContextChunks int `yaml:"context_chunks"`
	// Deviation and Gradual tune CacheBlend (see package blend).
	Deviation string  `yaml:"deviation"`
	Gradual   float64 `yaml:"gradual"`
	// KVPreRoPE stores the chunks' K without its rotary embedding (blend
	// StoreOptions.PreRoPE): better low-bit tier formats (q4 on disk).
	KVPreRoPE bool `yaml:"kv_prerope"`
	// Engine is the engine's scheduling (serve_engine.go).
	Engine engineConfig `yaml:"engine"`
}

func init() {
	f := serveCmd.Flags()
	ic := &serveCfg.Inference
	f.StringVar(&ic.Model, "model", "", "model file for the inference service (fused prefill, generation); empty: no inference service")
	f.StringVar(&ic.Tokenizer, "tokenizer", "", "tokenizer file of --model (default: the model's own)")
	f.StringVar(&ic.KVDType, "kv-dtype", "f16", "stored chunk KV dtype: f32, f16, bf16 or int8 (part of the chunk keys)")
	f.BoolVar(&ic.KVPreRoPE, "kv-prerope", false, "store chunk K without its rotary embedding (quantizes better in low-bit tier formats; chunks stored either way are read either way)")
	f.IntVar(&ic.Threads, "inference-threads", 0, "kernel threads of the inference service (0: all cores)")
	f.DurationVar(&ic.HandleTTL, "handle-ttl", 5*time.Minute, "how long a prefilled KV is kept for Generate")
	serveComponents = append(serveComponents, serveComponent{name: "inference", needs: []string{"chunkcache"}, build: buildInference})
}

// buildInference is the "inference" serve component; it needs deps["chunkcache"].
func buildInference(_ context.Context, cfg *serveConfig, env *serveEnv, deps map[string]any) (server.Option, any, io.Closer, error) {
	ic := cfg.Inference
	if ic.Model == "" {
		env.log.Info("inference service off: no --model")
		return nil, nil, nil, nil
	}
	if _, err := os.Stat(ic.Model); err != nil {
		return nil, nil, nil, flagErr("model", "%v", err)
	}
	if ic.Tokenizer != "" {
		if _, err := os.Stat(ic.Tokenizer); err != nil {
			return nil, nil, nil, flagErr("tokenizer", "%v", err)
		}
	}
	cache, ok := deps["chunkcache"].(*chunkcache.Cache)
	if !ok || cache == nil {
		return nil, nil, nil, fmt.Errorf("inference: the chunk cache component is not running")
	}
	if ic.KVDType == "" {
		ic.KVDType = "f16"
	}
	dt, err := chunkcache.ParseDType(ic.KVDType)
	if err != nil {
		return nil, nil, nil, flagErr("kv-dtype", "%v", err)
	}
	if ic.Threads < 0 {
		return nil, nil, nil, flagErr("inference-threads", "must be ≥ 0, got %d", ic.Threads)
	}
	if err := ic.Engine.validate(); err != nil {
		return nil, nil, nil, err
	}
	log := env.log.With("component", "inference")
	m, err := model.Open(ic.Model, model.Options{Tokenizer: ic.Tokenizer, Threads: ic.Threads})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("inference: %w", err)
	}
	t0 := time.Now()
	st, err := blend.NewStore(m, cache, blend.StoreOptions{DType: dt, PreRoPE: ic.KVPreRoPE})
	if err != nil {
		m.Close()
		return nil, nil, nil, fmt.Errorf("inference: %w", err)
	}
	eo := blend.EngineOptions{
		Blend:        blend.Options{Deviation: ic.Deviation, Gradual: ic.Gradual},
		DefaultRatio: ic.Ratio, HandleTTL: ic.HandleTTL, MaxHandles: ic.MaxHandles,
		MaxHandleBytes: int64(ic.MaxHandleBytes), MaxConcurrent: ic.MaxConcurrent, ContextChunks: ic.ContextChunks,
		Logger: log, Registerer: env.reg,
	}
	ic.Engine.apply(&eo)
	eng, err := blend.NewEngine(st, eo)
	if err != nil {
		m.Close()
		return nil, nil, nil, usageError{fmt.Errorf("inference settings (the inference: section of --config, or --handle-ttl): %w", err)}
	}
	log.Info("inference ready", "model", ic.Model, "arch", m.Config.Arch, "layers", m.Config.Layers, "ctx", m.Config.Ctx,
		"kv_dtype", dt.String(), "fingerprint_s", time.Since(t0).Seconds())
	return server.WithInference(eng), eng, m, nil
}
