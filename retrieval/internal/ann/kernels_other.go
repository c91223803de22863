//go:build !amd64

package ann

func useAVX2() bool { return false }

func dotAVX2(a, b []float32) float32 { return dotGeneric(a, b) }

func dotsTAVX2(out, q, blk, bias []float32, dp int) { dotsTGeneric(out, q, blk, bias, dp) }

func scanBlocksAVX2(codes []byte, nb, m2 int, lut []byte, thr int, acc []uint16, masks []uint32) {
	scanBlocksGeneric(codes, nb, m2, lut, thr, acc, masks)
}

func prefetchRows(data []float32, ids []int32, rowBytes int) {}

func argmaxAVX2(x []float32) int { return argmaxGeneric(x) }

func prefetchBytes(b []byte) {}

func groupMax32AVX2(x []float32, out []float32) { groupMax32Generic(x, out) }
