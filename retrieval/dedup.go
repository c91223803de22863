package retrieval

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/fnv"
	"strings"
)

// Exact dedup key: SHA-256 of the normalized text.
func exactKey(text string) [32]byte { return sha256.Sum256([]byte(normalizeForDedup(text))) }

// MinHash parameters: 128 permutations in 16 LSH bands of 8 rows, so pairs with
// Jaccard similarity s collide in some band with probability 1 − (1 − s⁸)¹⁶ (≈ 0.94
// at s = 0.8, ≈ 0.01 at s = 0.4); candidates are then verified on the full signature.
const (
	mhPerms = 128
	mhBands = 16
	mhRows  = mhPerms / mhBands
)

type signature [mhPerms]uint32

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// minhash computes the signature of text's word 3-gram shingles (texts shorter than
// three words are one shingle).
func minhash(text string) signature {
	words := strings.Fields(normalizeForDedup(text))
	var sig signature
	for i := range sig {
		sig[i] = ^uint32(0)
	}
	add := func(sh string) {
		h := fnv.New64a()
		_, _ = h.Write([]byte(sh))
		base := h.Sum64()
		for i := range sig {
			v := uint32(splitmix(base ^ (uint64(i+1) * 0x9e3779b97f4a7c15)))
			if v < sig[i] {
				sig[i] = v
			}
		}
	}
	if len(words) < 3 {
		add(strings.Join(words, " "))
		return sig
	}
	for i := 0; i+3 <= len(words); i++ {
		add(words[i] + " " + words[i+1] + " " + words[i+2])
	}
	return sig
}

// similarity estimates Jaccard similarity as the fraction of agreeing minima.
func (s *signature) similarity(o *signature) float64 {
	n := 0
	for i := range s {
		if s[i] == o[i] {
			n++
		}
	}
	return float64(n) / mhPerms
}

// bandKeys returns one 8-byte hash per band.
func (s *signature) bandKeys() [mhBands]uint64 {
	var out [mhBands]uint64
	var buf [4 * mhRows]byte
	for b := 0; b < mhBands; b++ {
		for r := 0; r < mhRows; r++ {
			binary.LittleEndian.PutUint32(buf[4*r:], s[b*mhRows+r])
		}
		h := fnv.New64a()
		_, _ = h.Write(buf[:])
		out[b] = h.Sum64()
	}
	return out
}

func (s *signature) marshal() []byte {
	b := make([]byte, 4*mhPerms)
	for i, v := range s {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

func unmarshalSignature(b []byte) (signature, bool) {
	var s signature
	if len(b) != 4*mhPerms {
		return s, false
	}
	for i := range s {
		s[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return s, true
}
