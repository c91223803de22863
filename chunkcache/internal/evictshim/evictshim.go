// Package evictshim is a TEMPORARY LRU-only stand-in for package
// github.com/ragkv/ragkv/chunkcache/eviction, with the same API names, used until that
// package lands. It is deleted once chunkcache imports the real package.
package evictshim

import (
	"container/list"
	"errors"
	"fmt"
	"strings"
	"sync"
)

type Key = [32]byte

type Pin uint8

const (
	Unpinned Pin = iota
	SoftPin
	HardPin
)

func (p Pin) String() string {
	switch p {
	case Unpinned:
		return "unpinned"
	case SoftPin:
		return "soft"
	case HardPin:
		return "hard"
	}
	return fmt.Sprintf("Pin(%d)", uint8(p))
}

var (
	ErrNoSpace       = errors.New("eviction: no evictable space")
	ErrNotAdmitted   = errors.New("eviction: rejected by admission filter")
	ErrUnknownPolicy = errors.New("eviction: unknown policy")
	ErrInvalid       = errors.New("eviction: invalid argument")
)

func Policies() []string   { return []string{"lru"} }
func Admissions() []string { return []string{"none", "tinylfu"} }

type Config struct {
	Policy        string  `yaml:"policy" json:"policy"`
	Admission     string  `yaml:"admission" json:"admission"`
	Capacity      int64   `yaml:"capacity" json:"capacity"`
	HighWatermark float64 `yaml:"high_watermark" json:"high_watermark"`
	LowWatermark  float64 `yaml:"low_watermark" json:"low_watermark"`
}

func (c *Config) EnsureDefaults() {
	c.Policy = strings.ToLower(strings.TrimSpace(c.Policy))
	if c.Policy == "" {
		c.Policy = "lru"
	}
	c.Admission = strings.ToLower(strings.TrimSpace(c.Admission))
	if c.Admission == "" {
		c.Admission = "none"
	}
	if c.HighWatermark == 0 {
		c.HighWatermark = 1
	}
	if c.LowWatermark == 0 {
		c.LowWatermark = c.HighWatermark
	}
}

func (c *Config) Validate() error {
	if c.Policy != "lru" {
		return fmt.Errorf("%w %q", ErrUnknownPolicy, c.Policy)
	}
	if c.Admission != "none" && c.Admission != "tinylfu" && c.Admission != "" {
		return fmt.Errorf("%w: admission %q", ErrUnknownPolicy, c.Admission)
	}
	if c.Capacity <= 0 {
		return fmt.Errorf("%w: capacity %d", ErrInvalid, c.Capacity)
	}
	if !(c.LowWatermark > 0 && c.LowWatermark <= c.HighWatermark && c.HighWatermark <= 1) {
		return fmt.Errorf("%w: watermarks", ErrInvalid)
	}
	return nil
}

type TrackerStats struct {
	Entries, UsedBytes, CapacityBytes int64
	Evictions, Admissions, Rejections uint64
	PinnedBytes                       int64
}

type ent struct {
	k    Key
	size int64
	pin  Pin
}

type Tracker struct {
	mu    sync.Mutex
	cfg   Config
	l     *list.List
	m     map[Key]*list.Element
	used  int64
	stats TrackerStats
}

func NewTracker(cfg Config) (*Tracker, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Tracker{cfg: cfg, l: list.New(), m: map[Key]*list.Element{}}, nil
}

func (t *Tracker) evictTo(target int64, skip Key) ([]Key, bool) {
	var victims []Key
	used := t.used
	var cand []*list.Element
	for _, p := range []Pin{Unpinned, SoftPin} {
		for e := t.l.Back(); e != nil && used > target; e = e.Prev() {
			en := e.Value.(*ent)
			if en.pin != p || en.k == skip {
				continue
			}
			used -= en.size
			cand = append(cand, e)
		}
	}
	if used > target {
		return nil, false
	}
	for _, e := range cand {
		en := e.Value.(*ent)
		t.l.Remove(e)
		delete(t.m, en.k)
		t.used -= en.size
		t.stats.Evictions++
		victims = append(victims, en.k)
	}
	return victims, true
}

