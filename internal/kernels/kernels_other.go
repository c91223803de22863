//go:build !amd64 || purego

package kernels

// No assembly on this platform: the pure-Go kernels run.
var (
	useAVX512 = false
	useVNNI   = false
)

func gemmF32x32x12(kc int, a, b, c *float32, ldc int, accum bool) {}

func gemmQ8x16x12(nsub, steps int, a, b *byte, c *float32, ldc int, accum bool) {}
