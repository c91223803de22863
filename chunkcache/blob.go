package chunkcache

import "github.com/ragkv/ragkv/chunkcache/internal/kvblob"

// BlobHeader is the KV blob header: layout, token count, position base and per-layer
// CRCs (format in chunkcache/internal/kvblob).
type BlobHeader = kvblob.Header

// EncodeBlob builds a standalone KV blob (e.g. `ragkv cache get --out`) from a header
// and its layer sections (K‖V‖KScales‖VScales in the stored dtype); the CRCs are
// computed here.
func EncodeBlob(h BlobHeader, sections [][]byte) ([]byte, error) {
	b, err := kvblob.Encode(h, sections)
	return b, asInvalid(err)
}

// DecodeBlob parses a standalone KV blob, checking every CRC. The sections alias b.
// Errors wrap ErrCorrupt.
func DecodeBlob(b []byte) (BlobHeader, [][]byte, error) {
	h, s, err := kvblob.Decode(b)
	return h, s, asInvalid(err)
}

// Checksum is the CRC-32C used for layer sections (the crc32c of a ChunkLayerFrame).
func Checksum(b []byte) uint32 { return kvblob.Checksum(b) }