func (t *Tracker) Reserve(k Key, size int64, cost float64) ([]Key, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if size < 0 || size > t.cfg.Capacity {
		return nil, fmt.Errorf("%w: entry of %d bytes, capacity %d", ErrNoSpace, size, t.cfg.Capacity)
	}
	old := int64(0)
	if e, ok := t.m[k]; ok {
		old = e.Value.(*ent).size
	}
	var victims []Key
	if t.used-old+size > int64(t.cfg.HighWatermark*float64(t.cfg.Capacity)) || t.used-old+size > t.cfg.Capacity {
		target := min(int64(t.cfg.LowWatermark*float64(t.cfg.Capacity)), t.cfg.Capacity) - size + old
		var ok bool
		victims, ok = t.evictTo(max(target, 0)+0, k)
		if !ok {
			return nil, fmt.Errorf("%w: need %d bytes", ErrNoSpace, size)
		}
	}
	if e, ok := t.m[k]; ok {
		en := e.Value.(*ent)
		t.used += size - en.size
		en.size = size
		t.l.MoveToFront(e)
	} else {
		t.m[k] = t.l.PushFront(&ent{k: k, size: size})
		t.used += size
		t.stats.Admissions++
	}
	return victims, nil
}

func (t *Tracker) Touch(k Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[k]
	if ok {
		t.l.MoveToFront(e)
	}
	return ok
}

func (t *Tracker) Remove(k Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[k]
	if ok {
		t.used -= e.Value.(*ent).size
		t.l.Remove(e)
		delete(t.m, k)
	}
	return ok
}

func (t *Tracker) Contains(k Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.m[k]
	return ok
}

func (t *Tracker) SetPin(k Key, p Pin) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[k]
	if ok {
		e.Value.(*ent).pin = p
	}
	return ok
}

func (t *Tracker) Pin(k Key) Pin {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.m[k]; ok {
		return e.Value.(*ent).pin
	}
	return Unpinned
}

func (t *Tracker) SetPolicy(name string) error {
	c := t.Config()
	c.Policy = name
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	t.mu.Lock()
	t.cfg.Policy = c.Policy
	t.mu.Unlock()
	return nil
}

func (t *Tracker) SetAdmission(name string) error {
	c := t.Config()
	c.Admission = name
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	t.mu.Lock()
	t.cfg.Admission = c.Admission
	t.mu.Unlock()
	return nil
}

func (t *Tracker) SetCapacity(bytes int64) ([]Key, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if bytes <= 0 {
		return nil, fmt.Errorf("%w: capacity %d", ErrInvalid, bytes)
	}
	victims, ok := t.evictTo(bytes, Key{})
	if !ok {
		return nil, fmt.Errorf("%w: hard pins hold more than %d bytes", ErrNoSpace, bytes)
	}
	t.cfg.Capacity = bytes
	return victims, nil
}

func (t *Tracker) SetWatermarks(high, low float64) error {
	c := t.Config()
	c.HighWatermark, c.LowWatermark = high, low
	if err := c.Validate(); err != nil {
		return err
	}
	t.mu.Lock()
	t.cfg.HighWatermark, t.cfg.LowWatermark = high, low
	t.mu.Unlock()
	return nil
}

func (t *Tracker) Config() Config {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cfg
}

func (t *Tracker) Stats() TrackerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Entries = int64(len(t.m))
	s.UsedBytes = t.used
	s.CapacityBytes = t.cfg.Capacity
	for _, e := range t.m {
		if e.Value.(*ent).pin != Unpinned {
			s.PinnedBytes += e.Value.(*ent).size
		}
	}
	return s
}

func (t *Tracker) Keys() []Key {
	t.mu.Lock()
	defer t.mu.Unlock()
	ks := make([]Key, 0, len(t.m))
	for k := range t.m {
		ks = append(ks, k)
	}
	return ks
}
