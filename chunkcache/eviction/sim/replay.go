package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ragkv/ragkv/chunkcache/eviction"
)

// Result summarizes one replay.
type Result struct {
	Requests     int64   `json:"requests"`
	Hits         int64   `json:"hits"`
	HitRatio     float64 `json:"hit_ratio"`
	ByteHitRatio float64 `json:"byte_hit_ratio"`
	// CostSavedRatio is the recompute cost of the hits over the cost of all requests.
	CostSavedRatio float64 `json:"cost_saved_ratio"`
	CostSaved      float64 `json:"cost_saved"`
	Evictions      uint64  `json:"evictions"`
	Rejections     uint64  `json:"rejections"`
}

type acc struct {
	req, hits          int64
	reqBytes, hitBytes float64
	reqCost, savedCost float64
}

func (a *acc) add(hit bool, size int64, cost float64) {
	a.req++
	a.reqBytes += float64(size)
	a.reqCost += cost
	if hit {
		a.hits++
		a.hitBytes += float64(size)
		a.savedCost += cost
	}
}

func (a *acc) result() Result {
	r := Result{Requests: a.req, Hits: a.hits, CostSaved: a.savedCost}
	if a.req > 0 {
		r.HitRatio = float64(a.hits) / float64(a.req)
	}
	if a.reqBytes > 0 {
		r.ByteHitRatio = a.hitBytes / a.reqBytes
	}
	if a.reqCost > 0 {
		r.CostSavedRatio = a.savedCost / a.reqCost
	}
	return r
}

// KeyOf maps a trace chunk id to a tracker key.
func KeyOf(id uint32) eviction.Key {
	var k eviction.Key
	binary.LittleEndian.PutUint32(k[:], id)
	k[31] = 0x5a
	return k
}

// Replay runs the trace through a fresh Tracker configured by cfg, the way a tier uses
// it: Touch on every request; on a miss, Reserve (a rejection by the admission filter
// is a bypass). It checks ctx every 64Ki requests.
func Replay(ctx context.Context, t *Trace, cfg eviction.Config) (Result, error) {
	tr, err := eviction.NewTracker(cfg)
	if err != nil {
		return Result{}, err
	}
	var a acc
	victims := make([]eviction.Key, 0, 64)
	for i, id := range t.Requests {
		if i&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return Result{}, err
			}
		}
		k := KeyOf(id)
		size, cost := t.ReqSize(i, id), t.ReqCost(i, id)
		if tr.Touch(k) {
			a.add(true, size, cost)
			continue
		}
		a.add(false, size, cost)
		victims, err = tr.AppendReserve(victims[:0], k, size, cost)
		if err != nil && !errors.Is(err, eviction.ErrNotAdmitted) && !errors.Is(err, eviction.ErrNoSpace) {
			return Result{}, fmt.Errorf("replay %s request %d: %w", t.Name, i, err)
		}
	}
	r := a.result()
	st := tr.Stats()
	r.Evictions, r.Rejections = st.Evictions, st.Rejections
	return r, nil
}
