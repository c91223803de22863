package blend

import (
	"context"
	"fmt"

	"github.com/ragkv/ragkv/model"
)

// KVSource is a Source over an in-memory KV whose rows are consecutive positions from
// its first row's.
type KVSource struct {
	KV *model.KV
	// TierName is what Tier reports (default "memory").
	TierName string
	// PreRoPE: the rows' K is without its rotary embedding (UnrotateK); the loader
	// rotates them from position 0.
	PreRoPE bool
}

// KPreRoPE reports PreRoPE.
func (s *KVSource) KPreRoPE() bool { return s.PreRoPE }

// Base is the position of the first row.
func (s *KVSource) Base() int {
	if s.KV.Len() == 0 {
		return 0
	}
	return s.KV.Pos[0]
}

// Rows is the number of rows.
func (s *KVSource) Rows() int { return s.KV.Len() }

// ReadLayer copies layer l.
func (s *KVSource) ReadLayer(_ context.Context, l int, k, v []float32) error {
	n := s.KV.Len() * s.KV.KVDim
	if l < 0 || l >= s.KV.Layers || len(k) < n || len(v) < n {
		return fmt.Errorf("%w: read layer %d of a %d-layer KV into %d values", ErrInvalid, l, s.KV.Layers, len(k))
	}
	copy(k, s.KV.K[l][:n])
	copy(v, s.KV.V[l][:n])
	return nil
}

// Tier reports TierName or "memory".
func (s *KVSource) Tier() string {
	if s.TierName == "" {
		return "memory"
	}
	return s.TierName
}
