package kvblob

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ragkv/ragkv/internal/cpu"
)

// TestGroupDecodeKernels: groupDecode (internal/kernels' SIMD decode where the shape
// allows) gives groupDecodeSlow's bits on every kernel path this CPU runs, for K and V
// groupings, code widths 2/4/8, channel counts and group sizes on and off the kernels'
// 16-value step, and rows with a short last group.
func TestGroupDecodeKernels(t *testing.T) {
	saved := cpu.Active()
	defer cpu.Set(saved)
	r := rand.New(rand.NewPCG(11, 12))
	for _, p := range []cpu.Path{cpu.AVX512, cpu.AVX2, cpu.NEON, cpu.Generic} {
		t.Run(p.String(), func(t *testing.T) {
			if err := cpu.Set(p); err != nil {
				t.Skip(err)
			}
			for _, b := range []int{2, 4, 8} {
				for _, C := range []int{8, 16, 20, 64, 192} {
					for _, G := range []int{3, 4, 16, 32, 48} {
						for _, perChannel := range []bool{true, false} {
							for _, n := range []int{1, 5, 33, 70} {
								x := randKV(r, n*C)
								q := make([]byte, packedBytes(n*C, b))
								var groups int
								if perChannel {
									groups = ceilDiv(n, G) * C
								} else {
									groups = n * ceilDiv(C, G)
								}
								sc := make([]byte, 4*groups)
								if err := groupCodes(q, sc, x, n, C, G, b, perChannel); err != nil {
									t.Fatal(err)
								}
								want, got := make([]float32, n*C), make([]float32, n*C)
								groupDecodeSlow(want, q, sc, n, C, G, b, perChannel)
								groupDecode(got, q, sc, n, C, G, b, perChannel)
								for i := range want {
									if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
										t.Fatalf("%s: value %d = %g, want %g", fmt.Sprintf("b=%d C=%d G=%d perChannel=%v n=%d", b, C, G, perChannel, n), i, got[i], want[i])
									}
								}
							}
						}
					}
				}
			}
		})
	}
}

// TestDecodeLayerNoAllocs: decoding a q4, q2 or mixed layer in smollm-135m's shape
// allocates nothing once the scratch buffers are warm.
func TestDecodeLayerNoAllocs(t *testing.T) {
	const tokens = 512
	for _, f := range []string{"q4", "q2", "mixed"} {
		lf, err := ParseFormat(f)
		if err != nil {
			t.Fatal(err)
		}
		l := Layout{Layers: 1, KVHeads: 3, HeadDim: 64}.WithFormat(lf)
		r := rand.New(rand.NewPCG(1, 1))
		k, v := randKV(r, l.Elems(tokens)), randKV(r, l.Elems(tokens))
		s, err := l.AppendLayer(nil, tokens, k, v)
		if err != nil {
			t.Fatal(err)
		}
		if a := testing.AllocsPerRun(10, func() {
			if err := l.DecodeLayer(s, tokens, k, v); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%s: %v allocations per DecodeLayer", f, a)
		}
	}
}
