package ann

// Fast-scan layout. Codes of a list are stored in blocks of 32 vectors. A block holds
// M/2 chunks of 32 bytes; byte i of chunk p is code[2p] | code[2p+1]<<4 of the block's
// vector i. The quantized lookup tables are M rows of 16 bytes.

const (
	blockVecs = 32
	chunkSize = 32
)

// scanBlocks sums the quantized table entries of every vector of nb blocks:
// acc[32b+i] = Σ_m lut[16m + code_m(vector i of block b)], and sets bit i of masks[b]
// when acc[32b+i] > thr (signed). m2 = M/2; sums must stay below 2^15.
func scanBlocks(codes []byte, nb, m2 int, lut []byte, thr int, acc []uint16, masks []uint32) {
	if nb == 0 {
		return
	}
	_ = codes[nb*m2*chunkSize-1]
	_ = lut[m2*32-1]
	_ = acc[nb*blockVecs-1]
	_ = masks[nb-1]
	if useAVX2() {
		scanBlocksAVX2(codes, nb, m2, lut, thr, acc, masks)
		return
	}
	scanBlocksGeneric(codes, nb, m2, lut, thr, acc, masks)
}

func scanBlocksGeneric(codes []byte, nb, m2 int, lut []byte, thr int, acc []uint16, masks []uint32) {
	bs := m2 * chunkSize
	for b := 0; b < nb; b++ {
		blk := codes[b*bs : (b+1)*bs]
		var sums [blockVecs]uint16
		for p := 0; p < m2; p++ {
			ch := blk[p*chunkSize : (p+1)*chunkSize]
			lo := lut[32*p : 32*p+16]
			hi := lut[32*p+16 : 32*p+32]
			for i, c := range ch {
				sums[i] += uint16(lo[c&15]) + uint16(hi[c>>4])
			}
		}
		var mask uint32
		for i, s := range sums {
			if int(int16(s)) > thr {
				mask |= 1 << i
			}
		}
		copy(acc[b*blockVecs:], sums[:])
		masks[b] = mask
	}
}
