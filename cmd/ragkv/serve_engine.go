package main

import (
	"math"
	"time"

	"github.com/ragkv/ragkv/blend"
)

// engineConfig is the inference engine's scheduling (blend.EngineOptions): YAML section
// `inference: engine:`, flags --engine-*. Zero values take the engine's defaults.
type engineConfig struct {
	// MaxBatch bounds the generations stepped together in one decode step (default 64).
	MaxBatch int `yaml:"max_batch"`
	// MaxQueue bounds the prefills and generations inside the engine, waiting or
	// running (default 256); beyond it requests fail at once (ResourceExhausted, 429).
	MaxQueue int `yaml:"max_queue"`
	// DecodeShare is decode's share of the engine time while decode steps and prefills
	// both wait (default 0.5, in (0, 1)).
	DecodeShare float64 `yaml:"decode_share"`
	// Aging weighs a prefill's estimated compute in its place among waiting prefills
	// (default blend.DefaultAging; larger favours short prefills).
	Aging float64 `yaml:"aging"`
	// Quantum is the least time work keeps an engine slot before it yields (default 5ms).
	Quantum time.Duration `yaml:"quantum"`
	// Serial restores the scheduling from before continuous batching (for comparison);
	// NoPrefillBatch keeps concurrent prefills' layer steps apart (for comparison).
	Serial         bool `yaml:"serial"`
	NoPrefillBatch bool `yaml:"no_prefill_batch"`
}

func init() {
	f := serveCmd.Flags()
	ec := &serveCfg.Inference.Engine
	f.IntVar(&ec.MaxBatch, "engine-max-batch", 0, "generations stepped together in one decode step (0: the engine's default, 64)")
	f.IntVar(&ec.MaxQueue, "engine-max-queue", 0, "prefills and generations inside the engine, waiting or running, before requests are refused as busy (0: default 256)")
	f.Float64Var(&ec.DecodeShare, "engine-decode-share", 0, "decode's share of the engine time while prefills wait, in (0, 1) (0: default 0.5)")
	f.Float64Var(&ec.Aging, "engine-aging", 0, "aging weight of the prefill order: larger favours short prefills (0: default 8)")
	f.DurationVar(&ec.Quantum, "engine-quantum", 0, "least time work keeps an engine slot before yielding (0: default 5ms)")
	f.BoolVar(&ec.NoPrefillBatch, "engine-no-prefill-batch", false, "do not batch the layer steps of concurrent prefills (for comparison)")
	f.BoolVar(&ec.Serial, "engine-serial", false, "schedule as before continuous batching: a request holds the engine through its prefill and whole decode (for comparison)")
}

// validate checks the settings; errors name the flag and the YAML key.
func (c *engineConfig) validate() error {
	switch {
	case c.MaxBatch < 0:
		return flagErr("engine-max-batch", "(inference.engine.max_batch) must be ≥ 0, got %d", c.MaxBatch)
	case c.MaxQueue < 0:
		return flagErr("engine-max-queue", "(inference.engine.max_queue) must be ≥ 0, got %d", c.MaxQueue)
	case c.DecodeShare != 0 && !(c.DecodeShare > 0 && c.DecodeShare < 1):
		return flagErr("engine-decode-share", "(inference.engine.decode_share) want 0 < share < 1 (or 0 for the default), got %g", c.DecodeShare)
	case !(c.Aging >= 0) || math.IsInf(c.Aging, 0):
		return flagErr("engine-aging", "(inference.engine.aging) must be a finite number ≥ 0, got %g", c.Aging)
	case c.Quantum < 0:
		return flagErr("engine-quantum", "(inference.engine.quantum) must be ≥ 0, got %v", c.Quantum)
	}
	return nil
}

// apply copies the settings into o.
func (c *engineConfig) apply(o *blend.EngineOptions) {
	o.MaxBatch, o.MaxQueue, o.DecodeShare, o.Aging, o.Quantum = c.MaxBatch, c.MaxQueue, c.DecodeShare, c.Aging, c.Quantum
	o.Serial, o.NoPrefillBatch = c.Serial, c.NoPrefillBatch
}
