package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/internal/shared"
)

// TestEngineConfigYAML: the inference.engine section reaches blend.EngineOptions; an
// unknown key is an error; each bad value is an error naming its flag and YAML key.
func TestEngineConfigYAML(t *testing.T) {
	cfg := defaultServeConfig()
	src := "inference:\n  engine: {max_batch: 8, max_queue: 32, decode_share: 0.3, aging: 2, quantum: 2ms, serial: true, no_prefill_batch: true}\n"
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	ec := cfg.Inference.Engine
	if err := ec.validate(); err != nil {
		t.Fatal(err)
	}
	var o blend.EngineOptions
	ec.apply(&o)
	if o.MaxBatch != 8 || o.MaxQueue != 32 || o.DecodeShare != 0.3 || o.Aging != 2 || o.Quantum != 2*time.Millisecond || !o.Serial || !o.NoPrefillBatch {
		t.Fatalf("engine options %+v", o)
	}
	// Zero values keep the engine's defaults.
	var z blend.EngineOptions
	(&engineConfig{}).apply(&z)
	z.EnsureDefaults()
	if err := z.Validate(); err != nil || z.MaxBatch != 64 || z.MaxQueue != 256 || z.DecodeShare != 0.5 || z.Aging != blend.DefaultAging {
		t.Fatalf("defaults %+v, %v", z, err)
	}
	dec = yaml.NewDecoder(bytes.NewReader([]byte("inference:\n  engine: {max_btach: 8}\n")))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err == nil || !strings.Contains(err.Error(), "max_btach") {
		t.Fatalf("unknown key: %v", err)
	}
	for _, tc := range []struct {
		c         engineConfig
		flag, key string
	}{
		{engineConfig{MaxBatch: -1}, "--engine-max-batch", "max_batch"},
		{engineConfig{MaxQueue: -2}, "--engine-max-queue", "max_queue"},
		{engineConfig{DecodeShare: 1}, "--engine-decode-share", "decode_share"},
		{engineConfig{DecodeShare: -0.5}, "--engine-decode-share", "decode_share"},
		{engineConfig{Aging: -1}, "--engine-aging", "aging"},
		{engineConfig{Quantum: -time.Millisecond}, "--engine-quantum", "quantum"},
	} {
		err := tc.c.validate()
		if err == nil || !strings.Contains(err.Error(), tc.flag) || !strings.Contains(err.Error(), "inference.engine."+tc.key) {
			t.Errorf("%+v: %v, want an error naming %s and %s", tc.c, err, tc.flag, tc.key)
		}
	}
}

// TestServeEngineFlags: `ragkv serve` refuses bad engine settings, from a flag or from
// the config file, with an error naming the flag, before it opens the model.
func TestServeEngineFlags(t *testing.T) {
	dir := t.TempDir()
	stories := filepath.Join(shared.Path(t), "models", "stories260K")
	base := []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "", "--openai-listen", "",
		"--model", filepath.Join(stories, "stories260K.bin"), "--tokenizer", filepath.Join(stories, "tok512.bin")}
	_, err := runFresh(t, append(base, "--engine-decode-share", "1.5")...)
	if err == nil || !strings.Contains(err.Error(), "--engine-decode-share") {
		t.Fatalf("decode share 1.5: %v", err)
	}
	cfg := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(cfg, []byte("inference:\n  engine:\n    max_queue: -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = runFresh(t, append(base, "--config", cfg)...)
	if err == nil || !strings.Contains(err.Error(), "--engine-max-queue") || !strings.Contains(err.Error(), "inference.engine.max_queue") {
		t.Fatalf("max_queue -1 in the config: %v", err)
	}
	// The flag overrides the file.
	_, err = runFresh(t, append(base, "--config", cfg, "--engine-max-queue", "4", "--engine-quantum", "-1ms")...)
	if err == nil || !strings.Contains(err.Error(), "--engine-quantum") {
		t.Fatalf("negative quantum: %v", err)
	}
}
