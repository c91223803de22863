package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Memory is the host-RAM tier: a map of immutable objects. Put keeps the caller's
// slices without copying (see Tier's ownership rule); readers copy out of them, or view
// them directly through PartViewer.
type Memory struct {
	name   string
	mu     sync.RWMutex
	objs   map[Key]*memObject
	closed bool
	bytes  atomic.Int64
}

type memObject struct {
	obj  Object
	size int64
}

var _ Tier = (*Memory)(nil)

// NewMemory returns an empty memory tier named "memory".
func NewMemory() *Memory { return NewNamedMemory("memory") }

// NewNamedMemory returns an empty memory tier with another name (to stack two RAM
// tiers, e.g. in tests, or to stand in for a future tier).
func NewNamedMemory(name string) *Memory {
	return &Memory{name: name, objs: make(map[Key]*memObject)}
}

// Name returns the tier's name ("memory" unless created by NewNamedMemory).
func (m *Memory) Name() string { return m.name }

// Persistent returns false.
func (m *Memory) Persistent() bool { return false }

// Bytes is the total size of the stored objects (what the tier really holds, for
// checking the chunk cache's accounting).
func (m *Memory) Bytes() int64 { return m.bytes.Load() }

// Len is the number of stored objects.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.objs)
}

// Put stores obj, keeping its slices.
func (m *Memory) Put(ctx context.Context, key Key, obj Object) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := obj.Validate(); err != nil {
		return err
	}
	o := &memObject{obj: Object{Manifest: obj.Manifest, Parts: append([][]byte(nil), obj.Parts...)}, size: obj.Size()}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if old, ok := m.objs[key]; ok {
		m.bytes.Add(-old.size)
	}
	m.objs[key] = o
	m.bytes.Add(o.size)
	return nil
}

func (m *Memory) get(key Key) (*memObject, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	o, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("%w: %x in memory tier", ErrNotFound, key[:8])
	}
	return o, nil
}

// Open returns a reader of the object under key.
func (m *Memory) Open(ctx context.Context, key Key) (Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o, err := m.get(key)
	if err != nil {
		return nil, err
	}
	return &memReader{o: o}, nil
}

// Has reports whether key is stored.
func (m *Memory) Has(ctx context.Context, key Key) (bool, error) {
	_, err := m.get(key)
	if err == nil {
		return true, nil
	}
	if err == ErrClosed {
		return false, err
	}
	return false, nil
}

// Delete removes key.
func (m *Memory) Delete(ctx context.Context, key Key) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	o, ok := m.objs[key]
	if !ok {
		return fmt.Errorf("%w: %x in memory tier", ErrNotFound, key[:8])
	}
	delete(m.objs, key)
	m.bytes.Add(-o.size)
	return nil
}

// Scan calls fn for every object. fn must not call back into the tier's writers.
func (m *Memory) Scan(ctx context.Context, fn func(Info) error) error {
	m.mu.RLock()
	infos := make([]Info, 0, len(m.objs))
	for k, o := range m.objs {
		infos = append(infos, Info{Key: k, Size: o.size, Parts: len(o.obj.Parts), Manifest: o.obj.Manifest})
	}
	closed := m.closed
	m.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	for _, in := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}

// Close drops every object.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.objs = nil
	m.bytes.Store(0)
	return nil
}

type memReader struct{ o *memObject }

var _ PartViewer = (*memReader)(nil)

func (r *memReader) Manifest() []byte { return r.o.obj.Manifest }
func (r *memReader) NumParts() int    { return len(r.o.obj.Parts) }
func (r *memReader) Size() int64      { return r.o.size }
func (r *memReader) Close() error     { return nil }

func (r *memReader) PartSize(i int) int64 {
	if i < 0 || i >= len(r.o.obj.Parts) {
		return 0
	}
	return int64(len(r.o.obj.Parts[i]))
}

func (r *memReader) ViewPart(i int) ([]byte, error) {
	if i < 0 || i >= len(r.o.obj.Parts) {
		return nil, fmt.Errorf("%w: part %d of %d", ErrInvalid, i, len(r.o.obj.Parts))
	}
	return r.o.obj.Parts[i], nil
}

func (r *memReader) ReadPart(ctx context.Context, i int, dst []byte) ([]byte, error) {
	p, err := r.ViewPart(i)
	if err != nil {
		return dst, err
	}
	return append(dst[:0], p...), nil
}
