package chunkcache

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkReadChunk reads one 8 MiB f16 chunk (32 layers of 64 tokens × 8 KV heads ×
// 128 dims) through the cache, from the memory tier and from the disk tier, as raw
// sections (memory: zero-copy views; disk: copied and CRC-checked) and decoded to
// float32 into reused buffers (the fused-prefill path).
func BenchmarkReadChunk(b *testing.B) {
	ctx := context.Background()
	const layers, tokens = 32, 64
	for _, tier := range []string{"memory", "disk"} {
		c, _, _ := openCache(b, cacheSetup{dir: b.TempDir(), memCap: 64 << 20, diskCap: 1 << 30, writeThrough: true})
		spec, _, _ := testChunk(1, "", F16, 1, 1)
		spec.Tokens = make([]uint32, tokens)
		spec.Layout = Layout{Layers: layers, KVHeads: 8, HeadDim: 128, DType: F16}
		n := spec.Layout.Elems(tokens)
		ks, vs := make([][]float32, layers), make([][]float32, layers)
		for i := range ks {
			ks[i], vs[i] = make([]float32, n), make([]float32, n)
			for j := range ks[i] {
				ks[i][j], vs[i][j] = float32(j%97)*0.01, float32(j%89)*-0.01
			}
		}
		res, err := c.PutFloat32(ctx, spec, ks, vs)
		if err != nil {
			b.Fatal(err)
		}
		if tier == "disk" {
			if _, err := c.SetPolicy(ctx, []TierPolicyUpdate{{Tier: "memory", Capacity: ptr(int64(1))}}); err != nil {
				b.Fatal(err)
			}
			c.opts.DisablePromotion = true
		}
		bytes := int64(layers) * spec.Layout.LayerBytes(tokens)
		k, v := make([]float32, n), make([]float32, n)
		for _, mode := range []string{"raw", "f32"} {
			b.Run(fmt.Sprintf("%s/%s", tier, mode), func(b *testing.B) {
				b.SetBytes(bytes)
				for b.Loop() {
					r, err := c.Open(ctx, "", res.Key)
					if err != nil {
						b.Fatal(err)
					}
					if r.Info().Tier != tier {
						b.Fatalf("served from %s", r.Info().Tier)
					}
					for l := 0; l < layers; l++ {
						if mode == "raw" {
							_, err = r.Section(ctx, l)
						} else {
							err = r.ReadLayer(ctx, l, k, v)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					r.Close()
				}
			})
		}
		c.Close()
	}
}
