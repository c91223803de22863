package blend

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ragkv/ragkv/model"
)

// loadSeg is one cached segment to load: its source and where its rows go.
type loadSeg struct {
	src   Source
	start int // first row (= position) in the fused KV
	n     int // rows used (≤ src.Rows())
}

// loader reads the cached segments' layers into the fused KV on its own goroutine,
// layer by layer in order, re-rotating K from the stored positions to the new ones, so
// that layer l+1 loads while the caller computes layer l. Layer l is signalled on
// done[l] once every segment's rows of that layer are in place; the caller touches
// layer l of the KV only after that (the loader writes only layers it has not yet
// signalled, so the two never share memory). stop cancels and waits for the goroutine.
type loader struct {
	done   []chan error
	next   int // first layer not yet received by the caller
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stats  *Stats

	// Written by the goroutine, read after wg.Wait.
	load, rotate time.Duration
}

func startLoader(ctx context.Context, m *model.Model, kv *model.KV, segs []loadSeg, from int) *loader {
	L := m.Config.Layers
	ld := &loader{done: make([]chan error, L), next: from}
	for l := range ld.done {
		ld.done[l] = make(chan error, 1)
	}
	ctx, ld.cancel = context.WithCancel(ctx)
	ld.wg.Add(1)
	go func() {
		defer ld.wg.Done()
		ld.run(ctx, m, kv, segs, from)
	}()
	return ld
}

func (ld *loader) run(ctx context.Context, m *model.Model, kv *model.KV, segs []loadSeg, from int) {
	kd := kv.KVDim
	type rot struct {
		old, new []int
		// pre: K stored without RoPE, rotated to pos by a table per frequency set
		// (index 1: Config.LocalRope layers), built on first use.
		pre bool
		pos []int
		tab [2][]float32
	}
	rots := make([]rot, len(segs))
	var scratchK, scratchV []float32
	for i, s := range segs {
		pre := false
		if p, ok := s.src.(preRoPESource); ok {
			pre = p.KPreRoPE()
		}
		if pre && s.start+s.n > 1 {
			rots[i].pre = true
			rots[i].pos = make([]int, s.n)
			for j := range s.n {
				rots[i].pos[j] = s.start + j
			}
		} else if b := s.src.Base(); b != s.start && !pre {
			rots[i].old = make([]int, s.n)
			rots[i].new = make([]int, s.n)
			for j := range s.n {
				rots[i].old[j], rots[i].new[j] = b+j, s.start+j
			}
		}
		if rows := s.src.Rows(); rows > s.n && rows*kd > len(scratchK) {
			scratchK, scratchV = make([]float32, rows*kd), make([]float32, rows*kd)
		}
	}
	for l := from; l < len(ld.done); l++ {
		for i, s := range segs {
			if err := ctx.Err(); err != nil {
				ld.done[l] <- err
				return
			}
			t := time.Now()
			k := kv.K[l][s.start*kd : (s.start+s.n)*kd]
			v := kv.V[l][s.start*kd : (s.start+s.n)*kd]
			rows := s.src.Rows()
			var err error
			if rows == s.n {
				err = s.src.ReadLayer(ctx, l, k, v)
			} else {
				err = s.src.ReadLayer(ctx, l, scratchK[:rows*kd], scratchV[:rows*kd])
				copy(k, scratchK)
				copy(v, scratchV)
			}
			t1 := time.Now()
			ld.load += t1.Sub(t)
			if err != nil {
				ld.done[l] <- fmt.Errorf("blend: load layer %d of the segment at position %d: %w", l, s.start, err)
				return
			}
			if r := &rots[i]; r.pre {
				ti := 0
				if m.Config.LocalRope(l) {
					ti = 1
				}
				if r.tab[ti] == nil {
					if r.tab[ti], err = m.RopeTable(l, r.pos); err != nil {
						ld.done[l] <- err
						return
					}
				}
				if err := m.RotateKTable(k, r.tab[ti]); err != nil {
					ld.done[l] <- err
					return
				}
				ld.rotate += time.Since(t1)
			} else if rots[i].old != nil {
				if err := m.RotateKLayer(l, k, rots[i].old, rots[i].new); err != nil {
					ld.done[l] <- err
					return
				}
				ld.rotate += time.Since(t1)
			}
		}
		ld.done[l] <- nil
	}
}

// preRoPESource is a Source whose K may be stored without its rotary embedding
// (StoreOptions.PreRoPE): such rows are rotated from position 0, not from Base()+row.
type preRoPESource interface {
	KPreRoPE() bool
}

// wait blocks until layer l is loaded (layers must be waited for in order, each once;
// waiting again for a layer already received returns at once).
func (ld *loader) wait(ctx context.Context, l int) error {
	for ld.next <= l {
		select {
		case err := <-ld.done[ld.next]:
			if err != nil {
				return err
			}
			ld.next++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// poll reports, without blocking, whether layer l is loaded (receiving the layers
// signalled so far, as wait does).
func (ld *loader) poll(l int) (bool, error) {
	for ld.next <= l {
		select {
		case err := <-ld.done[ld.next]:
			if err != nil {
				return false, err
			}
			ld.next++
		default:
			return false, nil
		}
	}
	return true, nil
}

// waitAll waits for every layer.
func (ld *loader) waitAll(ctx context.Context) error { return ld.wait(ctx, len(ld.done)-1) }

// stop cancels the goroutine, waits for it and adds its times to the stats.
func (ld *loader) stop() {
	ld.cancel()
	ld.wg.Wait()
	if ld.stats != nil {
		ld.stats.Load += ld.load
		ld.stats.Rotate += ld.rotate
	}
}
